"""The packaged knowledge (rules, criteria, treatments) is complete, consistent and cited."""

from __future__ import annotations

from importlib import resources

import yaml

from calcinosis.clinical import load_knowledge
from calcinosis.clinical.conditions import condition_keys

TYPES = {"dystrophic", "metastatic", "iatrogenic", "idiopathic", "calciphylaxis"}


def _data(name: str):
    return yaml.safe_load(
        resources.files("calcinosis.clinical").joinpath("data", name).read_text("utf-8")
    )


def test_rules_cite_the_diagnostic_pathway_and_cover_every_type():
    k = load_knowledge()
    assert set(k.types) == TYPES
    pathway = k.cite(k.rules_citation)
    assert "Reiter N" in pathway and "Diagnostic pathway" in pathway and "2011;65:1-12" in pathway
    assert "part II" in k.cite(k.treatments_citation) and "2011;65:15-22" in k.cite(
        k.treatments_citation
    )
    promoted = {t for rule in k.rules for t, w in rule.weights if w > 0}
    assert promoted == TYPES
    for rule in k.rules:
        assert rule.citations and rule.text
        for key in condition_keys(rule.condition):
            assert key in k.facts or key.removeprefix("lab:") in k.labs


def test_suggested_tests_cover_the_pathway_work_up():
    k = load_knowledge()
    ids = {t.id for t in k.suggested_tests}
    assert {
        "calcium",
        "phosphate",
        "pth",
        "vitamin_d_25oh",
        "renal_function",
        "autoantibodies",
        "imaging",
    } <= ids
    antibodies = next(t for t in k.suggested_tests if t.id == "autoantibodies").name
    for name in ("ANA", "anti-centromere", "anti-Scl-70", "anti-RNA polymerase III"):
        assert name in antibodies
    for test in k.suggested_tests:
        for key in test.resolves:
            assert key in k.facts or key.removeprefix("lab:") in k.labs, key


def test_ssc_criteria_weights_match_the_2013_publication():
    k = load_knowledge()
    points = {item: p for d in k.ssc_domains for item, p in d.items}
    expected = {
        "skin_thickening_proximal_to_mcp": 9,
        "puffy_fingers": 2,
        "sclerodactyly": 4,
        "digital_tip_ulcers": 2,
        "fingertip_pitting_scars": 3,
        "telangiectasia": 2,
        "abnormal_nailfold_capillaries": 2,
        "pulmonary_arterial_hypertension": 2,
        "interstitial_lung_disease": 2,
        "raynaud_phenomenon": 3,
        "ssc_autoantibodies": 3,
    }
    assert {i: points[i] for i in expected} == expected
    assert k.ssc_threshold == 9
    assert "van den Hoogen" in k.cite(k.ssc_citation) and "2013;65:2737-47" in k.cite(
        k.ssc_citation
    )
    # Each domain's maximum (the higher item counts) sums to the published maximum of 28... plus none.
    assert sum(max(p for _, p in d.items) for d in k.ssc_domains) == 9 + 4 + 3 + 2 + 2 + 2 + 3 + 3


def test_treatments_include_the_reviewed_options_with_evidence_and_references():
    k = load_knowledge()
    by_id = {t.id: t for t in k.treatments}
    required = {
        "calcium_channel_blocker": "diltiazem",
        "bisphosphonate": "pamidronate",
        "low_dose_warfarin": "warfarin",
        "colchicine": "colchicine",
        "minocycline": "minocycline",
        "ivig": "ivig",
        "infliximab": "infliximab",
        "rituximab": "rituximab",
        "eswl": "lithotripsy",
        "surgery": "surgery",
        "sodium_thiosulfate": "thiosulfate",
    }
    for treatment_id, agent in required.items():
        assert agent in by_id[treatment_id].agents, treatment_id
    assert {"alendronate", "etidronate"} <= set(by_id["bisphosphonate"].agents)
    assert "iatrogenic" in by_id["remove_cause"].applies_to
    for essential in ("phosphate_binders", "pth_control", "dialysis_optimization"):
        assert {"metastatic", "calciphylaxis"} <= set(by_id[essential].applies_to)
    assert (
        "intralesional" in by_id["sodium_thiosulfate"].mechanism
        and "topical" in by_id["sodium_thiosulfate"].mechanism
    )
    for t in k.treatments:
        assert t.mechanism and t.evidence_level and t.references and t.applies_to
    for applies in TYPES:
        assert any(applies in t.applies_to for t in k.treatments), applies


def test_every_reference_key_is_cited_and_plain_text():
    raw = _data("references.yaml")["references"]
    used = set()
    for name in (
        "classification_rules.yaml",
        "treatments.yaml",
        "ssc_criteria_2013.yaml",
        "iim_criteria_2017.yaml",
        "labs.yaml",
    ):
        text = resources.files("calcinosis.clinical").joinpath("data", name).read_text("utf-8")
        used |= {key for key in raw if key in text}
    assert used == set(raw)
    assert not any("http" in v for v in raw.values())
