"""One case per type of calcinosis, written for the test, in both unit systems; and boundaries."""

from __future__ import annotations

import pytest

from calcinosis.clinical import load_case, run_workup
from calcinosis.errors import InputError


def _hpt(make):
    # Primary hyperparathyroidism: high calcium, low phosphate, high PTH.
    return make(
        "primary-hpt", {"calcium": 11.8, "phosphate": 2.1, "intact_pth": 180, "creatinine": 0.9}
    )


def _renal(make):
    # Chronic kidney disease with hyperphosphataemia and secondary hyperparathyroidism.
    return make(
        "ckd-hyperphosphataemia",
        {"calcium": 9.4, "phosphate": 8.2, "intact_pth": 320, "creatinine": 4.5},
        history={"chronic_kidney_disease": True},
    )


def _calciphylaxis(make):
    return make(
        "dialysis-calciphylaxis",
        {"calcium": 9.6, "phosphate": 5.8, "intact_pth": 450},
        history={"chronic_kidney_disease": True, "dialysis": True},
        skin={
            "necrosis": True,
            "retiform_purpura": True,
            "ulceration": True,
            "sites": ["thigh", "abdomen"],
        },
        symptoms=["very painful necrotic plaques on the thighs"],
    )


def _idiopathic(make):
    return make(
        "idiopathic",
        {
            "calcium": 9.4,
            "phosphate": 3.5,
            "intact_pth": 40,
            "creatinine": 0.9,
            "vitamin_d_25oh": 32,
        },
        history={"hyperparathyroidism": False},
    )


def _calcium_infusion(make):
    return make(
        "calcium-gluconate",
        {"calcium": 9.2, "phosphate": 3.6, "intact_pth": 35},
        history={
            "trauma_or_procedure_at_site": "extravasation of a calcium gluconate infusion",
            "calcium_or_phosphate_infusion": True,
        },
        medications=[
            {"name": "calcium gluconate 10%", "route": "intravenous infusion", "current": False}
        ],
        skin={"sites": ["forearm"]},
    )


CASES = {
    "metastatic-hpt": (_hpt, "metastatic"),
    "metastatic-renal": (_renal, "metastatic"),
    "calciphylaxis": (_calciphylaxis, "calciphylaxis"),
    "idiopathic": (_idiopathic, "idiopathic"),
    "iatrogenic-calcium": (_calcium_infusion, "iatrogenic"),
}


@pytest.mark.parametrize("units", ["conventional", "si"])
@pytest.mark.parametrize("name", list(CASES))
def test_each_type_in_both_unit_systems(name, units, conventional_case, to_si, write_case):
    build, expected = CASES[name]
    case = build(conventional_case)
    if units == "si":
        case = to_si(case)
        assert case["labs"]["calcium"]["unit"] == "mmol/L"
    workup = run_workup(load_case(write_case(case)))
    assert workup.classification.primary == expected
    assert workup.classification.confidence == "supported"
    assert workup.classification.reasons, "a classification always comes with its reasons"


def test_same_scores_in_both_unit_systems(conventional_case, to_si, write_case):
    for build, _ in CASES.values():
        case = build(conventional_case)
        a = run_workup(load_case(write_case(case))).classification
        b = run_workup(load_case(write_case(to_si(case)))).classification
        assert a.ranking == b.ranking


def test_metastatic_hpt_reasons_and_treatments(conventional_case, write_case):
    workup = run_workup(load_case(write_case(_hpt(conventional_case))))
    rules = {r.rule_id for r in workup.classification.reasons}
    assert {"MET-CA", "MET-PTH"} <= rules and "MET-P" not in rules
    ids = {t.id for t in workup.treatments}
    assert "pth_control" in ids
    assert "phosphate_binders" not in ids  # phosphate is low and the kidneys are normal
    assert workup.calcium_phosphate_product_mg2_dl2 == pytest.approx(11.8 * 2.1)


