"""Treatment options for the classified type, with cautions computed for this patient.

The options, their mechanisms, evidence levels and references are data
(``data/treatments.yaml``); this module picks those that apply to the primary type,
evaluates each caution against the case, and marks options already tried (a
medication with the same agent, or given ``for: calcinosis``, or surgery history).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from calcinosis.clinical.case import Case
from calcinosis.clinical.facts import Fact
from calcinosis.clinical.knowledge import Knowledge, TreatmentSpec
from calcinosis.clinical.text import affirmed, matches


@dataclass(frozen=True)
class TreatmentOption:
    id: str
    name: str
    mechanism: str
    evidence_level: str
    evidence_description: str
    references: tuple[str, ...]
    applies_to: tuple[str, ...]
    #: Cautions that hold for this patient (or must be checked because a fact is unknown).
    cautions: tuple[str, ...]
    #: E.g. "already tried: diltiazem (current, for calcinosis)"; empty when not tried.
    already_tried: tuple[str, ...]
    #: Patient-specific remark (the drug to stop, for removing the cause).
    remark: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "mechanism": self.mechanism,
            "evidence": {
                "level": self.evidence_level,
                "description": self.evidence_description,
                "scale": "Oxford CEBM 2011 levels of evidence",
            },
            "references": list(self.references),
            "applies_to": list(self.applies_to),
            "cautions": list(self.cautions),
            "already_tried": list(self.already_tried),
            **({"remark": self.remark} if self.remark else {}),
        }


def caution_facts(case: Case, facts: dict[str, Fact], knowledge: Knowledge) -> dict[str, Any]:
    """Facts the treatment cautions read (see the list in ``treatments.yaml``), plus the classification facts."""
    vocab = knowledge.vocabulary
    values: dict[str, Any] = {k: f.value for k, f in facts.items()}
    meds = case.medications
    current = None if meds is None else [m for m in meds if m.current is not False]

    def on(terms: tuple[str, ...]) -> bool | None:
        return None if current is None else any(matches(m.name, terms) for m in current)

    texts = [*(case.diagnoses or ()), *(case.symptoms or ())]
    described = case.diagnoses is not None or case.symptoms is not None

    def mentioned(terms: tuple[str, ...]) -> bool | None:
        # Absence from free text is weak evidence; it only counts when some text was given.
        return True if any(affirmed(t, terms) for t in texts) else (False if described else None)

    anticoagulant, antiplatelet = on(vocab["anticoagulant"]), on(vocab["antiplatelet"])
    ulceration = case.skin.ulceration
    values["on_anticoagulant"] = anticoagulant
    values["on_antiplatelet"] = antiplatelet
    values["bleeding_risk"] = _any_true(anticoagulant, antiplatelet, ulceration)
    values["warfarin_use"] = on(vocab["vitamin_k_antagonist"])
    values["calcium_based_binder"] = on(("calcium acetate", "calcium carbonate"))
    values["colchicine_interacting_drug"] = on(vocab["colchicine_interacting_drug"])
    values["on_colchicine"] = on(("colchicine",))
    egfr = case.lab("egfr")
    values["egfr_below_35"] = (
        None if egfr is None or egfr.value_canonical is None else egfr.value_canonical < 35
    )
    if values["egfr_below_35"] is None and egfr is not None and egfr.status == "normal":
        values["egfr_below_35"] = False
    if values.get("dialysis_or_kidney_failure") is True:
        values["egfr_below_35"] = True  # on dialysis (or eGFR < 15): no creatinine needed
    values["renal_impairment"] = _any_true(
        values.get("chronic_kidney_disease"), None if egfr is None else egfr.status == "low"
    )
    calcium = case.lab("calcium")
    values["hypocalcaemia"] = None if calcium is None else calcium.status == "low"
    pth = case.lab("intact_pth")
    values["pth_high"] = None if pth is None else pth.status == "high"
    values["hypotension"] = mentioned(vocab["hypotension"])
    values["heart_block"] = mentioned(vocab["heart_block"])
    age, sex = case.patient.age_years, case.patient.sex
    pregnant = case.patient.pregnant
    if pregnant is None and (sex == "male" or (age is not None and (age < 12 or age > 55))):
        pregnant = False
    values["pregnant"] = pregnant
    values["child_under_8"] = None if age is None else age < 8
    values["child"] = None if age is None else age < 18
    return values


def select_treatments(
    case: Case, primary: str, facts: dict[str, Fact], knowledge: Knowledge
) -> tuple[TreatmentOption, ...]:
    """The options in ``treatments.yaml`` that apply to ``primary``, in file order."""
    values = caution_facts(case, facts, knowledge)
    options = []
    for spec in knowledge.treatments:
        if primary not in spec.applies_to:
            continue
        if spec.requires is not None and spec.requires.evaluate(values) is False:
            continue
        cautions = []
        for caution in spec.cautions:
            holds = caution.condition.evaluate(values)
            if holds is True:
                cautions.append(caution.text)
            elif holds is None and caution.if_unknown:
                cautions.append(caution.if_unknown)
        options.append(
            TreatmentOption(
                id=spec.id,
                name=spec.name,
                mechanism=spec.mechanism,
                evidence_level=spec.evidence_level,
                evidence_description=spec.evidence_description,
                references=tuple(knowledge.cite(r) for r in spec.references),
                applies_to=spec.applies_to,
                cautions=tuple(cautions),
                already_tried=_already_tried(case, spec),
                remark=_remark(case, spec, values, knowledge),
            )
        )
    return tuple(options)


def other_tried_for_calcinosis(
    case: Case, options: tuple[TreatmentOption, ...], knowledge: Knowledge
) -> tuple[str, ...]:
    """Medications given ``for: calcinosis`` that match none of the listed options."""
    listed = {spec.id: spec for spec in knowledge.treatments}
    agents = tuple(a for o in options for a in listed[o.id].agents)
    return tuple(
        f"{m.name} ({'current' if m.current else 'past' if m.current is False else 'current or past'})"
        for m in case.medications or ()
        if m.indication
        and "calcinosis" in m.indication.lower()
        and not (agents and matches(m.name, agents))
    )


def _already_tried(case: Case, spec: TreatmentSpec) -> tuple[str, ...]:
    if not spec.agents:
        return ()
    tried = []
    for med in case.medications or ():
        if matches(med.name, spec.agents):
            when = {True: "current", False: "past", None: "current or past"}[med.current]
            purpose = f", for {med.indication}" if med.indication else ""
            tried.append(f"already tried: {med.name} ({when}{purpose})")
    for surgery in case.history.surgery_for_calcinosis or ():
        if matches(surgery, spec.agents) or spec.id == "surgery":
            tried.append(f"already tried: {surgery} (history.surgery_for_calcinosis)")
    return tuple(tried)


def _remark(
    case: Case, spec: TreatmentSpec, values: dict[str, Any], knowledge: Knowledge
) -> str | None:
    if spec.id == "calciphylaxis_care":
        return _calciphylaxis_remark(case, knowledge)
    if spec.id != "remove_cause":
        return None
    parts = []
    if values.get("injected_drug"):
        # The drugs behind the injected_drug fact (the same routes): not any drug with "inject"
        # in its route, with every drug that has a route as the fallback, which named oral drugs
        # as locally injected and missed a current one given "SC".
        local = knowledge.vocabulary["local_injection_route"]
        injected = [m for m in case.medications or () if m.route and matches(m.route, local)]
        names = [m.name for m in injected]
        current = [m.name for m in injected if m.current]
        unknown = [m.name for m in injected if m.current is None]
        parts.append(
            "locally injected: "
            + ", ".join(dict.fromkeys(names))
            + (
                "; still given: " + ", ".join(current) + " - rotate sites or change drug/route"
                if current
                else "; not recorded whether still given: " + ", ".join(dict.fromkeys(unknown))
                + " - if so, rotate sites or change drug/route"
                if unknown
                else "; no longer given - watch whether the deposits regress"
            )
        )
    if values.get("calcium_or_phosphate_given"):
        parts.append(
            "calcium or phosphate was given; avoid further infusion at that site and check for extravasation"
        )
    return "; ".join(parts) or None


def _calciphylaxis_remark(case: Case, knowledge: Knowledge) -> str | None:
    """The patient's current drugs that promote calciphylaxis, named so they can be stopped."""
    vocab = knowledge.vocabulary
    terms = (*vocab["vitamin_k_antagonist"], *vocab["calcium_or_vitamin_d_supplement"])
    names = [
        m.name for m in case.medications or () if m.current is not False and matches(m.name, terms)
    ]
    if not names:
        return None
    return "review and stop where possible: " + ", ".join(dict.fromkeys(names))


def _any_true(*values: bool | None) -> bool | None:
    if any(v is True for v in values):
        return True
    return False if all(v is False for v in values) else None
