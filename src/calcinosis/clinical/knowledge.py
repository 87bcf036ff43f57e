"""The clinical knowledge the work-up uses, loaded from the YAML files in ``data/``.

``labs.yaml`` (lab catalogue), ``classification_rules.yaml`` (diagnostic pathway),
``ssc_criteria_2013.yaml`` (ACR/EULAR criteria), ``iim_criteria_2017.yaml`` (EULAR/ACR
myositis criteria), ``treatments.yaml`` and
``references.yaml``. Every citation key must resolve, and every condition must name
known facts; a data error raises ``ValueError`` on load (it is a bug, not bad input).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from calcinosis.clinical.conditions import Condition, parse_condition
from calcinosis.clinical.labs import LabSpec, parse_lab_catalogue

#: Facts computed for treatment cautions (see treatments.py), in addition to the classification facts.
CAUTION_FACTS = (
    "on_anticoagulant", "on_antiplatelet", "bleeding_risk", "ulceration", "egfr_below_35",
    "renal_impairment", "hypocalcaemia", "hypotension", "heart_block", "pregnant",
    "child_under_8", "child", "dialysis_or_kidney_failure", "warfarin_use",
    "pth_high", "calcium_based_binder", "colchicine_interacting_drug", "on_colchicine",
)  # fmt: skip


@dataclass(frozen=True)
class Rule:
    id: str
    text: str
    condition: Condition
    weights: tuple[tuple[str, float], ...]
    citations: tuple[str, ...]
    note: str | None = None


@dataclass(frozen=True)
class SuggestedTestSpec:
    id: str
    name: str
    core: bool
    resolves: tuple[str, ...]


@dataclass(frozen=True)
class SscDomain:
    id: str
    label: str
    items: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class IimItemSpec:
    id: str
    label: str
    group: str
    #: Points in tenths (exact sums: 5.5 must not become 5.4999...); ``None`` when the item
    #: does not score in that model (biopsy features without a biopsy).
    tenths_without_biopsy: int | None
    tenths_with_biopsy: int
    #: Age items only: onset from this age (years, inclusive) to below ``below_years``.
    from_years: float | None = None
    below_years: float | None = None


@dataclass(frozen=True)
class IimCriteriaSpec:
    items: tuple[IimItemSpec, ...]
    age_items: tuple[IimItemSpec, ...]
    #: ``{"without_biopsy": {"possible": tenths, "probable": ..., "definite": ...}, "with_biopsy": ...}``
    cutoffs: dict[str, dict[str, int]]
    bands: dict[str, str]
    skin_items: tuple[str, ...]
    exclusions: tuple[tuple[str, str], ...]
    plausible_when_named: tuple[str, ...]
    citation: str

    def item_names(self) -> tuple[str, ...]:
        return tuple(i.id for i in self.items) + tuple(item for item, _ in self.exclusions)

    @property
    def biopsy_items(self) -> frozenset[str]:
        """The items that score only with a muscle biopsy (biopsy features)."""
        return frozenset(i.id for i in self.items if i.tenths_without_biopsy is None)


@dataclass(frozen=True)
class Caution:
    condition: Condition
    text: str
    if_unknown: str | None = None


@dataclass(frozen=True)
class TreatmentSpec:
    id: str
    name: str
    agents: tuple[str, ...]
    applies_to: tuple[str, ...]
    mechanism: str
    evidence_level: str
    evidence_description: str
    references: tuple[str, ...]
    cautions: tuple[Caution, ...]
    requires: Condition | None = None


@dataclass(frozen=True)
class Knowledge:
    """Everything read from ``data/``; build once with :func:`load_knowledge` and pass down."""

    labs: dict[str, LabSpec]
    types: tuple[str, ...]
    type_descriptions: dict[str, str]
    thresholds: dict[str, float]
    vocabulary: dict[str, tuple[str, ...]]
    facts: dict[str, str]
    rules: tuple[Rule, ...]
    rules_citation: str
    suggested_tests: tuple[SuggestedTestSpec, ...]
    ssc_domains: tuple[SscDomain, ...]
    ssc_threshold: int
    ssc_citation: str
    #: Items that make the criteria not applicable when present: ``(item, label)``.
    ssc_exclusions: tuple[tuple[str, str], ...]
    iim: IimCriteriaSpec
    treatments: tuple[TreatmentSpec, ...]
    treatments_citation: str
    evidence_scale_citation: str
    references: dict[str, str]

    def ssc_item_names(self) -> tuple[str, ...]:
        scored = tuple(item for domain in self.ssc_domains for item, _ in domain.items)
        return scored + tuple(item for item, _ in self.ssc_exclusions)

    def cite(self, key: str) -> str:
        return self.references[key]


def _read(name: str) -> Any:
    text = resources.files("calcinosis.clinical").joinpath("data", name).read_text(encoding="utf-8")
    return yaml.safe_load(text)


@functools.lru_cache(maxsize=1)
def load_knowledge() -> Knowledge:
    """Load and check the packaged data files (cached: they do not change while running)."""
    references = {k: " ".join(v.split()) for k, v in _read("references.yaml")["references"].items()}
    labs = parse_lab_catalogue(_read("labs.yaml"))
    raw_rules = _read("classification_rules.yaml")
    raw_ssc = _read("ssc_criteria_2013.yaml")
    raw_treatments = _read("treatments.yaml")
    raw_iim = _read("iim_criteria_2017.yaml")

    def check_refs(keys: Any, where: str) -> tuple[str, ...]:
        keys = (keys,) if isinstance(keys, str) else tuple(keys)
        for key in keys:
            if key not in references:
                raise ValueError(f"{where}: citation {key!r} is not in references.yaml")
        return keys

    types = tuple(raw_rules["types"])
    facts = dict(raw_rules["facts"])
    lab_names = set(labs)
    rule_facts = set(facts)
    rules = []
    for i, raw in enumerate(raw_rules["rules"]):
        where = f"classification_rules.yaml rules[{i}] ({raw.get('id')})"
        weights = tuple((t, float(w)) for t, w in raw["weights"].items())
        if any(t not in types for t, _ in weights):
            raise ValueError(f"{where}: weights name an unknown type")
        rules.append(
            Rule(
                id=raw["id"],
                text=raw["text"],
                condition=parse_condition(raw["when"], where, rule_facts, lab_names),
                weights=weights,
                citations=check_refs(raw.get("citations", raw_rules["citation"]), where),
                note=raw.get("note"),
            )
        )
    tests = tuple(
        SuggestedTestSpec(t["id"], t["name"], bool(t["core"]), tuple(t["resolves"]))
        for t in raw_rules["suggested_tests"]
    )
    domains = tuple(
        SscDomain(d["id"], d["label"], tuple((k, int(v)) for k, v in d["items"].items()))
        for d in raw_ssc["domains"]
    )
    iim = _iim_spec(raw_iim, check_refs(raw_iim["citation"], "iim_criteria_2017.yaml")[0])
    treatment_facts = rule_facts | set(CAUTION_FACTS)
    treatments = []
    for i, raw in enumerate(raw_treatments["treatments"]):
        where = f"treatments.yaml treatments[{i}] ({raw.get('id')})"
        if any(t not in types for t in raw["applies_to"]):
            raise ValueError(f"{where}: applies_to names an unknown type")
        cautions = tuple(
            Caution(
                parse_condition(c["when"], where, treatment_facts, lab_names),
                c["text"],
                c.get("if_unknown"),
            )
            for c in raw.get("cautions") or ()
        )
        requires = raw.get("requires")
        treatments.append(
            TreatmentSpec(
                id=raw["id"],
                name=raw["name"],
                agents=tuple(a.lower() for a in raw.get("agents") or ()),
                applies_to=tuple(raw["applies_to"]),
                mechanism=" ".join(raw["mechanism"].split()),
                evidence_level=str(raw["evidence"]["level"]),
                evidence_description=raw["evidence"]["description"],
                references=check_refs(raw["references"], where),
                cautions=cautions,
                requires=None
                if requires is None
                else parse_condition(requires, where, treatment_facts, lab_names),
            )
        )
    return Knowledge(
        labs=labs,
        types=types,
        type_descriptions=dict(raw_rules["type_descriptions"]),
        thresholds={k: float(v) for k, v in raw_rules["thresholds"].items()},
        vocabulary={k: tuple(v) for k, v in raw_rules["vocabulary"].items()},
        facts=facts,
        rules=tuple(rules),
        rules_citation=check_refs(raw_rules["citation"], "classification_rules.yaml")[0],
        suggested_tests=tests,
        ssc_domains=domains,
        ssc_threshold=int(raw_ssc["threshold"]),
        ssc_exclusions=_exclusions(raw_ssc),
        ssc_citation=check_refs(raw_ssc["citation"], "ssc_criteria_2013.yaml")[0],
        iim=iim,
        treatments=tuple(treatments),
        treatments_citation=check_refs(raw_treatments["citation"], "treatments.yaml")[0],
        evidence_scale_citation=check_refs(raw_treatments["evidence_scale"], "treatments.yaml")[0],
        references=references,
    )


def _exclusions(raw: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """A criteria file's ``exclusions`` mapping as ``(item, label)`` pairs (none when absent)."""
    return tuple((k, str(v)) for k, v in (raw.get("exclusions") or {}).items())