def test_renal_case_product_and_kidney_facts(conventional_case, write_case):
    workup = run_workup(load_case(write_case(_renal(conventional_case))))
    assert workup.calcium_phosphate_product_mg2_dl2 == pytest.approx(9.4 * 8.2)  # 77.1 >= 70
    rules = {r.rule_id for r in workup.classification.reasons}
    assert {"MET-P", "MET-CAXP", "MET-CKD", "MET-PTH"} <= rules
    assert workup.case.lab("egfr").value < 15  # creatinine 4.5 mg/dL, female 60 y
    ids = {t.id for t in workup.treatments}
    assert {"phosphate_binders", "pth_control", "dialysis_optimization"} <= ids


def test_calciphylaxis_reasons_and_warfarin_caution(conventional_case, write_case):
    case = _calciphylaxis(conventional_case)
    case["medications"] = [{"name": "warfarin", "route": "oral", "current": True}]
    workup = run_workup(load_case(write_case(case)))
    assert workup.classification.primary == "calciphylaxis"
    rules = {r.rule_id for r in workup.classification.reasons}
    assert {"CAL-NECROSIS-RENAL", "CAL-PURPURA", "CAL-PAIN", "CAL-DIALYSIS"} <= rules
    options = {t.id: t for t in workup.treatments}
    assert "sodium_thiosulfate" in options
    assert any("warfarin" in x for x in options["dialysis_optimization"].cautions)
    assert "low_dose_warfarin" not in options


def test_iatrogenic_calcium_names_the_cause(conventional_case, write_case):
    workup = run_workup(load_case(write_case(_calcium_infusion(conventional_case))))
    rules = {r.rule_id for r in workup.classification.reasons}
    assert "IAT-CA-P" in rules and "DYS-TRAUMA" not in rules
    assert workup.treatments[0].id == "remove_cause"
    assert "calcium" in (workup.treatments[0].remark or "")


def test_oral_phosphate_is_not_an_iatrogenic_cause(conventional_case, write_case):
    # Oral sodium phosphate (for hypophosphataemia), history.calcium_or_phosphate_infusion false:
    # IAT-CA-P ('given by infusion or injection ... deposits calcium locally') fired,
    # iatrogenic 'supported'.
    case = _idiopathic(conventional_case)
    case["medications"] = [{"name": "sodium phosphate", "route": "oral", "current": True}]
    workup = run_workup(load_case(write_case(case)))
    assert "IAT-CA-P" not in {r.rule_id for r in workup.classification.reasons}
    assert workup.classification.primary == "idiopathic"
    # Given intravenously, it is the iatrogenic cause.
    case["medications"][0]["route"] = "intravenous infusion"
    assert run_workup(load_case(write_case(case))).classification.primary == "iatrogenic"


@pytest.mark.parametrize(
    ("procedure", "patient"),
    [
        ("repeated heel sticks", {"age_years": 0.1, "sex": "male"}),
        ("EEG electrode paste", {"age_years": 40, "sex": "female"}),
    ],
)
def test_procedure_at_the_site_without_a_drug_is_iatrogenic(
    procedure, patient, conventional_case, write_case
):
    # Heel sticks in neonates and calcium chloride electrode paste are iatrogenic causes in
    # the pathway; no drug was injected, so IAT-INJECTION cannot fire. Labs as flags: the
    # adult reference ranges do not apply to a neonate.
    case = conventional_case(
        "procedure", {}, patient=patient, history={"trauma_or_procedure_at_site": procedure}
    )
    case["labs"] = {name: {"flag": "normal"} for name in ("calcium", "phosphate", "intact_pth")}
    workup = run_workup(load_case(write_case(case)))
    c = workup.classification
    assert c.primary == "iatrogenic" and c.tied_with == ()
    rules = {r.rule_id for r in c.reasons}
    assert "IAT-PROCEDURE" in rules and "IAT-INJECTION" not in rules
    reason = next(r for r in c.reasons if r.rule_id == "IAT-PROCEDURE")
    assert any(e.field == "history.trauma_or_procedure_at_site" for e in reason.evidence)
    assert workup.treatments[0].id == "remove_cause"
    # Medications not stated: whether a drug was injected there is unknown, so the rule
    # waits, and the missing fact is named instead.
    case["medications"] = None
    c = run_workup(load_case(write_case(case))).classification
    assert "IAT-PROCEDURE" not in {r.rule_id for r in c.reasons}
    assert any("injected_drug" in m.facts for m in c.missing)


