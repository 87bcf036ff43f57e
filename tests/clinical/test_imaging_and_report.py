"""The --imaging link, and the written outputs (workup.json, self-contained workup.html)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from calcinosis.cli import main
from calcinosis.clinical import load_case, render_workup_section_html, run_workup, write_workup
from calcinosis.clinical.imaging import interpret_imaging
from calcinosis.errors import InputError


def _summary(compartments: dict[str, float], regions: dict[str, float]) -> dict:
    """A summary.json as `calcinosis analyze` writes it; values are volumes in mm3."""

    def rows(table):
        return {
            k: {"count": 1 if v else 0, "volume_mm3": v, "mass_mg": v * 0.5}
            for k, v in table.items()
        }

    total = sum(compartments.values())
    return {
        "schema_version": "1",
        "totals": {"count": 12, "volume_mm3": total, "mass_mg": total * 0.5, "agatston": 100.0},
        "by_compartment": rows(compartments),
        "by_region": rows(regions),
        "by_side": {"left": {"count": 6}, "right": {"count": 6}},
        "pattern": "Multiple subcutaneous deposits in both thighs.",
    }


INJECTION = _summary(
    {"subcutaneous": 900.0, "cutaneous": 50.0, "juxta_osseous": 50.0, "vascular": 0.0},
    {"thigh": 800.0, "abdomen": 150.0, "knee": 50.0},
)
PERIARTICULAR = _summary(
    {"subcutaneous": 200.0, "juxta_osseous": 700.0, "vascular": 0.0},
    {"elbow": 400.0, "wrist_hand": 300.0, "back": 200.0},
)
VASCULAR = _summary({"subcutaneous": 200.0, "vascular": 800.0}, {"thigh": 500.0, "abdomen": 500.0})


def test_imaging_pattern_facts():
    assert interpret_imaging(INJECTION).facts["imaging_injection_site_pattern"] is True
    assert interpret_imaging(INJECTION).facts["imaging_vascular_pattern"] is False
    assert (
        interpret_imaging(PERIARTICULAR).facts["imaging_periarticular_paraspinal_pattern"] is True
    )
    assert interpret_imaging(PERIARTICULAR).facts["imaging_injection_site_pattern"] is False
    assert interpret_imaging(VASCULAR).facts["imaging_vascular_pattern"] is True


def test_imaging_link_changes_the_reasons(shared_case):
    case = load_case(shared_case("ifnb-injection-sites.yaml"))
    without = run_workup(case)
    with_imaging = run_workup(case, INJECTION)
    rules_without = {r.rule_id for r in without.classification.reasons}
    rules_with = {r.rule_id for r in with_imaging.classification.reasons}
    assert rules_with - rules_without == {"IMG-INJECTION-SITES"}
    assert with_imaging.classification.primary == "iatrogenic"
    assert (
        with_imaging.classification.scores["iatrogenic"]
        == without.classification.scores["iatrogenic"] + 2
    )
    assert with_imaging.to_dict()["classification"]["imaging_used"] is True
    assert without.to_dict()["classification"]["imaging_used"] is False
    reason = next(
        r for r in with_imaging.classification.reasons if r.rule_id == "IMG-INJECTION-SITES"
    )
    assert any(e.field.startswith("by_compartment") for e in reason.evidence)
    # Imaging of the wrong kind does not add the reason.
    assert "IMG-INJECTION-SITES" not in {
        r.rule_id for r in run_workup(case, PERIARTICULAR).classification.reasons
    }


def test_periarticular_imaging_supports_dystrophic(shared_case):
    case = load_case(shared_case("ssc-crest-dystrophic.yaml"))
    workup = run_workup(case, PERIARTICULAR)
    assert workup.classification.primary == "dystrophic"
    assert "IMG-PERIARTICULAR" in {r.rule_id for r in workup.classification.reasons}


def test_vascular_imaging_in_dialysis_supports_calciphylaxis(write_case):
    text = (
        "case_id: v\nhistory: {dialysis: true, chronic_kidney_disease: true}\n"
        "labs: {calcium: {flag: normal}, phosphate: {flag: normal}}\n"
    )
    case = load_case(write_case(text))
    workup = run_workup(case, VASCULAR)
    assert "IMG-VASCULAR-RENAL" in {r.rule_id for r in workup.classification.reasons}
    assert (
        workup.classification.scores["calciphylaxis"]
        == run_workup(case).classification.scores["calciphylaxis"] + 2
    )


def test_vascular_imaging_does_not_make_calciphylaxis_without_its_skin_lesions(write_case):
    # Dialysis, normal calcium and phosphate, vascular deposits on CT, skin over the deposits
    # free of necrosis and retiform purpura: calciphylaxis 1 + 2 = 3 against 1 ('supported').
    text = (
        "case_id: v\nhistory: {dialysis: true, chronic_kidney_disease: true}\n"
        "labs: {calcium: {flag: normal}, phosphate: {flag: normal}}\n"
        "skin: {necrosis: false, retiform_purpura: false}\n"
    )
    workup = run_workup(load_case(write_case(text)), VASCULAR)
    c = workup.classification
    assert c.primary != "calciphylaxis" and c.scores["calciphylaxis"] < c.ranking[0][1]
    assert {"IMG-VASCULAR-RENAL", "CAL-NO-SKIN-SIGNS"} <= {r.rule_id for r in c.reasons}
    assert "calciphylaxis_care" not in {t.id for t in workup.treatments}


def test_summary_with_missing_keys_is_tolerated(write_case):
    case = load_case(
        write_case("case_id: m\nmedications: [{name: glatiramer, route: subcutaneous}]\n")
    )
    for summary in (
        {},
        {"totals": {"count": 3}},
        {"by_compartment": {"subcutaneous": {"count": 3}}},
        {"by_compartment": "nonsense", "by_region": []},
    ):
        workup = run_workup(case, summary)
        assert workup.imaging is not None and workup.imaging.notes
        assert not any(r.rule_id.startswith("IMG-") for r in workup.classification.reasons)
    workup = run_workup(case, {"totals": {"count": 0}})
    assert any("no deposits" in n for n in workup.imaging.notes)


@pytest.mark.parametrize(
    "key, value, field",
    [
        ("by_compartment.vascular.volume_mm3", -100, "by_compartment.vascular.volume_mm3: -100"),
        ("by_region.thigh.volume_mm3", float("inf"), "by_region.thigh.volume_mm3: inf"),
        ("by_region.thigh.volume_mm3", float("nan"), "by_region.thigh.volume_mm3: nan"),
        ("by_compartment.vascular.volume_mm3", "lots", "by_compartment.vascular.volume_mm3: expected a number"),
        ("by_compartment.vascular.count", 2.5, "by_compartment.vascular.count: 2.5 is not a whole number"),
        ("by_compartment.vascular.count", True, "by_compartment.vascular.count: expected a number"),
        ("by_region.thigh.mass_mg", -1, "by_region.thigh.mass_mg: -1"),
        ("totals.count", -2, "totals.count: -2"),
        # Finite, but more than any body: a few of them add up to inf (shares of nan%).
        ("by_region.thigh.volume_mm3", 1e308, "by_region.thigh.volume_mm3: 1e+308"),
    ],
)
def test_impossible_counts_and_volumes_are_bad_input(key, value, field):
    # They gave evidence of "-100% of deposits" (negative) or "nan% of deposits" (infinite).
    summary = json.loads(json.dumps(INJECTION))
    *path, measure = key.split(".")
    row = summary
    for name in path:
        row = row[name]
    row[measure] = value
    with pytest.raises(InputError, match="imaging summary " + re.escape(field)):
        interpret_imaging(summary)


def test_cli_refuses_a_summary_with_a_negative_volume(shared_case, tmp_path, capsys):
    summary = tmp_path / "summary.json"
    summary.write_text(
        '{"pattern": "x", "totals": {"count": 2}, "by_compartment": {"vascular": {"volume_mm3": -100}, '
        '"subcutaneous": {"volume_mm3": 200}}, "by_region": {"thigh": {"volume_mm3": -50}, '
        '"elbow": {"volume_mm3": Infinity}}}',
        encoding="utf-8",
    )
    code = main(["workup", str(shared_case("ifnb-injection-sites.yaml")), "--imaging", str(summary)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "by_compartment.vascular.volume_mm3: -100" in err


@pytest.fixture(scope="module")
def hostile_workup(tmp_path_factory):
    path = tmp_path_factory.mktemp("hostile") / "case.yaml"
    path.write_text(
        "case_id: '<script>alert(1)</script>'\n"
        "diagnoses: ['<img src=\"http://evil.example/x.png\">', systemic sclerosis]\n"
        "symptoms: ['pain & <b>swelling</b>']\n"
        "labs: {calcium: {value: 9.9, unit: mg/dL}, phosphate: {value: 4.5, unit: mg/dL}, "
        "note_lab: {value: '<a href=\"https://x.example\">x</a>'}}\n",
        encoding="utf-8",
    )
    return run_workup(load_case(path))


def test_html_is_self_contained_and_escaped(hostile_workup, tmp_path):
    paths = write_workup(hostile_workup, tmp_path / "out")
    html = paths["html"].read_text(encoding="utf-8")
    tags = _tags(html)
    assert (
        "script" not in {t for t, _ in tags}
        and "img" not in {t for t, _ in tags}
        and "a" not in {t for t, _ in tags}
    )
    assert not [a for _, attrs in tags for a in attrs if a in ("href", "src")]
    assert "&lt;script&gt;" in html and "&lt;b&gt;swelling&lt;/b&gt;" in html
    assert "not a diagnosis" in html
    section = render_workup_section_html(hostile_workup)
    assert section.startswith('<section class="calcinosis-workup">') and section.endswith(
        "</section>"
    )
    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert data["case_id"] == "<script>alert(1)</script>"  # JSON keeps the text as it is


def _tags(html: str) -> list[tuple[str, tuple[str, ...]]]:
    """Every start tag of a document with its attribute names."""
    found: list[tuple[str, tuple[str, ...]]] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, tuple(name for name, _ in attrs)))

    Collector().feed(html)
    return found


def test_workup_json_contract(shared_case, tmp_path):
    code = main(
        ["workup", str(shared_case("ssc-crest-dystrophic.yaml")), "--out", str(tmp_path / "o")]
    )
    assert code == 0
    data = json.loads((tmp_path / "o" / "workup.json").read_text(encoding="utf-8"))
    assert set(data["classification"]) >= {"primary", "alternatives", "reasons", "missing"}
    assert data["classification"]["primary"] == "dystrophic"
    assert data["ssc_criteria"]["score"] == 22 and data["ssc_criteria"]["classified"] is True
    assert data["ssc_criteria"]["items"]
    assert data["calcium_phosphate_product"]["value"] == pytest.approx(44.55)
    assert "not a diagnosis" in data["disclaimer"]
    assert isinstance(data["treatments"], list) and isinstance(data["suggested_tests"], list)
    for reason in data["classification"]["reasons"]:
        assert reason["rule"] and reason["text"] and reason["evidence"]
        for e in reason["evidence"]:
            assert set(e) == {"field", "value", "reference_range"}
    html = (tmp_path / "o" / "workup.html").read_text(encoding="utf-8")
    assert "dystrophic" in html and "Total 22" in html
    assert "labs.egfr (estimated from labs.creatinine)" in html
    assert "http" not in html  # no URLs at all, not even in the citations
    assert {a for _, attrs in _tags(html) for a in attrs} <= {"class", "lang", "charset"}
    assert not list((tmp_path / "o").glob(".*part*"))  # no temporary leftovers


def test_cli_without_out_prints_and_writes_nothing(shared_case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["workup", str(shared_case("ifnb-injection-sites.yaml"))]) == 0
    out = capsys.readouterr().out
    assert "iatrogenic" in out and "not a diagnosis" in out
    assert list(tmp_path.iterdir()) == []


def test_cli_summary_says_when_the_evidence_is_against_benefit(shared_case, capsys):
    # Low-dose warfarin's level 2 is the best level listed, and it is evidence against benefit:
    # the terminal summary showed '(evidence level 2)' alone.
    assert main(["workup", str(shared_case("ssc-crest-dystrophic.yaml"))]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "Low-dose warfarin" in x)
    assert "evidence level 2: evidence against benefit" in line


def test_cli_imaging_option_and_case_file_summary_path(shared_case, tmp_path, capsys):
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps(INJECTION), encoding="utf-8")
    assert (
        main(
            [
                "workup",
                str(shared_case("ifnb-injection-sites.yaml")),
                "--imaging",
                str(summary),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 0
    )
    data = json.loads((tmp_path / "o" / "workup.json").read_text(encoding="utf-8"))
    assert data["classification"]["imaging_used"]
    assert "IMG-INJECTION-SITES" in {r["rule"] for r in data["classification"]["reasons"]}
    # The case file may name the summary itself (relative to the case file's folder).
    text = shared_case("ifnb-injection-sites.yaml").read_text(encoding="utf-8")
    case_path = tmp_path / "case.yaml"
    case_path.write_text(text.replace("summary: null", "summary: summary.json"), encoding="utf-8")
    capsys.readouterr()
    assert main(["workup", str(case_path)]) == 0
    assert "IMG-INJECTION-SITES" in capsys.readouterr().out


def test_outputs_name_the_imaging_input_not_its_path(shared_case, tmp_path):
    # Study folders are often named after the patient. The summary's path stayed out of
    # neither output (workup.json gave it as imaging.source), and with --imaging the source
    # was null, or the case file's other summary, not the one used.
    folder = tmp_path / "DOE_JANE_MRN4711"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(INJECTION), encoding="utf-8")
    (folder / "other.json").write_text(json.dumps(PERIARTICULAR), encoding="utf-8")
    text = shared_case("ifnb-injection-sites.yaml").read_text(encoding="utf-8")
    case_path = tmp_path / "case.yaml"
    case_path.write_text(
        text.replace("summary: null", "summary: DOE_JANE_MRN4711/other.json"), encoding="utf-8"
    )
    out = tmp_path / "o"
    for extra, source in (
        ([], "imaging.summary"),
        (["--imaging", str(folder / "summary.json")], "--imaging"),
    ):
        assert main(["workup", str(case_path), *extra, "--out", str(out)]) == 0
        written = [(out / name).read_text(encoding="utf-8") for name in ("workup.json", "workup.html")]
        assert not any("DOE_JANE" in t or "MRN4711" in t for t in written)
        assert json.loads(written[0])["imaging"]["source"] == source


def test_cli_summary_shows_a_tie_and_the_iim_criteria(write_case, capsys):
    # The files said both; the terminal summary said neither.
    text = (
        "case_id: t\npatient: {age_years: 30, sex: female}\ndiagnoses: [dermatomyositis]\n"
        "labs: {calcium: {flag: normal}, phosphate: {flag: normal}}\n"
        "iim_criteria: {age_at_onset_years: 25, heliotrope_rash: true, gottron_papules: true,"
        " proximal_upper_limb_weakness: true}\n"
    )
    assert main(["workup", str(write_case(text))]) == 0
    out = capsys.readouterr().out
    # 3.1 + 2.1 + 0.7 + 1.3 (onset at 18-39): probable.
    assert "2017 EULAR/ACR IIM criteria: score 7.2 (without biopsy; probable, 55-90 %), classified" in out
    assert "Undecided" not in out
    tie = "case_id: t\nlabs: {calcium: {flag: normal}, phosphate: {flag: normal}}\n"
    assert main(["workup", str(write_case(tie))]) == 0
    out = capsys.readouterr().out
    assert "Undecided: dystrophic, iatrogenic, idiopathic have the same score" in out
    assert "IIM" not in out
