"""The 2013 ACR/EULAR classification criteria for systemic sclerosis, and CREST features.

van den Hoogen F et al., Arthritis Rheum 2013;65:2737-47. Each domain scores the
highest of its items present; the total classifies at 9 or more. Items that are
unknown are listed, with the highest total they could still reach, so the caller
can tell whether the unknown items could change the classification.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from calcinosis.clinical.case import Case
from calcinosis.clinical.knowledge import Knowledge


@dataclass(frozen=True)
class SscItem:
    item: str
    domain: str
    points: int
    #: True (present), False (absent) or None (not known).
    present: bool | None
    #: Where the answer came from (``ssc_criteria.<item>`` or ``labs.<name>``).
    source: str
    #: Points this item adds to the total (0 when a higher item of its domain counts).
    counted_points: int


@dataclass(frozen=True)
class SscCriteriaResult:
    score: int
    threshold: int
    classified: bool
    #: Highest total reachable if every unknown item turned out present.
    max_possible_score: int
    #: Whether the unknown items could still change ``classified`` (only upward: scores never fall).
    unknown_could_change: bool
    items: tuple[SscItem, ...]
    unknown_items: tuple[str, ...]
    citation: str
    #: Exclusions present (skin thickening sparing the fingers, a scleroderma-like disorder):
    #: the criteria do not apply and the patient is not classified, whatever the score.
    excluded_by: tuple[str, ...] = ()
    #: Exclusions not stated: the criteria apply only if they are absent.
    exclusions_unknown: tuple[str, ...] = ()
    note: str = (
        "Classification criteria, meant for studies; they do not apply when skin thickening "
        "spares the fingers or a scleroderma-like disorder explains the features."
    )


@dataclass(frozen=True)
class CrestFeature:
    feature: str
    #: "present", "absent", "unknown", or "implied" (only by a stated CREST diagnosis).
    status: str
    source: str


def ssc_criteria(case: Case, knowledge: Knowledge) -> SscCriteriaResult | None:
    """Score the 2013 ACR/EULAR criteria; ``None`` when the case gives no criteria items."""
    if case.ssc_criteria is None:
        return None
    given = dict(case.ssc_criteria)
    items: list[SscItem] = []
    score = 0
    max_possible = 0
    for domain in knowledge.ssc_domains:
        answers = []
        for item, points in domain.items:
            present, source = given.get(item), f"ssc_criteria.{item}"
            if (
                present is None
                and item in _ANTIBODY_LABS
                and given.get("ssc_autoantibodies") is False
            ):
                present, source = False, "ssc_criteria.ssc_autoantibodies"
            if present is None:
                present, source = _from_labs(case, item, present, source)
            answers.append((item, points, present, source))
        answers = _combine_antibodies(answers)
        best = max((p for _, p, present, _ in answers if present), default=0)
        reachable = max((p for _, p, present, _ in answers if present is not False), default=0)
        score += best
        max_possible += reachable
        counted = False
        # The first present item with the domain's best score is the one counted.
        for item, points, present, source in answers:
            counts = bool(present) and points == best and not counted
            counted = counted or counts
            if item in given or present is not None or item in _CORE_ITEMS:
                items.append(
                    SscItem(item, domain.id, points, present, source, points if counts else 0)
                )
    excluded_by = tuple(item for item, _ in knowledge.ssc_exclusions if given.get(item) is True)
    exclusions_unknown = tuple(
        item for item, _ in knowledge.ssc_exclusions if given.get(item) is None
    )
    applicable = not excluded_by
    classified = applicable and score >= knowledge.ssc_threshold
    unknown = tuple(i.item for i in items if i.present is None)
    return SscCriteriaResult(
        score=score,
        threshold=knowledge.ssc_threshold,
        classified=classified,
        max_possible_score=max_possible,
        unknown_could_change=applicable
        and (not classified)
        and max_possible >= knowledge.ssc_threshold,
        items=tuple(items),
        unknown_items=unknown,
        citation=knowledge.cite(knowledge.ssc_citation),
        excluded_by=excluded_by,
        exclusions_unknown=exclusions_unknown,
    )


# Items always listed (the antibodies may instead be given one by one).
_CORE_ITEMS = (
    "skin_thickening_proximal_to_mcp", "puffy_fingers", "sclerodactyly", "digital_tip_ulcers",
    "fingertip_pitting_scars", "telangiectasia", "abnormal_nailfold_capillaries",
    "pulmonary_arterial_hypertension", "interstitial_lung_disease", "raynaud_phenomenon",
    "ssc_autoantibodies",
)  # fmt: skip
_ANTIBODY_LABS = ("anticentromere", "anti_topoisomerase_i", "anti_rna_polymerase_iii")


def _combine_antibodies(
    answers: list[tuple[str, int, bool | None, str]],
) -> list[tuple[str, int, bool | None, str]]:
    """``ssc_autoantibodies`` is absent when each of the three antibodies is known to be absent."""
    individual = [a for a in answers if a[0] in _ANTIBODY_LABS]
    if len(individual) == len(_ANTIBODY_LABS) and all(a[2] is False for a in individual):
        return [
            (item, points, False, "+".join(a[3] for a in individual))
            if item == "ssc_autoantibodies" and present is None
            else (item, points, present, source)
            for item, points, present, source in answers
        ]
    return answers


def _from_labs(case: Case, item: str, present: bool | None, source: str) -> tuple[bool | None, str]:
    """Fill an unknown antibody item from the labs (a positive antibody counts)."""
    names = (
        _ANTIBODY_LABS
        if item == "ssc_autoantibodies"
        else (item,)
        if item in _ANTIBODY_LABS
        else ()
    )
    results = [case.lab(n) for n in names]
    results = [r for r in results if r is not None and r.status is not None]
    if any(r.status == "positive" for r in results):
        hit = next(r for r in results if r.status == "positive")
        return True, hit.field
    if item == "ssc_autoantibodies" and len(results) == len(_ANTIBODY_LABS):
        return False, ", ".join(r.field for r in results)
    if item != "ssc_autoantibodies" and results:
        return False, results[0].field
    return present, source


_CREST_TERMS = {
    "calcinosis": (),
    "raynaud_phenomenon": ("raynaud",),
    "esophageal_dysmotility": ("esophag", "oesophag", "dysphagia"),
    "sclerodactyly": ("sclerodactyl",),
    "telangiectasia": ("telangiectas",),
}


def crest_features(case: Case) -> tuple[CrestFeature, ...]:
    """The five CREST features, each present / absent / unknown / implied, with its source.

    Calcinosis is present by definition (the work-up is about it). The others come
    from the SSc criteria items, diagnoses and symptoms; a diagnosis that names CREST
    marks the remaining features as "implied" rather than present.
    """
    criteria = dict(case.ssc_criteria or ())
    texts = [(f"diagnoses[{i}]", t) for i, t in enumerate(case.diagnoses or ())]
    texts += [(f"symptoms[{i}]", t) for i, t in enumerate(case.symptoms or ())]
    crest_diagnosis = next((f for f, t in texts if re.search(r"\bcrest\b", t, re.IGNORECASE)), None)
    features = []
    for feature, terms in _CREST_TERMS.items():
        if feature == "calcinosis":
            features.append(CrestFeature(feature, "present", "the reason for the work-up"))
            continue
        if criteria.get(feature) is not None:
            status = "present" if criteria[feature] else "absent"
            features.append(CrestFeature(feature, status, f"ssc_criteria.{feature}"))
            continue
        hit = next((f for f, t in texts if any(term in t.lower() for term in terms)), None)
        if hit is not None:
            features.append(CrestFeature(feature, "present", hit))
        elif crest_diagnosis is not None:
            features.append(CrestFeature(feature, "implied", crest_diagnosis))
        else:
            features.append(CrestFeature(feature, "unknown", ""))
    return tuple(features)
