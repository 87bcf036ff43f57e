"""The clinical work-up: classification, SSc criteria, treatments and suggested tests for one case.

Decision support for a clinician, not a diagnosis: every output says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from calcinosis import __version__
from calcinosis.clinical.case import Case
from calcinosis.clinical.classify import Classification, classify
from calcinosis.clinical.criteria import (
    CrestFeature,
    IimCriteriaResult,
    SscCriteriaResult,
    crest_features,
    iim_criteria,
    ssc_criteria,
)
from calcinosis.clinical.facts import calcium_phosphate_product, case_facts
from calcinosis.clinical.imaging import ImagingEvidence, interpret_imaging
from calcinosis.clinical.knowledge import Knowledge, load_knowledge
from calcinosis.clinical.treatments import (
    TreatmentOption,
    other_tried_for_calcinosis,
    select_treatments,
)

DISCLAIMER = (
    "Decision support for a clinician, not a diagnosis: the classification, criteria and "
    "treatment options are computed from the case file by published rules and must be "
    "judged by the treating clinician together with the whole clinical picture."
)
SCHEMA_VERSION = "1"


@dataclass(frozen=True)
class SuggestedTest:
    id: str
    name: str
    why: str
    #: Whether a result of this test could change the primary type.
    would_change_answer: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "why": self.why,
            "would_change_answer": self.would_change_answer,
        }


@dataclass(frozen=True)
class Workup:
    """The result of :func:`run_workup`; ``to_dict()`` is what ``workup.json`` holds."""

    case: Case
    classification: Classification
    ssc_criteria: SscCriteriaResult | None
    crest_features: tuple[CrestFeature, ...]
    treatments: tuple[TreatmentOption, ...]
    suggested_tests: tuple[SuggestedTest, ...]
    calcium_phosphate_product_mg2_dl2: float | None
    imaging: ImagingEvidence | None
    knowledge: Knowledge
    #: Medications given for calcinosis that are not among the listed options.
    other_treatments_tried: tuple[str, ...] = ()
    #: 2017 EULAR/ACR myositis criteria, when given or when myositis is named.
    iim_criteria: IimCriteriaResult | None = None
    disclaimer: str = DISCLAIMER

    def to_dict(self) -> dict[str, Any]:
        c = self.classification
        k = self.knowledge
        return {
            "schema_version": SCHEMA_VERSION,
            "software": f"calcinosis {__version__}",
            "case_id": self.case.case_id,
            "disclaimer": self.disclaimer,
            "classification": {
                "primary": c.primary,
                "primary_description": k.type_descriptions[c.primary],
                "confidence": c.confidence,
                "tied_with": list(c.tied_with),
                "scores": c.scores,
                "alternatives": [{"type": t, "score": s} for t, s in c.alternatives],
                "reasons": [r.to_dict() for r in c.reasons],
                "missing": [m.to_dict() for m in c.missing],
                "unknown_facts": list(c.unknown_facts),
                "pathway": k.cite(k.rules_citation),
                "imaging_used": self.imaging is not None,
            },
            "ssc_criteria": None if self.ssc_criteria is None else _ssc_dict(self.ssc_criteria),
            "iim_criteria": None if self.iim_criteria is None else _iim_dict(self.iim_criteria),
            "crest_features": [
                {"feature": f.feature, "status": f.status, "source": f.source}
                for f in self.crest_features
            ],
            "calcium_phosphate_product": None
            if self.calcium_phosphate_product_mg2_dl2 is None
            else {
                "value": round(self.calcium_phosphate_product_mg2_dl2, 2),
                "unit": "mg2/dL2",
                "threshold": k.thresholds["ca_x_p_product_high_mg2_dl2"],
            },
            "labs": [_lab_dict(lab) for lab in self.case.labs],
            "imaging": None
            if self.imaging is None
            else {
                "source": self.imaging.source,
                "pattern": self.imaging.pattern,
                "facts": self.imaging.facts,
                "notes": list(self.imaging.notes),
            },
            "treatments": [t.to_dict() for t in self.treatments],
            "other_treatments_tried": list(self.other_treatments_tried),
            "treatments_source": k.cite(k.treatments_citation),
            "suggested_tests": [t.to_dict() for t in self.suggested_tests],
            "warnings": list(self.case.warnings),
        }


def run_workup(
    case: Case,
    imaging_summary: dict[str, Any] | None = None,
    knowledge: Knowledge | None = None,
    imaging_source: str | None = None,
) -> Workup:
    """Work up one case; ``imaging_summary`` is a parsed ``summary.json`` of ``calcinosis analyze``.

    ``imaging_source`` says where that summary came from (``--imaging``); by default the case
    file's ``imaging.summary`` field. The output names that input, never the summary's path:
    folder names of imaging studies often hold the patient's name or record number, and the
    analysis outputs keep even a file name out unless identifiers are asked for.
    """
    knowledge = knowledge or load_knowledge()
    if imaging_source is None and imaging_summary is not None:
        imaging_source = "imaging.summary" if case.imaging.summary else "given by the caller"
    imaging = (
        None
        if imaging_summary is None
        else interpret_imaging(imaging_summary, imaging_source)
    )
    ssc = ssc_criteria(case, knowledge)
    iim = iim_criteria(case, knowledge)
    facts = case_facts(case, knowledge, ssc, imaging, iim)
    classification = classify(facts, knowledge)
    treatments = select_treatments(case, classification.primary, facts, knowledge)
    tests = _suggested_tests(
        case, classification, {k: f.value for k, f in facts.items()}, knowledge
    )
    return Workup(
        case=case,
        classification=classification,
        ssc_criteria=ssc,
        crest_features=crest_features(case) if _has_ssc(case, facts) else (),
        treatments=treatments,
        suggested_tests=tests,
        calcium_phosphate_product_mg2_dl2=calcium_phosphate_product(case),
        imaging=imaging,
        knowledge=knowledge,
        other_treatments_tried=other_tried_for_calcinosis(case, treatments, knowledge),
        iim_criteria=iim,
    )


def _has_ssc(case: Case, facts: dict[str, Any]) -> bool:
    """CREST features are reported when SSc is in question (criteria given or a CTD named)."""
    return case.ssc_criteria is not None or facts["connective_tissue_disease"].value is True


def _suggested_tests(
    case: Case, classification: Classification, values: dict[str, Any], knowledge: Knowledge
) -> tuple[SuggestedTest, ...]:
    changing = {key for m in classification.missing for key in m.facts}
    tests = []
    for spec in knowledge.suggested_tests:
        unknown = [key for key in spec.resolves if values.get(key) is None]
        if _measured(case, spec.resolves):
            # Its lab was measured: what stays unknown (the Ca x P product beside a flagged
            # calcium, a history of hyperparathyroidism) is not for this test to settle.
            continue
        if spec.id == "renal_function" and values.get("dialysis_or_kidney_failure") is True:
            continue  # on dialysis (or eGFR < 15): creatinine and eGFR tell nothing more
        if spec.id == "imaging" and not case.imaging.modalities:
            unknown = unknown or list(spec.resolves)
        if not unknown:
            continue
        would_change = any(key in changing for key in spec.resolves)
        if not (
            spec.core or would_change or (spec.id == "imaging" and not case.imaging.modalities)
        ):
            continue
        what = [
            m.description + f" -> {m.would_be}"
            for m in classification.missing
            if any(key in spec.resolves for key in m.facts)
        ]
        if what:
            why = "could change the type: " + "; ".join(what[:3])
        elif any((lab := case.lab(k[4:])) is not None and lab.flag for k in spec.resolves
                 if k.startswith("lab:")):  # fmt: skip
            why = ("part of the standard work-up of calcinosis cutis; given only as a flag, "
                   "a measured value is needed (the calcium x phosphate product)"
                   if "ca_x_p_product_high" in spec.resolves
                   else "part of the standard work-up of calcinosis cutis; given only as a flag")  # fmt: skip
        else:
            why = "part of the standard work-up of calcinosis cutis; not known for this patient"
        tests.append(SuggestedTest(spec.id, spec.name, why, would_change))
    return tuple(tests)


def _measured(case: Case, resolves: tuple[str, ...]) -> bool:
    """Whether a lab the test measures (``lab:<name>`` among ``resolves``) has a measured value."""
    for key in resolves:
        lab = case.lab(key[4:]) if key.startswith("lab:") else None
        if lab is not None and lab.value_canonical is not None:
            return True
    return False


def _ssc_dict(result: SscCriteriaResult) -> dict[str, Any]:
    return {
        "score": result.score,
        "threshold": result.threshold,
        "classified": result.classified,
        "max_possible_score": result.max_possible_score,
        "unknown_could_change_classification": result.unknown_could_change,
        "unknown_items": list(result.unknown_items),
        **_exclusions_dict(result),
        "items": [
            {
                "item": i.item,
                "domain": i.domain,
                "points": i.points,
                "present": i.present,
                "counted_points": i.counted_points,
                "source": i.source,
            }
            for i in result.items
        ],
        "note": result.note,
        "citation": result.citation,
    }


def _exclusions_dict(result: SscCriteriaResult | IimCriteriaResult) -> dict[str, Any]:
    """Whether a criteria set applies, the exclusions that stop it, and those not stated."""
    return {
        "applicable": not result.excluded_by,
        "excluded_by": list(result.excluded_by),
        "exclusions_unknown": list(result.exclusions_unknown),
    }


def _iim_dict(result: IimCriteriaResult) -> dict[str, Any]:
    return {
        "shown_because": result.shown_because,
        "model": result.model,
        "score": result.score,
        "score_is_lower_bound": result.score_is_lower_bound,
        "max_possible_score": result.max_possible_score,
        "category": result.category,
        "probability_band": result.probability_band,
        "probability": result.probability,
        "probability_note": result.probability_note,
        "classified": result.classified,
        "not_classified_because": result.not_classified_because,
        "unknown_could_change_classification": result.unknown_could_change,
        "unknown_items": list(result.unknown_items),
        "scores": [
            {
                "model": s.model,
                "score": s.score,
                "max_possible_score": s.max_possible_score,
                "category": s.category,
                "probability_band": s.probability_band,
                "max_possible_category": s.max_possible_category,
            }
            for s in result.scores
        ],
        "muscle_biopsy_done": result.muscle_biopsy_done,
        "skin_sign_present": result.skin_sign_present,
        "age_at_onset_years": result.age_at_onset_years,
        **_exclusions_dict(result),
        "items": [
            {
                "item": i.item,
                "group": i.group,
                "points": i.points,
                "present": i.present,
                "counted_points": i.counted_points,
                "source": i.source,
            }
            for i in result.items
        ],
        "subgroup": result.subgroup,
        "subgroup_note": result.subgroup_note,
        "note": result.note,
        "citation": result.citation,
    }


def _lab_dict(lab: Any) -> dict[str, Any]:
    return {
        "name": lab.name,
        "field": lab.field,
        "value": lab.value,
        "unit": lab.unit,
        "flag": lab.flag,
        "status": lab.status,
        "reference_range": lab.shown_range() or None,
        **(
            {"value_canonical": round(lab.value_canonical, 4), "canonical_unit": lab.canonical_unit}
            if lab.value_canonical is not None
            else {}
        ),
        **({"derived_from": lab.derived_from} if lab.derived_from else {}),
    }