@pytest.mark.parametrize(
    ("calcium", "unit", "status", "primary"),
    [
        (10.2, "mg/dL", "normal", "idiopathic"),  # exactly the upper limit: normal
        (2.55, "mmol/L", "normal", "idiopathic"),
        (10.3, "mg/dL", "high", "metastatic"),  # just above
        (2.58, "mmol/L", "high", "metastatic"),
        (8.5, "mg/dL", "normal", "idiopathic"),  # exactly the lower limit
    ],
)
def test_calcium_at_the_upper_reference_limit(
    calcium, unit, status, primary, conventional_case, write_case
):
    case = _idiopathic(conventional_case)
    case["labs"]["calcium"] = {"value": calcium, "unit": unit}
    workup = run_workup(load_case(write_case(case)))
    assert workup.case.lab("calcium").status == status
    assert workup.classification.primary == primary


def test_own_reference_range_overrides_the_default(conventional_case, write_case):
    case = _idiopathic(conventional_case)
    case["labs"]["calcium"] = {"value": 10.4, "unit": "mg/dL", "reference_range": [8.6, 10.5]}
    workup = run_workup(load_case(write_case(case)))
    assert workup.case.lab("calcium").status == "normal"
    assert workup.classification.primary == "idiopathic"


@pytest.mark.parametrize(
    ("lab", "entry", "reads_as"),
    [
        ("calcium", {"value": 9.9, "unit": "mg/dL", "reference_range": [2.1, 2.6]}, "mmol/L"),
        ("calcium", {"value": 2.4, "unit": "mmol/L", "reference_range": [8.5, 10.5]}, "mg/dL"),
        ("phosphate", {"value": 4.0, "unit": "mg/dL", "reference_range": [0.8, 1.5]}, "mmol/L"),
        ("creatinine", {"value": 0.9, "unit": "mg/dL", "reference_range": [53, 106]}, "µmol/L"),
    ],
)
def test_reference_range_in_another_unit_than_the_value_is_refused(
    lab, entry, reads_as, conventional_case, write_case
):
    # Calcium 9.9 mg/dL against [2.1, 2.6] (the report's SI range) read as high: metastatic.
    case = _idiopathic(conventional_case)
    case["labs"][lab] = entry
    with pytest.raises(InputError) as info:
        load_case(write_case(case))
    assert f"labs.{lab}.reference_range" in str(info.value)
    assert f"reads as {reads_as}, but the value is in {entry['unit']}" in str(info.value)
    # A child's range in the value's unit lies in neither usual range and is taken as given.
    case["patient"]["age_years"] = 7
    case["labs"] = {"phosphate": {"value": 5.0, "unit": "mg/dL", "reference_range": [4.5, 6.5]},
                    "creatinine": {"value": 0.3, "unit": "mg/dL", "reference_range": [0.2, 0.5]}}  # fmt: skip
    assert load_case(write_case(case)).lab("phosphate").status == "normal"


def test_product_at_threshold_counts_as_high(conventional_case, write_case):
    case = _idiopathic(conventional_case)
    case["labs"]["calcium"] = {"value": 10.0, "unit": "mg/dL"}
    case["labs"]["phosphate"] = {"value": 7.0, "unit": "mg/dL"}
    workup = run_workup(load_case(write_case(case)))
    assert workup.calcium_phosphate_product_mg2_dl2 == pytest.approx(70.0)
    assert "MET-CAXP" in {r.rule_id for r in workup.classification.reasons}
    case["labs"]["phosphate"] = {"value": 6.9, "unit": "mg/dL"}
    workup = run_workup(load_case(write_case(case)))
    assert "MET-CAXP" not in {r.rule_id for r in workup.classification.reasons}


