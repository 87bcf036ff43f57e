"""The 2013 ACR/EULAR classification criteria for systemic sclerosis, and CREST features.

van den Hoogen F et al., Arthritis Rheum 2013;65:2737-47. Each domain scores the
highest of its items present; the total classifies at 9 or more. Items that are
unknown are listed, with the highest total they could still reach, so the caller
can tell whether the unknown items could change the classification.
"""

from __future__ import annotations

from dataclasses import dataclass

from calcinosis.clinical.case import Case
from calcinosis.clinical.knowledge import Knowledge
from calcinosis.clinical.text import affirmed, negated


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
    excluded_by, exclusions_unknown = _exclusions(knowledge.ssc_exclusions, given)
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


#: "crest" that is not the CREST syndrome.
_NOT_CREST = ("iliac crest", "crest of the ilium")
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
    crest_diagnosis = next(
        (f for f, t in texts if affirmed(t, ("crest",), _NOT_CREST)), None
    )
    features = []
    for feature, terms in _CREST_TERMS.items():
        if feature == "calcinosis":
            features.append(CrestFeature(feature, "present", "the reason for the work-up"))
            continue
        if criteria.get(feature) is not None:
            status = "present" if criteria[feature] else "absent"
            features.append(CrestFeature(feature, status, f"ssc_criteria.{feature}"))
            continue
        hit = next((f for f, t in texts if affirmed(t, terms)), None)
        denied = next((f for f, t in texts if negated(t, terms)), None)
        if hit is not None:
            features.append(CrestFeature(feature, "present", hit))
        elif denied is not None:  # "no Raynaud phenomenon"
            features.append(CrestFeature(feature, "absent", denied))
        elif crest_diagnosis is not None:
            features.append(CrestFeature(feature, "implied", crest_diagnosis))
        else:
            features.append(CrestFeature(feature, "unknown", ""))
    return tuple(features)


# --- 2017 EULAR/ACR classification criteria for idiopathic inflammatory myopathies ---------

#: Categories from the lowest, by the score cut-offs of the publication's abstract.
IIM_CATEGORIES = ("unlikely", "possible", "probable", "definite")
IIM_CLASSIFYING = ("probable", "definite")


@dataclass(frozen=True)
class IimItem:
    item: str
    group: str
    #: Points of the item in the model that classifies (with or without muscle biopsy).
    points: float
    #: True (present), False (absent) or None (not known).
    present: bool | None
    #: Where the answer came from (``iim_criteria.<item>``, ``patient.age_years``).
    source: str
    counted_points: float


@dataclass(frozen=True)
class IimModelScore:
    #: ``without_biopsy`` or ``with_biopsy``.
    model: str
    score: float
    #: Highest total reachable if every unknown item turned out present.
    max_possible_score: float
    category: str
    probability_band: str
    #: Category of ``max_possible_score``.
    max_possible_category: str


@dataclass(frozen=True)
class IimCriteriaResult:
    """The 2017 EULAR/ACR IIM criteria for one case; the scores count known items only."""

    #: Why the criteria are shown: ``iim_criteria`` given, or the field that names myositis.
    shown_because: str
    #: The model that classifies: ``with_biopsy`` when a muscle biopsy was done.
    model: str
    score: float
    max_possible_score: float
    category: str
    probability_band: str
    classified: bool
    #: Whether the unknown items could still make the patient classified.
    unknown_could_change: bool
    items: tuple[IimItem, ...]
    unknown_items: tuple[str, ...]
    #: The score without biopsy, and the one with biopsy when a biopsy was done.
    scores: tuple[IimModelScore, ...]
    muscle_biopsy_done: bool
    #: Heliotrope rash, Gottron's papules or Gottron's sign: True (one present), False (all
    #: absent), None (none present, some unknown).
    skin_sign_present: bool | None
    age_at_onset_years: float | None
    citation: str
    #: Why a score at or above the cut-off does not classify (no skin sign and no biopsy).
    not_classified_because: str | None = None
    excluded_by: tuple[str, ...] = ()
    exclusions_unknown: tuple[str, ...] = ()
    #: The published logistic model's probability: not computed (see ``probability_note``).
    probability: float | None = None
    probability_note: str = (
        "The probability itself is not computed: the constants of the published logistic "
        "model could not be verified from a stored source; the band is the one the "
        "publication gives for the score's range."
    )
    #: The subgroup (DM, JDM, amyopathic DM, IBM, PM): not computed (see ``subgroup_note``).
    subgroup: str | None = None
    subgroup_note: str = (
        "Subclassification (dermatomyositis, juvenile dermatomyositis, amyopathic "
        "dermatomyositis, inclusion body myositis, polymyositis) is not done: the "
        "classification tree could not be verified from a stored source."
    )
    note: str = (
        "Classification criteria, meant for studies, to be used only when no better "
        "explanation for the symptoms and signs exists; probable IIM (>= 55 %) is the "
        "recommended minimum to classify."
    )

    @property
    def score_is_lower_bound(self) -> bool:
        return bool(self.unknown_items)


