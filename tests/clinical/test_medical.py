"""Medical correctness of the work-up on constructed cases: types, criteria and treatment advice."""

from __future__ import annotations

import pytest

from calcinosis.clinical import load_case, render_workup_html, run_workup


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


def test_calcium_is_interpreted_albumin_corrected(conventional_case, write_case, to_si):
    # Total calcium 10.0 mg/dL looks normal, but with albumin 2.5 g/dL the corrected
    # calcium is 10.0 + 0.8 x (4.0 - 2.5) = 11.2 mg/dL: hypercalcaemia.
    case = conventional_case(
        "hypoalbuminaemia",
        {"calcium": 10.0, "phosphate": 3.5, "intact_pth": 40, "creatinine": 0.8},
        history={"hyperparathyroidism": False},
    )
    case["labs"]["albumin"] = {"value": 2.5, "unit": "g/dL"}
    workup = run_workup(load_case(write_case(case)))
    calcium = workup.case.lab("calcium")
    assert calcium.value == pytest.approx(11.2) and calcium.status == "high"
    assert workup.case.lab("calcium_measured").value == 10.0  # the measured total is kept
    assert workup.classification.primary == "metastatic"
    assert "MET-CA" in {r.rule_id for r in workup.classification.reasons}
    assert workup.calcium_phosphate_product_mg2_dl2 == pytest.approx(11.2 * 3.5)
    # The same in SI units: 2.495 mmol/L and 25 g/L.
    si = to_si(case)
    si["labs"]["albumin"] = {"value": 25, "unit": "g/L"}
    calcium = run_workup(load_case(write_case(si))).case.lab("calcium")
    assert calcium.unit == "mmol/L" and calcium.status == "high"
    assert calcium.value == pytest.approx(2.495 + 0.02 * (40 - 25), abs=0.005)


def test_low_total_calcium_with_low_albumin_is_not_hypocalcaemia(conventional_case, write_case):
    # 8.0 mg/dL with albumin 2.0 g/dL: corrected 9.6 mg/dL, normal; no hypocalcaemia caution.
    case = conventional_case(
        "dm-hypoalbuminaemia",
        {"calcium": 8.0, "phosphate": 3.5, "creatinine": 0.8},
        diagnoses=["dermatomyositis"],
    )
    case["labs"]["albumin"] = {"value": 2.0, "unit": "g/dL"}
    workup = run_workup(load_case(write_case(case)))
    assert workup.case.lab("calcium").status == "normal"
    bisphosphonate = {t.id: t for t in workup.treatments}["bisphosphonate"]
    assert not any("calcium is low" in x for x in bisphosphonate.cautions)


def _ssc_case(items: dict, **fields):
    lines = ["case_id: ssc-variant", "ssc_criteria:"]
    lines += [f"  {k}: {'null' if v is None else str(v).lower()}" for k, v in items.items()]
    for key, value in fields.items():
        lines.append(f"{key}: {value}")
    return "\n".join(lines) + "\n"


def test_ssc_each_domain_counts_its_highest_item_once(write_case):
    everything = {
        "puffy_fingers": True,
        "sclerodactyly": True,  # 4, not 2 + 4
        "digital_tip_ulcers": True,
        "fingertip_pitting_scars": True,  # 3, not 2 + 3
        "pulmonary_arterial_hypertension": True,
        "interstitial_lung_disease": True,  # 2 together, not 4
        "raynaud_phenomenon": True,
        "skin_thickening_proximal_to_mcp": False,
    }
    result = run_workup(load_case(write_case(_ssc_case(everything)))).ssc_criteria
    assert result.score == 4 + 3 + 2 + 3
    assert result.classified
    eight = {"puffy_fingers": True, "fingertip_pitting_scars": True, "raynaud_phenomenon": True,
             "sclerodactyly": False, "skin_thickening_proximal_to_mcp": False}  # fmt: skip
    result = run_workup(load_case(write_case(_ssc_case(eight)))).ssc_criteria
    assert result.score == 8 and not result.classified  # 8 < 9