def test_bisphosphonate_caution_with_low_egfr(conventional_case, write_case):
    case = conventional_case(
        "ctd-low-egfr",
        {"calcium": 9.0, "phosphate": 3.0},
        history={"connective_tissue_disease": "dermatomyositis"},
    )
    case["labs"]["egfr"] = {"value": 30, "unit": "mL/min/1.73 m²"}
    workup = run_workup(load_case(write_case(case)))
    assert workup.classification.primary == "dystrophic"
    options = {t.id: t for t in workup.treatments}
    assert any("below 35" in x for x in options["bisphosphonate"].cautions)
    assert any("renal" in x for x in options["ivig"].cautions)
    case["labs"]["egfr"] = {"value": 50, "unit": "mL/min/1.73m2"}
    options = {t.id: t for t in run_workup(load_case(write_case(case))).treatments}
    assert not any("below 35" in x for x in options["bisphosphonate"].cautions)


def test_minocycline_caution_in_a_child_and_in_pregnancy(conventional_case, write_case):
    case = conventional_case(
        "jdm-child",
        {"calcium": 9.5, "phosphate": 4.0},
        patient={"age_years": 6, "sex": "male"},
        diagnoses=["juvenile dermatomyositis"],
    )
    # A child: the adult ranges of calcium and phosphate do not apply; the lab's own are given.
    case["labs"]["calcium"]["reference_range"] = [8.8, 10.8]
    case["labs"]["phosphate"]["reference_range"] = [3.7, 5.8]
    options = {t.id: t for t in run_workup(load_case(write_case(case))).treatments}
    assert any("under 8" in x for x in options["minocycline"].cautions)
    case = conventional_case(
        "ssc-pregnant",
        {"calcium": 9.5, "phosphate": 4.0},
        patient={"age_years": 30, "sex": "female", "pregnant": True},
        diagnoses=["systemic sclerosis"],
    )
    options = {t.id: t for t in run_workup(load_case(write_case(case))).treatments}
    assert any("contraindicated in pregnancy" in x for x in options["minocycline"].cautions)


def test_treatment_tried_for_calcinosis_but_not_listed_is_noted(conventional_case, write_case):
    case = _calcium_infusion(conventional_case)
    case["medications"].append(
        {"name": "warfarin", "route": "oral", "current": False, "for": "calcinosis"}
    )
    workup = run_workup(load_case(write_case(case)))
    assert "low_dose_warfarin" not in {t.id for t in workup.treatments}  # not an iatrogenic option
    assert workup.other_treatments_tried == ("warfarin (past)",)
    assert workup.to_dict()["other_treatments_tried"] == ["warfarin (past)"]


def test_dialysis_without_skin_lesions_is_not_called_calciphylaxis(conventional_case, write_case):
    # Calcified nodules in a dialysis patient, calcium and phosphate normal, the skin over them
    # free of necrosis and retiform purpura: kidney failure is calciphylaxis's setting, not its
    # sign. (Was calciphylaxis 3 vs 1, 'supported', with calciphylaxis care advised.)
    case = conventional_case(
        "dialysis-nodules",
        {"calcium": 9.5, "phosphate": 4.2, "intact_pth": 250},
        history={"chronic_kidney_disease": True, "dialysis": True},
    )
    workup = run_workup(load_case(write_case(case)))
    c = workup.classification
    assert c.primary != "calciphylaxis" and c.confidence != "supported"
    assert "CAL-DIALYSIS" not in {r.rule_id for r in c.reasons}
    assert "calciphylaxis_care" not in {t.id for t in workup.treatments}
    # Skin not examined: the examination is what would decide.
    case["skin"].update(necrosis=None, retiform_purpura=None)
    workup = run_workup(load_case(write_case(case)))
    assert workup.classification.primary != "calciphylaxis"
    assert any(m.facts == ("skin_necrosis",) and m.would_be == "calciphylaxis"
               for m in workup.classification.missing)  # fmt: skip
    assert {t.id: t for t in workup.suggested_tests}["skin_examination"].would_change_answer
    # Necrotic skin: calciphylaxis, dialysis among the reasons.
    case["skin"].update(necrosis=True)
    c = run_workup(load_case(write_case(case))).classification
    assert c.primary == "calciphylaxis" and c.confidence == "supported"
    assert {"CAL-DIALYSIS", "CAL-NECROSIS-RENAL"} <= {r.rule_id for r in c.reasons}