def iim_criteria(case: Case, knowledge: Knowledge) -> IimCriteriaResult | None:
    """Score the 2017 EULAR/ACR IIM criteria.

    ``None`` when the case gives no ``iim_criteria`` and names no myositis (no diagnosis,
    connective tissue disease or symptom matching ``plausible_when_named``).
    """
    spec = knowledge.iim
    shown_because = _iim_shown_because(case, spec.plausible_when_named)
    if shown_because is None:
        return None
    given_input = case.iim_criteria
    given = dict(given_input.items) if given_input is not None else {}
    onset = given_input.age_at_onset_years if given_input is not None else None
    biopsy = (
        given_input.muscle_biopsy_done
        if given_input is not None and given_input.muscle_biopsy_done is not None
        else any(given.get(item) is not None for item in spec.biopsy_items)
    )
    answers = [(i, given.get(i.id), f"iim_criteria.{i.id}") for i in spec.items]
    age_answers = [(i, *_age_answer(i, onset, case.patient.age_years)) for i in spec.age_items]

    def model_score(model: str) -> IimModelScore:
        scored = [(i, p, s) for i, p, s in answers if _tenths_in(i, model) is not None]
        score = sum(_tenths_in(i, model) for i, present, _ in scored + age_answers if present)
        reachable = score + sum(_tenths_in(i, model) for i, present, _ in scored if present is None)
        if not any(present for _, present, _ in age_answers):
            reachable += max(
                (_tenths_in(i, model) for i, present, _ in age_answers if present is None), default=0
            )
        cutoffs = spec.cutoffs[model]
        category = _iim_category(score, cutoffs)
        return IimModelScore(
            model,
            score / 10,
            reachable / 10,
            category,
            spec.bands[category],
            _iim_category(reachable, cutoffs),
        )

    without = model_score("without_biopsy")
    scores = (without,)
    model = "without_biopsy"
    chosen = without
    if biopsy:
        model = "with_biopsy"
        chosen = model_score(model)
        scores = (without, chosen)

    items = [
        IimItem(i.id, i.group, t / 10, present, source, t / 10 if present else 0.0)
        for i, present, source in age_answers + answers
        if (t := _tenths_in(i, model)) is not None
    ]
    skin = [given.get(item) for item in spec.skin_items]
    skin_present = True if any(skin) else (False if all(s is False for s in skin) else None)
    excluded_by, exclusions_unknown = _exclusions(spec.exclusions, given)
    applicable = not excluded_by
    reaches = chosen.category in IIM_CLASSIFYING
    allowed = bool(skin_present) or biopsy
    classified = applicable and reaches and allowed
    not_because = None
    if applicable and reaches and not allowed:
        not_because = (
            "no heliotrope rash, Gottron's papules or Gottron's sign is known to be present and "
            "no muscle biopsy was done: without these skin signs the criteria need muscle "
            "biopsy features to classify"
        )
    could = (
        applicable
        and not classified
        and chosen.max_possible_category in IIM_CLASSIFYING
        and (biopsy or skin_present is not False)
    )
    return IimCriteriaResult(
        shown_because=shown_because,
        model=model,
        score=chosen.score,
        max_possible_score=chosen.max_possible_score,
        category=chosen.category,
        probability_band=chosen.probability_band,
        classified=classified,
        unknown_could_change=could,
        items=tuple(items),
        unknown_items=tuple(i.item for i in items if i.present is None),
        scores=scores,
        muscle_biopsy_done=biopsy,
        skin_sign_present=skin_present,
        age_at_onset_years=onset,
        citation=knowledge.cite(spec.citation),
        not_classified_because=not_because,
        excluded_by=excluded_by,
        exclusions_unknown=exclusions_unknown,
    )


def _exclusions(
    exclusions: tuple[tuple[str, str], ...], given: dict[str, bool | None]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Of a criteria set's exclusions (``(item, label)``), those stated present (the criteria do
    not apply) and those not stated (the criteria apply only if they are absent)."""
    present = tuple(item for item, _ in exclusions if given.get(item) is True)
    unknown = tuple(item for item, _ in exclusions if given.get(item) is None)
    return present, unknown


def _tenths_in(item, model: str) -> int | None:
    """An item's points (tenths) in the ``with_biopsy`` or ``without_biopsy`` model; None
    where it does not score in that model."""
    return item.tenths_with_biopsy if model == "with_biopsy" else item.tenths_without_biopsy


def _iim_category(tenths: int, cutoffs: dict[str, int]) -> str:
    reached = [c for c in IIM_CATEGORIES[1:] if tenths >= cutoffs[c]]
    return reached[-1] if reached else IIM_CATEGORIES[0]


def _age_answer(item, onset: float | None, age_now: float | None) -> tuple[bool | None, str]:
    """Whether the age of onset falls in the item's range; the current age bounds it when the
    onset is not given (the onset is no later than now)."""
    def inside(years: float) -> bool:
        return years >= item.from_years and (item.below_years is None or years < item.below_years)

    if onset is not None:
        return inside(onset), "iim_criteria.age_at_onset_years"
    if age_now is not None and age_now < item.from_years:
        return False, "patient.age_years (the onset cannot be later than now)"
    return None, "iim_criteria.age_at_onset_years"


def _iim_shown_because(case: Case, terms: tuple[str, ...]) -> str | None:
    if case.iim_criteria is not None:
        return "iim_criteria"
    texts = [(f"diagnoses[{i}]", t) for i, t in enumerate(case.diagnoses or ())]
    ctd = case.history.connective_tissue_disease
    if isinstance(ctd, str):
        texts.append(("history.connective_tissue_disease", ctd))
    texts += [(f"symptoms[{i}]", t) for i, t in enumerate(case.symptoms or ())]
    for field, text in texts:
        if affirmed(text, terms):  # not "dermatomyositis excluded"
            return field
    return None
