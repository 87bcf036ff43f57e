"""Facts about a case that the classification rules read, each with its evidence.

A fact is True, False or None (unknown), and carries the fields of the case it was
read from (field, value as written, reference range), so every reason the
work-up gives can be traced to the case file. Lab statuses are facts with keys
``lab:<name>`` (``low|normal|high`` or ``negative|positive``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from calcinosis.clinical.case import Case
from calcinosis.clinical.criteria import IimCriteriaResult, SscCriteriaResult
from calcinosis.clinical.imaging import ImagingEvidence
from calcinosis.clinical.knowledge import Knowledge
from calcinosis.clinical.text import affirmed, matches

__all__ = ["Evidence", "Fact", "case_facts", "calcium_phosphate_product", "matches"]


@dataclass(frozen=True)
class Evidence:
    """One field of the case behind a fact."""

    field: str
    value: str
    reference_range: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "value": self.value, "reference_range": self.reference_range}


@dataclass(frozen=True)
class Fact:
    key: str
    value: Any
    evidence: tuple[Evidence, ...] = ()


def _tri(values: list[bool | None]) -> bool | None:
    """True if any source says yes, False if some say no and none yes, else unknown."""
    if any(v is True for v in values):
        return True
    if any(v is False for v in values):
        return False
    return None


def case_facts(
    case: Case,
    knowledge: Knowledge,
    ssc: SscCriteriaResult | None,
    imaging: ImagingEvidence | None,
    iim: IimCriteriaResult | None = None,
) -> dict[str, Fact]:
    """Compute every fact named in ``classification_rules.yaml`` (plus lab statuses)."""
    vocab = knowledge.vocabulary
    history = case.history
    facts: dict[str, Fact] = {}

    def put(key: str, value: Any, *evidence: Evidence) -> None:
        facts[key] = Fact(key, value, tuple(evidence))

    def hist(name: str) -> Evidence:
        return Evidence(f"history.{name}", _shown(getattr(history, name)))

    for lab in case.labs:
        if lab.status is not None:
            put(
                f"lab:{lab.name}",
                lab.status,
                Evidence(
                    f"{lab.field} (from {lab.derived_from})" if lab.derived_from else lab.field,
                    lab.shown_value(),
                    lab.shown_range(),
                ),
            )

    # Connective tissue disease: history, diagnoses, SSc criteria.
    ctd_evidence = [hist("connective_tissue_disease")]
    ctd_sources: list[bool | None] = [
        None
        if history.connective_tissue_disease is None
        else bool(history.connective_tissue_disease)
    ]
    for i, diagnosis in enumerate(case.diagnoses or ()):
        if affirmed(diagnosis, vocab["connective_tissue_disease"],
                    vocab["connective_tissue_disease_exceptions"]):  # fmt: skip
            ctd_sources.append(True)
            ctd_evidence.append(Evidence(f"diagnoses[{i}]", diagnosis))
    if ssc is not None and ssc.classified:
        ctd_sources.append(True)
        ctd_evidence.append(
            Evidence("ssc_criteria", f"score {ssc.score}", f">= {ssc.threshold} classifies")
        )
    if iim is not None and iim.classified:
        ctd_sources.append(True)
        ctd_evidence.append(
            Evidence("iim_criteria", f"score {iim.score:g}", f"{iim.category} IIM ({iim.probability_band})")
        )
    put("connective_tissue_disease", _tri(ctd_sources), *ctd_evidence)
    if ssc is None:
        put("ssc_classified", None)
    else:
        value = True if ssc.classified else (None if ssc.unknown_could_change else False)
        put(
            "ssc_classified",
            value,
            Evidence(
                "ssc_criteria",
                f"score {ssc.score} (up to {ssc.max_possible_score} if unknown items were present)",
                f">= {ssc.threshold} classifies",
            ),
        )

    # Kidney.
    egfr = case.lab("egfr")
    creatinine = case.lab("creatinine")
    renal_evidence = [hist("chronic_kidney_disease"), hist("dialysis")]
    renal_sources = [history.chronic_kidney_disease, True if history.dialysis else None]
    kidney_failure_sources = [history.dialysis]
    if egfr is not None and egfr.value_canonical is not None:
        renal_evidence.append(
            Evidence(
                "labs.egfr"
                if egfr.derived_from is None
                else "labs.egfr (estimated from creatinine)",
                egfr.shown_value(),
                egfr.shown_range(),
            )
        )
        renal_sources.append(egfr.value_canonical < knowledge.thresholds["egfr_ckd_ml_min"])
        kidney_failure_sources.append(
            egfr.value_canonical < knowledge.thresholds["egfr_kidney_failure_ml_min"]
        )
    elif egfr is not None and egfr.status is not None:
        renal_evidence.append(Evidence(egfr.field, egfr.shown_value()))
        renal_sources.append(egfr.status == "low")
    elif creatinine is not None and creatinine.status == "high":
        renal_evidence.append(
            Evidence(creatinine.field, creatinine.shown_value(), creatinine.shown_range())
        )
        renal_sources.append(True)
    put("chronic_kidney_disease", _tri(renal_sources), *renal_evidence)
    put("dialysis_or_kidney_failure", _tri(kidney_failure_sources), *renal_evidence)

    put("hyperparathyroidism", history.hyperparathyroidism, hist("hyperparathyroidism"))
    vitd = case.lab("vitamin_d_25oh")
    vitd_sources = [
        history.vitamin_d_excess,
        None if vitd is None or vitd.status is None else vitd.status == "high",
    ]
    vitd_evidence = [hist("vitamin_d_excess")]
    if vitd is not None:
        vitd_evidence.append(Evidence(vitd.field, vitd.shown_value(), vitd.shown_range()))
    put("vitamin_d_excess", _tri(vitd_sources), *vitd_evidence)
    put("malignancy", history.malignancy, hist("malignancy"))

    # The site: procedures, injections, drugs given there.
    site = history.trauma_or_procedure_at_site
    put(
        "procedure_at_site",
        None if site is None else bool(site),
        hist("trauma_or_procedure_at_site"),
    )
    if site is None:
        injection = None
    elif site is True:
        injection = None  # something was done there, but not said what
    else:
        injection = bool(site) and affirmed(str(site), vocab["injection_at_site"])
    put("injection_at_site", injection, hist("trauma_or_procedure_at_site"))
    injected, injected_evidence = _medication_fact(
        case, lambda m: m.route is not None and matches(m.route, vocab["local_injection_route"])
    )
    put("injected_drug", injected, *injected_evidence)
    given, given_evidence = _medication_fact(
        case,
        lambda m: matches(m.name, vocab["calcium_or_phosphate_agent"])
        and not (m.route is not None and matches(m.route, vocab["non_parenteral_route"])),
    )
    put(
        "calcium_or_phosphate_given",
        _tri([history.calcium_or_phosphate_infusion, True if given else None]),
        hist("calcium_or_phosphate_infusion"),
        *given_evidence,
    )

    vka, vka_evidence = _medication_fact(
        case,
        lambda m: m.current is not False and matches(m.name, vocab["vitamin_k_antagonist"]),
    )
    put("vitamin_k_antagonist", vka, *vka_evidence)

    skin = case.skin
    put("skin_necrosis", skin.necrosis, Evidence("skin.necrosis", _shown(skin.necrosis)))
    put(
        "retiform_purpura",
        skin.retiform_purpura,
        Evidence("skin.retiform_purpura", _shown(skin.retiform_purpura)),
    )
    put("ulceration", skin.ulceration, Evidence("skin.ulceration", _shown(skin.ulceration)))
    if case.symptoms is None:
        put("painful", None)
    else:
        pain = [(i, s) for i, s in enumerate(case.symptoms) if affirmed(s, vocab["pain"])]
        put("painful", bool(pain), *(Evidence(f"symptoms[{i}]", s) for i, s in pain))

    put("ca_x_p_product_high", *_product_fact(case, knowledge))

    for name in ("imaging_injection_site_pattern", "imaging_periarticular_paraspinal_pattern",
                 "imaging_vascular_pattern"):  # fmt: skip
        if imaging is None:
            put(name, None)
        else:
            put(
                name,
                imaging.facts.get(name),
                *(Evidence(f, v) for f, v in imaging.evidence.get(name, ())),
            )
    return facts


def calcium_phosphate_product(case: Case) -> float | None:
    """Calcium × phosphate in mg²/dL² (both converted to mg/dL), or None unless both are measured."""
    calcium, phosphate = case.lab("calcium"), case.lab("phosphate")
    if (
        calcium is None
        or phosphate is None
        or calcium.value_canonical is None
        or phosphate.value_canonical is None
    ):
        return None
    return calcium.value_canonical * phosphate.value_canonical


def _product_fact(case: Case, knowledge: Knowledge) -> tuple[bool | None, Evidence]:
    threshold = knowledge.thresholds["ca_x_p_product_high_mg2_dl2"]
    shown_range = f"< {threshold:g} mg2/dL2"
    product = calcium_phosphate_product(case)
    if product is not None:
        return product >= threshold, Evidence(
            "labs.calcium x labs.phosphate", f"{product:.1f} mg2/dL2", shown_range
        )
    calcium, phosphate = case.lab("calcium"), case.lab("phosphate")
    statuses = {calcium.status if calcium else None, phosphate.status if phosphate else None}
    if None not in statuses and "high" not in statuses:
        # Both within or below their ranges: the product is below the upper limits' product (< 50).
        return False, Evidence(
            "labs.calcium x labs.phosphate", "both within or below range", shown_range
        )
    return None, Evidence("labs.calcium x labs.phosphate", "not computable", shown_range)


def _medication_fact(case: Case, predicate: Any) -> tuple[bool | None, list[Evidence]]:
    if case.medications is None:
        return None, []
    hits = [(i, m) for i, m in enumerate(case.medications) if predicate(m)]
    evidence = [
        Evidence(f"medications[{i}]", f"{m.name}" + (f" ({m.route})" if m.route else ""))
        for i, m in hits
    ]
    return bool(hits), evidence


def _shown(value: Any) -> str:
    if value is None:
        return "unknown"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)