def test_ssc_proximal_skin_thickening_alone_is_sufficient(write_case):
    result = run_workup(
        load_case(write_case(_ssc_case({"skin_thickening_proximal_to_mcp": True})))
    ).ssc_criteria
    assert result.score == 9 and result.classified and not result.excluded_by


@pytest.mark.parametrize("exclusion", ["skin_thickening_sparing_fingers", "scleroderma_like_disorder"])
def test_ssc_criteria_do_not_apply_with_an_exclusion(exclusion, write_case):
    # No finger skin thickening among the items: with it, "sparing the fingers" is a contradiction.
    items = {"raynaud_phenomenon": True, "ssc_autoantibodies": True, "telangiectasia": True,
             "abnormal_nailfold_capillaries": True, exclusion: True}  # fmt: skip
    workup = run_workup(load_case(write_case(_ssc_case(items))))
    result = workup.ssc_criteria
    assert result.score == 10
    assert not result.classified and not result.unknown_could_change
    assert result.excluded_by == (exclusion,)
    data = workup.to_dict()["ssc_criteria"]
    assert data["applicable"] is False and data["excluded_by"] == [exclusion]
    assert "DYS-SSC" not in {r.rule_id for r in workup.classification.reasons}
    items[exclusion] = False
    assert run_workup(load_case(write_case(_ssc_case(items)))).ssc_criteria.classified