def _tenths(value: Any, where: str) -> int:
    """Points written with one decimal (3.1) as an exact integer of tenths (31)."""
    tenths = round(float(value) * 10)
    if abs(tenths - float(value) * 10) > 1e-6:
        raise ValueError(f"{where}: {value!r} has more than one decimal")
    return tenths


def _iim_spec(raw: dict[str, Any], citation: str) -> IimCriteriaSpec:
    where = "iim_criteria_2017.yaml"

    def spec(item: str, entry: dict[str, Any], group: str) -> IimItemSpec:
        points = entry["points"]
        without = points["without_biopsy"]
        return IimItemSpec(
            id=item,
            label=entry["label"],
            group=group,
            tenths_without_biopsy=None if without is None else _tenths(without, f"{where} {item}"),
            tenths_with_biopsy=_tenths(points["with_biopsy"], f"{where} {item}"),
            from_years=entry.get("from_years"),
            below_years=entry.get("below_years"),
        )

    items = tuple(spec(k, v, v["group"]) for k, v in raw["items"].items())
    age_items = tuple(spec(k, v, "age of onset") for k, v in raw["age_items"].items())
    names = {i.id for i in items}
    skin = tuple(raw["skin_items"])
    if not set(skin) <= names:
        raise ValueError(f"{where}: skin_items names an unknown item")
    cutoffs = {
        model: {cat: _tenths(v, f"{where} cutoffs.{model}") for cat, v in cats.items()}
        for model, cats in raw["cutoffs"].items()
    }
    return IimCriteriaSpec(
        items=items,
        age_items=age_items,
        cutoffs=cutoffs,
        bands={k: str(v) for k, v in raw["bands"].items()},
        skin_items=skin,
        exclusions=_exclusions(raw),
        plausible_when_named=tuple(raw["plausible_when_named"]),
        citation=citation,
    )
