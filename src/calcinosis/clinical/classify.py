"""Classify calcinosis cutis into its five types by the rules in ``classification_rules.yaml``.

Every rule whose condition holds adds its weights; the type with the highest total
is primary (ties: the order of ``types``). Rules whose condition is unknown do not
fire; instead each unknown fact (and each pair of unknown facts) is tried at every
value it could take, and those that would change the primary type are reported as
missing, so the clinician knows which test would change the answer.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from calcinosis.clinical.conditions import condition_keys
from calcinosis.clinical.facts import Evidence, Fact
from calcinosis.clinical.knowledge import Knowledge, Rule

_LAB_DOMAIN = ("low", "normal", "high")
_QUALITATIVE_DOMAIN = ("negative", "positive")


@dataclass(frozen=True)
class Reason:
    """A rule that fired: what it says, what it adds, and the case fields behind it."""

    rule_id: str
    text: str
    weights: tuple[tuple[str, float], ...]
    evidence: tuple[Evidence, ...]
    citations: tuple[str, ...]
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule_id,
            "text": self.text,
            "weights": dict(self.weights),
            "evidence": [e.to_dict() for e in self.evidence],
            **({"note": self.note} if self.note else {}),
            "citations": list(self.citations),
        }


@dataclass(frozen=True)
class MissingFact:
    """Unknown facts that, if they took ``values``, would make ``would_be`` the primary type."""

    facts: tuple[str, ...]
    values: tuple[str, ...]
    would_be: str
    description: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "facts": list(self.facts),
            "if": dict(zip(self.facts, self.values, strict=True)),
            "primary_would_be": self.would_be,
            "description": self.description,
        }


@dataclass(frozen=True)
class Classification:
    primary: str
    #: All types ranked by score, primary first: ``(type, score)``.
    ranking: tuple[tuple[str, float], ...]
    reasons: tuple[Reason, ...]
    missing: tuple[MissingFact, ...]
    #: Facts the rules read that are unknown for this case.
    unknown_facts: tuple[str, ...]
    #: "supported" (clear margin), "tentative" (margin under 2), "insufficient" (no positive evidence).
    confidence: str

    @property
    def tied_with(self) -> tuple[str, ...]:
        """Other types with the primary's score: the order of ``types`` alone chose among them."""
        top = self.ranking[0][1]
        return tuple(t for t, s in self.ranking[1:] if s == top)

    @property
    def alternatives(self) -> tuple[tuple[str, float], ...]:
        return self.ranking[1:]

    @property
    def scores(self) -> dict[str, float]:
        return dict(self.ranking)


def score(facts: Mapping[str, Any], knowledge: Knowledge) -> tuple[dict[str, float], list[Rule]]:
    """Total weight per type and the rules that fired, for a plain ``key -> value`` mapping."""
    totals = {t: 0.0 for t in knowledge.types}
    fired = []
    for rule in knowledge.rules:
        if rule.condition.evaluate(facts) is True:
            fired.append(rule)
            for type_, weight in rule.weights:
                totals[type_] += weight
    return totals, fired


def rank(totals: dict[str, float], knowledge: Knowledge) -> tuple[tuple[str, float], ...]:
    order = {t: i for i, t in enumerate(knowledge.types)}
    return tuple(sorted(totals.items(), key=lambda kv: (-kv[1], order[kv[0]])))


def classify(facts: Mapping[str, Fact], knowledge: Knowledge) -> Classification:
    """Classify from computed facts (see :func:`calcinosis.clinical.facts.case_facts`)."""
    values = {k: f.value for k, f in facts.items()}
    totals, fired = score(values, knowledge)
    ranking = rank(totals, knowledge)
    primary = ranking[0][0]
    reasons = tuple(
        Reason(
            rule.id,
            rule.text,
            rule.weights,
            # Once each: facts share fields (kidney disease and kidney failure both cite
            # history.dialysis), and a reason listed them twice.
            tuple(
                dict.fromkeys(
                    e
                    for key in condition_keys(rule.condition)
                    if key in facts
                    for e in facts[key].evidence
                )
            ),
            tuple(knowledge.cite(c) for c in rule.citations),
            rule.note,
        )
        for rule in fired
    )
    used = [k for rule in knowledge.rules for k in condition_keys(rule.condition)]
    unknown = tuple(dict.fromkeys(k for k in used if values.get(k) is None))
    missing = _counterfactuals(values, unknown, primary, knowledge)
    margin = ranking[0][1] - ranking[1][1]
    if ranking[0][1] <= 0:
        confidence = "insufficient"
    elif margin < 2:
        confidence = "tentative"
    else:
        confidence = "supported"
    return Classification(primary, ranking, reasons, missing, unknown, confidence)


def _domain(key: str, knowledge: Knowledge) -> tuple[Any, ...]:
    if key.startswith("lab:"):
        spec = knowledge.labs[key[4:]]
        return _QUALITATIVE_DOMAIN if spec.qualitative else _LAB_DOMAIN
    return (True, False)


def _counterfactuals(
    values: dict[str, Any], unknown: tuple[str, ...], primary: str, knowledge: Knowledge
) -> tuple[MissingFact, ...]:
    """Single unknown facts, then pairs not already reported, that would change the primary type."""
    found: list[MissingFact] = []
    reported: set[str] = set()
    for size in (1, 2):
        for keys in itertools.combinations(unknown, size):
            if size == 2 and (keys[0] in reported or keys[1] in reported):
                continue
            for combo in itertools.product(*(_domain(k, knowledge) for k in keys)):
                trial = dict(values)
                trial.update(zip(keys, combo, strict=True))
                new_primary = rank(score(trial, knowledge)[0], knowledge)[0][0]
                if new_primary != primary:
                    found.append(
                        MissingFact(
                            keys,
                            tuple(_shown(v) for v in combo),
                            new_primary,
                            " and ".join(
                                _describe(k, v, knowledge) for k, v in zip(keys, combo, strict=True)
                            ),
                        )
                    )
                    if size == 1:
                        reported.add(keys[0])
                    break  # one changing value per fact (set) is enough to report it
    return tuple(found)


def _describe(key: str, value: Any, knowledge: Knowledge) -> str:
    if key.startswith("lab:"):
        return f"{knowledge.labs[key[4:]].label} {value}"
    text = knowledge.facts.get(key, key)
    return text if value is True else f"no {text}"


def _shown(value: Any) -> str:
    return (
        {True: "true", False: "false"}.get(value, str(value))
        if isinstance(value, bool)
        else str(value)
    )