@pytest.mark.parametrize("finger_item", ["skin_thickening_proximal_to_mcp", "sclerodactyly"])
def test_skin_thickening_of_the_fingers_and_sparing_them_is_refused(finger_item, write_case, capsys):
    from calcinosis.cli import main

    # Both true contradict each other; the exclusion silently unclassified the patient.
    items = {finger_item: True, "raynaud_phenomenon": True, "skin_thickening_sparing_fingers": True}
    assert main(["workup", str(write_case(_ssc_case(items)))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ssc_criteria.skin_thickening_sparing_fingers" in err[0]
    assert f"ssc_criteria.{finger_item}" in err[0] and "make them agree" in err[0]


def test_a_tie_is_reported_as_undecided(conventional_case, write_case):
    # Kidney disease with normal calcium and phosphate and nothing else known about the
    # tissue: dystrophic, iatrogenic and idiopathic score the same (calciphylaxis, with the
    # skin free of necrosis and purpura, less: CAL-NO-SKIN-SIGNS).
    case = conventional_case(
        "ckd-normal-labs",
        {"calcium": 9.4, "phosphate": 3.8, "creatinine": 1.6},
        history={"chronic_kidney_disease": True},
    )
    workup = run_workup(load_case(write_case(case)))
    c = workup.classification
    assert c.confidence == "tentative"
    assert set(c.tied_with) == {"iatrogenic", "idiopathic"}
    assert workup.to_dict()["classification"]["tied_with"] == list(c.tied_with)
    assert "Undecided" in render_workup_html(workup)
    # A clear winner has no tie.
    shared = run_workup(load_case(write_case(_nonuremic_calciphylaxis(conventional_case))))
    assert shared.classification.tied_with == ()
    assert "Undecided" not in render_workup_html(shared)


def test_unexplained_hyperphosphataemia_points_to_the_fgf23_pathway(conventional_case, write_case):
    # Familial tumoral calcinosis: high phosphate, normal kidneys, PTH and vitamin D.
    case = conventional_case(
        "tumoral-calcinosis",
        {"calcium": 9.6, "phosphate": 6.5, "intact_pth": 20, "creatinine": 0.7},
        patient={"age_years": 19, "sex": "male"},
        skin={"sites": ["hip", "shoulder"]},
    )
    workup = run_workup(load_case(write_case(case)))
    reasons = {r.rule_id: r for r in workup.classification.reasons}
    assert workup.classification.primary == "metastatic"
    assert "FGF23" in reasons["MET-P-FGF23"].text and "TmP/GFR" in reasons["MET-P-FGF23"].text
    # High calcium too (with PTH suppressed) points to vitamin D, milk-alkali or bone
    # destruction rather than to tumoral calcinosis, where calcium is normal.
    high_ca = dict(case, labs={**case["labs"], "calcium": {"value": 11.5, "unit": "mg/dL"}})
    workup = run_workup(load_case(write_case(high_ca)))
    assert "MET-P-FGF23" not in {r.rule_id for r in workup.classification.reasons}
    # Low calcium with high phosphate is hypoparathyroidism (or pseudo-), not FGF23.
    low_ca = dict(case, labs={**case["labs"], "calcium": {"value": 7.2, "unit": "mg/dL"}})
    workup = run_workup(load_case(write_case(low_ca)))
    assert "MET-P-FGF23" not in {r.rule_id for r in workup.classification.reasons}
    # With kidney failure the high phosphate is explained: no FGF23 work-up suggested.
    case["labs"]["creatinine"] = {"value": 6.0, "unit": "mg/dL"}
    workup = run_workup(load_case(write_case(case)))
    assert "MET-P-FGF23" not in {r.rule_id for r in workup.classification.reasons}


def test_diltiazem_with_colchicine_interaction_is_flagged(shared_case):
    # The SSc case takes both diltiazem and colchicine (a CYP3A4 interaction).
    workup = run_workup(load_case(shared_case("ssc-crest-dystrophic.yaml")))
    options = {t.id: t for t in workup.treatments}
    assert any("diltiazem" in x and "colchicine levels" in x for x in options["colchicine"].cautions)
    assert any("colchicine levels" in x for x in options["calcium_channel_blocker"].cautions)


def test_colchicine_without_an_interacting_drug_has_no_interaction_caution(
    conventional_case, write_case
):
    case = conventional_case(
        "dm", {"calcium": 9.5, "phosphate": 4.0, "creatinine": 0.7}, diagnoses=["dermatomyositis"]
    )
    case["medications"] = [{"name": "methotrexate", "route": "oral", "current": True}]
    options = {t.id: t for t in run_workup(load_case(write_case(case))).treatments}
    assert not any("colchicine levels" in x for x in options["colchicine"].cautions)
    assert not any("colchicine levels" in x for x in options["calcium_channel_blocker"].cautions)


@pytest.mark.parametrize(
    "diagnosis", ["Sjögren's syndrome", "MCTD", "antisynthetase syndrome", "morphoea"]
)
def test_connective_tissue_disease_spellings_are_recognised(diagnosis, conventional_case, write_case):
    case = conventional_case(
        "ctd-spelling",
        {"calcium": 9.4, "phosphate": 3.5, "intact_pth": 40, "creatinine": 0.8},
        diagnoses=[diagnosis],
        history={"connective_tissue_disease": None},
    )
    workup = run_workup(load_case(write_case(case)))
    assert "DYS-CTD" in {r.rule_id for r in workup.classification.reasons}
    assert workup.classification.primary == "dystrophic"


def test_necrotic_purpura_in_primary_hyperparathyroidism_is_calciphylaxis(
    conventional_case, write_case
):
    case = conventional_case(
        "phpt-calciphylaxis",
        {"calcium": 11.8, "phosphate": 2.1, "intact_pth": 180, "creatinine": 0.9},
        history={"hyperparathyroidism": True},
        skin={"necrosis": True, "retiform_purpura": True, "ulceration": True, "sites": ["thigh"]},
        symptoms=["exquisitely painful plaques"],
    )
    workup = run_workup(load_case(write_case(case)))
    c = workup.classification
    assert c.primary == "calciphylaxis"
    assert "CAL-NONUREMIC" in {r.rule_id for r in c.reasons}
    assert c.alternatives[0][0] == "metastatic"  # the hypercalcaemia is still reported
    ids = [t.id for t in workup.treatments]
    assert ids[0] == "calciphylaxis_care" and "pth_control" in ids
    # Without the skin picture it stays metastatic.
    case["skin"] = {"necrosis": False, "retiform_purpura": False, "ulceration": False}
    assert run_workup(load_case(write_case(case))).classification.primary == "metastatic"


def test_dialysis_patient_is_not_asked_for_an_egfr_before_a_bisphosphonate(
    conventional_case, write_case
):
    case = conventional_case(
        "dialysis-no-creatinine",
        {"calcium": 9.6, "phosphate": 4.4, "intact_pth": 300},
        history={"chronic_kidney_disease": True, "dialysis": True},
        skin={"necrosis": True, "retiform_purpura": True, "ulceration": True, "sites": ["thigh"]},
    )
    workup = run_workup(load_case(write_case(case)))
    cautions = {t.id: t for t in workup.treatments}["bisphosphonate"].cautions
    assert any("below 35" in x for x in cautions)
    assert not any("renal function not known" in x for x in cautions)


def _jdm_child(make, age_years=7, **phosphate):
    # Juvenile dermatomyositis with calcinosis; phosphate 5.4 mg/dL, above the adult range.
    case = make(
        "jdm-child",
        {"phosphate": 5.4, "intact_pth": 30},
        patient={"age_years": age_years, "sex": "female"},
        diagnoses=["juvenile dermatomyositis"],
        history={"connective_tissue_disease": "juvenile dermatomyositis"},
    )
    case["labs"]["calcium"] = {"flag": "normal"}  # a flag is the laboratory's own judgement
    case["labs"]["phosphate"].update(phosphate)
    return case


def test_a_childs_phosphate_needs_the_laboratorys_range(conventional_case, write_case, capsys):
    from calcinosis.cli import main

    # Without its range, the adult 2.5-4.5 mg/dL would call it high: metastatic tied with
    # dystrophic, and the FGF23 (tumoral calcinosis) rule fired. Refused, naming the fix.
    path = write_case(_jdm_child(conventional_case))
    assert main(["workup", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "labs.phosphate.reference_range: missing" in err[0]
    assert "7 years old" in err[0] and "2.5-4.5 mg/dL is an adult range" in err[0]
    # With the laboratory's range for the age it is normal: dystrophic, no metabolic reason.
    workup = run_workup(load_case(write_case(_jdm_child(conventional_case, reference_range=[3.7, 5.8]))))
    assert workup.case.lab("phosphate").status == "normal"
    rules = {r.rule_id for r in workup.classification.reasons}
    assert workup.classification.primary == "dystrophic" and workup.classification.tied_with == ()
    assert not rules & {"MET-P", "MET-P-FGF23"}
    # From 18 the adult range applies.
    workup = run_workup(load_case(write_case(_jdm_child(conventional_case, age_years=18))))
    assert workup.case.lab("phosphate").status == "high"


@pytest.mark.parametrize(
    "diagnosis",
    [
        "systemic sclerosis excluded",
        "no evidence of dermatomyositis",
        "antiphospholipid syndrome (lupus anticoagulant positive)",
        "lupus pernio",  # cutaneous sarcoidosis
        "fracture of the iliac crest",
    ],
)
def test_a_diagnosis_that_denies_or_only_sounds_like_a_ctd_is_not_one(
    diagnosis, conventional_case, write_case
):
    # Each read as a connective tissue disease: DYS-CTD (+4) made the case dystrophic,
    # 'supported', with the negated or unrelated text as its evidence.
    case = _idiopathic_like(conventional_case, diagnoses=[diagnosis])
    workup = run_workup(load_case(write_case(case)))
    assert workup.classification.primary == "idiopathic"
    assert "DYS-CTD" not in {r.rule_id for r in workup.classification.reasons}
    assert workup.iim_criteria is None and workup.crest_features == ()
    # The same words affirmed still count.
    case["diagnoses"] = ["systemic sclerosis (limited, CREST)"]
    workup = run_workup(load_case(write_case(case)))
    assert workup.classification.primary == "dystrophic"


def _idiopathic_like(make, history=None, **fields):
    # Normal calcium, phosphate, PTH and kidneys; nothing at the site; no CTD in the history
    # field (a diagnosis naming one still counts).
    return make(
        "free-text",
        {"calcium": 9.4, "phosphate": 3.5, "intact_pth": 40, "creatinine": 0.9},
        history={"hyperparathyroidism": False, "connective_tissue_disease": False, **(history or {})},
        **fields,
    )


def test_negated_statements_in_symptoms_and_history(conventional_case, write_case):
    case = _idiopathic_like(
        conventional_case,
        diagnoses=["limited systemic sclerosis"],
        symptoms=["no Raynaud phenomenon", "no heart block", "pain-free nodules"],
        history={"trauma_or_procedure_at_site": "no injections"},
    )
    workup = run_workup(load_case(write_case(case)))
    crest = {f.feature: f for f in workup.crest_features}
    assert crest["raynaud_phenomenon"].status == "absent"  # was 'present' from symptoms[0]
    assert crest["raynaud_phenomenon"].source == "symptoms[0]"
    diltiazem = {t.id: t for t in workup.treatments}["calcium_channel_blocker"]
    assert not any("conduction" in x for x in diltiazem.cautions)
    assert "DYS-TRAUMA" not in {r.rule_id for r in workup.classification.reasons}
    from calcinosis.clinical.facts import case_facts
    from calcinosis.clinical.knowledge import load_knowledge

    facts = case_facts(workup.case, load_knowledge(), workup.ssc_criteria, None)
    assert facts["procedure_at_site"].value is False and facts["injection_at_site"].value is False
    assert facts["painful"].value is False
    # Affirmed, they count as before.
    case["symptoms"] = ["Raynaud phenomenon", "heart block", "painful nodules"]
    workup = run_workup(load_case(write_case(case)))
    assert {f.feature: f.status for f in workup.crest_features}["raynaud_phenomenon"] == "present"
    diltiazem = {t.id: t for t in workup.treatments}["calcium_channel_blocker"]
    assert any("conduction" in x for x in diltiazem.cautions)


def test_no_test_is_suggested_that_was_done(conventional_case, write_case):
    # Phosphate and PTH measured, calcium only flagged, on dialysis, hyperparathyroidism not
    # stated. Suggested were serum phosphate and PTH ('not known for this patient': the Ca x P
    # product and the history were unknown) and creatinine/eGFR for a patient on dialysis.
    case = conventional_case(
        "done-tests",
        {"phosphate": 7.0, "intact_pth": 40},
        history={"dialysis": True, "chronic_kidney_disease": True, "hyperparathyroidism": None},
    )
    case["labs"]["calcium"] = {"flag": "normal"}
    tests = {t.id: t for t in run_workup(load_case(write_case(case))).suggested_tests}
    assert not {"phosphate", "pth", "renal_function"} & set(tests)
    assert "given only as a flag" in tests["calcium"].why  # 10.2 x 7.0 could reach 70
    # Not measured, they are suggested as before.
    del case["labs"]["phosphate"], case["labs"]["intact_pth"]
    case["history"]["dialysis"] = False
    tests = {t.id for t in run_workup(load_case(write_case(case))).suggested_tests}
    assert {"phosphate", "pth", "renal_function"} <= tests


def test_immunotherapy_is_offered_only_with_a_connective_tissue_disease(conventional_case, write_case):
    # Dystrophic calcinosis of a surgical scar, no connective tissue disease: IVIG, infliximab
    # and rituximab (which treat the autoimmune disease behind the damage) were offered.
    case = _idiopathic_like(
        conventional_case, history={"trauma_or_procedure_at_site": "surgical scar"}
    )
    workup = run_workup(load_case(write_case(case)))
    assert workup.classification.primary == "dystrophic"
    ids = {t.id for t in workup.treatments}
    assert not {"ivig", "infliximab", "rituximab"} & ids
    assert {"calcium_channel_blocker", "surgery"} <= ids
    # With dermatomyositis, or with the question open, they are listed.
    for ctd in ("dermatomyositis", None):
        case["history"]["connective_tissue_disease"] = ctd
        ids = {t.id for t in run_workup(load_case(write_case(case))).treatments}
        assert {"ivig", "infliximab", "rituximab"} <= ids, ctd


def test_remove_the_cause_names_the_injected_drugs_and_whether_they_go_on(shared_case):
    # Routes written "subcutaneous"/"SC" (no word "inject"): the remark fell back to every drug
    # with a route, naming oral ones as locally injected and "still given", and missed a
    # current drug given "SC" ("no longer given - watch whether the deposits regress").
    import yaml

    from calcinosis.clinical import parse_case

    raw = yaml.safe_load(shared_case("ifnb-injection-sites.yaml").read_text(encoding="utf-8"))
    raw["medications"][0]["route"] = "subcutaneous"
    raw["medications"][1].update(route="SC", current=True)
    raw["medications"].append({"name": "baclofen", "route": "oral", "current": True})

    def remark(case):
        return {t.id: t for t in run_workup(parse_case(case)).treatments}["remove_cause"].remark

    text = remark(raw)
    assert "baclofen" not in text
    assert "interferon beta-1b, interferon beta-1a" in text
    assert "still given: interferon beta-1a - rotate sites" in text
    raw["medications"][1]["current"] = None  # not recorded: not "no longer given"
    assert "not recorded whether still given: interferon beta-1a" in remark(raw)
    raw["medications"][1]["current"] = False
    assert "no longer given - watch whether the deposits regress" in remark(raw)


@pytest.mark.parametrize(("diagnosis", "myositis"),
                         [("limited cutaneous SSc", False), ("dcSSc", False), ("JDM", True)])
def test_the_usual_abbreviations_name_the_disease(diagnosis, myositis, conventional_case, write_case):
    # 'lcSSc', 'dcSSc' and 'JDM' named no connective tissue disease: calcinosis in systemic
    # sclerosis or juvenile dermatomyositis was a tie with idiopathic and iatrogenic.
    case = _idiopathic_like(conventional_case, diagnoses=[diagnosis])
    workup = run_workup(load_case(write_case(case)))
    assert workup.classification.primary == "dystrophic"
    assert "DYS-CTD" in {r.rule_id for r in workup.classification.reasons}
    assert (workup.iim_criteria is not None) is myositis


def test_bisphosphonate_caution_with_kidney_disease_of_unknown_stage(conventional_case, write_case):
    # Known chronic kidney disease, no creatinine: the caution said "renal function not known".
    case = _idiopathic_like(conventional_case, history={"connective_tissue_disease": "dermatomyositis",
                                                        "chronic_kidney_disease": True})  # fmt: skip
    del case["labs"]["creatinine"]
    options = {t.id: t for t in run_workup(load_case(write_case(case))).treatments}
    cautions = options["bisphosphonate"].cautions
    assert any(x.startswith("eGFR not known to be 35 or more") for x in cautions)
    assert not any("renal function not known" in x for x in cautions)


def test_a_reason_cites_each_field_once(conventional_case, write_case):
    # CAL-NECROSIS-RENAL reads kidney disease and kidney failure, which both cite
    # history.chronic_kidney_disease and history.dialysis: each was listed twice.
    case = conventional_case(
        "calciphylaxis", {"calcium": 9.6, "phosphate": 4.0},
        history={"chronic_kidney_disease": True, "dialysis": True},
        skin={"necrosis": True, "retiform_purpura": True},
    )  # fmt: skip
    for reason in run_workup(load_case(write_case(case))).classification.reasons:
        fields = [(e.field, e.value) for e in reason.evidence]
        assert len(fields) == len(set(fields)), reason.rule_id
