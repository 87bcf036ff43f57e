"""Rule conditions with three-valued (Kleene) logic: True, False, or None for unknown.

A condition is written in the data files as a small mapping::

    {fact: connective_tissue_disease}            # fact is true
    {fact: injected_drug, is: false}              # fact is false
    {lab: calcium, is: high}                      # lab status (low|normal|high|positive|negative)
    {lab: calcium, in: [low, high]}
    {all: [...]}, {any: [...]}, {not: {...}}

Facts are looked up in a mapping ``key -> value`` where a lab status has the key
``lab:<name>``; a missing key or ``None`` value is unknown.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Truth = bool | None


@dataclass(frozen=True)
class FactCondition:
    fact: str
    expected: bool = True

    def evaluate(self, facts: Mapping[str, Any]) -> Truth:
        value = facts.get(self.fact)
        return None if value is None else bool(value) == self.expected


@dataclass(frozen=True)
class LabCondition:
    lab: str
    statuses: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"lab:{self.lab}"

    def evaluate(self, facts: Mapping[str, Any]) -> Truth:
        value = facts.get(self.key)
        return None if value is None else value in self.statuses


@dataclass(frozen=True)
class AllCondition:
    children: tuple[Condition, ...]

    def evaluate(self, facts: Mapping[str, Any]) -> Truth:
        values = [c.evaluate(facts) for c in self.children]
        if any(v is False for v in values):
            return False
        return None if any(v is None for v in values) else True


@dataclass(frozen=True)
class AnyCondition:
    children: tuple[Condition, ...]

    def evaluate(self, facts: Mapping[str, Any]) -> Truth:
        values = [c.evaluate(facts) for c in self.children]
        if any(v is True for v in values):
            return True
        return None if any(v is None for v in values) else False


@dataclass(frozen=True)
class NotCondition:
    child: Condition

    def evaluate(self, facts: Mapping[str, Any]) -> Truth:
        value = self.child.evaluate(facts)
        return None if value is None else not value


Condition = FactCondition | LabCondition | AllCondition | AnyCondition | NotCondition


def parse_condition(raw: Any, where: str, known_facts: set[str], known_labs: set[str]) -> Condition:
    """Parse a condition mapping from a data file; ``ValueError`` names ``where`` when it is wrong."""
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{where}: a condition must be a non-empty mapping, got {raw!r}")
    if "all" in raw or "any" in raw:
        key = "all" if "all" in raw else "any"
        children = raw[key]
        if len(raw) != 1 or not isinstance(children, list) or not children:
            raise ValueError(f"{where}: '{key}' takes a non-empty list and nothing else")
        parsed = tuple(
            parse_condition(c, f"{where}.{key}[{i}]", known_facts, known_labs)
            for i, c in enumerate(children)
        )
        return AllCondition(parsed) if key == "all" else AnyCondition(parsed)
    if "not" in raw:
        if len(raw) != 1:
            raise ValueError(f"{where}: 'not' takes one condition and nothing else")
        return NotCondition(parse_condition(raw["not"], f"{where}.not", known_facts, known_labs))
    if "fact" in raw:
        if raw["fact"] not in known_facts or set(raw) - {"fact", "is"}:
            raise ValueError(f"{where}: unknown fact {raw['fact']!r} or extra keys in {raw!r}")
        expected = raw.get("is", True)
        if not isinstance(expected, bool):
            raise ValueError(f"{where}: 'is' of a fact must be true or false")
        return FactCondition(raw["fact"], expected)
    if "lab" in raw:
        if raw["lab"] not in known_labs or set(raw) - {"lab", "is", "in"}:
            raise ValueError(f"{where}: unknown lab {raw['lab']!r} or extra keys in {raw!r}")
        statuses = raw.get("in", [raw.get("is")])
        if not statuses or any(
            s not in ("low", "normal", "high", "positive", "negative") for s in statuses
        ):
            raise ValueError(f"{where}: lab status must be low, normal, high, positive or negative")
        return LabCondition(raw["lab"], tuple(statuses))
    raise ValueError(f"{where}: expected one of fact, lab, all, any, not; got {raw!r}")


def condition_keys(condition: Condition) -> Iterator[str]:
    """The fact keys (``lab:<name>`` for labs) a condition reads, in order, without repeats."""
    seen: set[str] = set()
    for key in _keys(condition):
        if key not in seen:
            seen.add(key)
            yield key


def _keys(condition: Condition) -> Iterator[str]:
    if isinstance(condition, FactCondition):
        yield condition.fact
    elif isinstance(condition, LabCondition):
        yield condition.key
    elif isinstance(condition, NotCondition):
        yield from _keys(condition.child)
    else:
        for child in condition.children:
            yield from _keys(child)
