"""Medical correctness of the work-up on constructed cases: types, criteria and treatment advice."""

from __future__ import annotations

from calcinosis.clinical import load_case, run_workup


def _nonuremic_calciphylaxis(make, **fields):
    # Normal kidneys, calcium and phosphate; painful necrosis with retiform purpura on warfarin.
    case = make(
        "nonuremic-calciphylaxis",
        {"calcium": 9.4, "phosphate": 3.5, "intact_pth": 40, "creatinine": 0.8},
        history={"hyperparathyroidism": False},
        skin={"necrosis": True, "retiform_purpura": True, "ulceration": True, "sites": ["thigh"]},
        symptoms=["very painful necrotic plaques on the thighs"],
        medications=[
            {"name": "warfarin", "route": "oral", "current": True},
            {"name": "calcium carbonate", "route": "oral", "current": True},
        ],
    )
    case.update(fields)
    return case


def test_nonuremic_calciphylaxis_on_warfarin_is_not_idiopathic(conventional_case, write_case):
    workup = run_workup(load_case(write_case(_nonuremic_calciphylaxis(conventional_case))))
    c = workup.classification
    assert c.primary == "calciphylaxis"
    assert c.confidence == "supported"
    rules = {r.rule_id for r in c.reasons}
    assert "CAL-VKA" in rules
    # Idiopathic is a diagnosis of exclusion: necrotic skin / retiform purpura is not excluded.
    assert "IDIO-EXCLUSION" not in rules


def test_calciphylaxis_care_stops_warfarin_calcium_and_vitamin_d(conventional_case, write_case):
    case = _nonuremic_calciphylaxis(conventional_case)
    case["medications"].append({"name": "calcitriol", "route": "oral"})
    case["medications"].append({"name": "cholecalciferol", "route": "oral", "current": False})
    workup = run_workup(load_case(write_case(case)))
    options = {t.id: t for t in workup.treatments}
    # Without kidney disease the dialysis option is absent: the advice must not depend on it.
    assert "dialysis_optimization" not in options
    care = options["calciphylaxis_care"]
    assert workup.treatments[0].id == "calciphylaxis_care"
    assert any("warfarin" in x and "stop" in x for x in care.cautions)
    assert "warfarin" in care.remark and "calcium carbonate" in care.remark
    assert "calcitriol" in care.remark  # current unknown: possibly still taken
    assert "cholecalciferol" not in care.remark  # stopped already


def test_calcium_based_binder_is_flagged_not_counted_as_tried(conventional_case, write_case):
    case = conventional_case(
        "dialysis-calciphylaxis",
        {"calcium": 9.6, "phosphate": 6.8, "intact_pth": 450},
        history={"chronic_kidney_disease": True, "dialysis": True},
        skin={"necrosis": True, "retiform_purpura": True, "ulceration": True, "sites": ["thigh"]},
        symptoms=["painful plaques"],
        medications=[{"name": "calcium acetate", "route": "oral", "current": True}],
    )
    workup = run_workup(load_case(write_case(case)))
    assert workup.classification.primary == "calciphylaxis"
    binders = {t.id: t for t in workup.treatments}["phosphate_binders"]
    assert binders.already_tried == ()  # a calcium binder is not the non-calcium option
    assert any("calcium-based" in x for x in binders.cautions)


def test_low_dose_warfarin_evidence_is_stated_as_negative(shared_case):
    workup = run_workup(load_case(shared_case("ssc-crest-dystrophic.yaml")))
    warfarin = {t.id: t for t in workup.treatments}["low_dose_warfarin"]
    assert warfarin.evidence_description.startswith("evidence against benefit")
    assert any("Traineau" in r for r in warfarin.references)
    assert any("no benefit" in x for x in warfarin.cautions)  # she takes it for calcinosis
