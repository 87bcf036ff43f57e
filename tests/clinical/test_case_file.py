"""Malformed and incomplete case files: a clear message naming the field, or a result saying what is missing."""

from __future__ import annotations

import json

import pytest
import yaml

from calcinosis.cli import main
from calcinosis.clinical import CaseFormatWarning, load_case, run_workup
from calcinosis.errors import InputError

GOOD = """\
case_id: demo
patient: {age_years: 50, sex: female}
labs:
  calcium: {value: 9.5, unit: mg/dL}
  phosphate: {flag: normal}
"""

MALFORMED = {
    "not a mapping": ("- just\n- a list\n", "must be a mapping"),
    "bad unit": (
        GOOD.replace("unit: mg/dL", "unit: mg"),
        "labs.calcium.unit: 'mg' is not a known unit for calcium; use mg/dL or mmol/L",
    ),
    "value not a number": (GOOD.replace("value: 9.5", "value: nine"), "labs.calcium.value"),
    "unknown flag": (GOOD.replace("flag: normal", "flag: elevated"), "labs.phosphate.flag"),
    "missing case_id": (GOOD.replace("case_id: demo\n", ""), "case_id"),
    "boolean not boolean": (GOOD + "history: {dialysis: sometimes}\n", "history.dialysis"),
    "unknown criteria item": (GOOD + "ssc_criteria: {raynauds: true}\n", "ssc_criteria.raynauds"),
    "lab entry not a mapping": (GOOD.replace("{flag: normal}", "normal"), "labs.phosphate"),
    "lab without value or flag": (
        GOOD.replace("{flag: normal}", "{unit: mg/dL}"),
        "labs.phosphate",
    ),
    "medication without name": (GOOD + "medications: [{route: oral}]\n", "medications[0].name"),
    "negative age": (GOOD.replace("age_years: 50", "age_years: -3"), "patient.age_years"),
    "misspelt lab key": (GOOD.replace("unit: mg/dL", "units: mg/dL"), "labs.calcium.units"),
    "unknown history field": (GOOD + "history: {dialysys: true}\n", "history.dialysys"),
    # Values no living patient can have: refused, not interpreted (an age of 4400 gave an
    # eGFR of 0 and kidney-failure cautions; a creatinine of 0 a ZeroDivisionError).
    "age typo": (
        GOOD.replace("age_years: 50", "age_years: 4400"),
        "patient.age_years: 4400 years is more than a human life (0-130)",
    ),
    "infinite age": (GOOD.replace("age_years: 50", "age_years: .inf"), "patient.age_years: inf"),
    "creatinine of zero": (
        GOOD + "  creatinine: {value: 0, unit: mg/dL}\n",
        "labs.creatinine.value: 0 mg/dL cannot be a real serum creatinine: it must be 0.05-50 mg/dL",
    ),
    "creatinine in umol/L written as mg/dL": (
        GOOD + "  creatinine: {value: 80, unit: mg/dL}\n",
        "labs.creatinine.value: 80 mg/dL cannot be a real serum creatinine",
    ),
    "calcium in mg/dL written as mmol/L": (
        GOOD.replace("value: 9.5, unit: mg/dL", "value: 9.5, unit: mmol/L"),
        "labs.calcium.value: 9.5 mmol/L cannot be a real serum calcium (total): it must be 0.25-7.49 mmol/L",
    ),
    "medication for longer than a life": (
        GOOD.replace("age_years: 50, ", "") + "medications: [{name: x, duration_years: 400}]\n",
        "medications[0].duration_years: 400 years is more than a human life",
    ),
    "medication for longer than the age": (
        GOOD + "medications: [{name: x, duration_years: 60}]\n",
        "medications[0].duration_years: 60 years is longer than the patient's age (50)",
    ),
    # YAML 1.1 reads 5e-3 as text: say what to write instead.
    "exponent without a decimal point": (
        GOOD.replace("value: 9.5", "value: 95e-1"),
        "labs.calcium.value: write 9.5 or 95.0e-1 (YAML reads 95e-1 as text",
    ),
    "age with an exponent": (
        GOOD.replace("age_years: 50", "age_years: 5e1"),
        "patient.age_years: write 50 or 5.0e+1",
    ),
    # Said in YAML's words, not Python's ("got NoneType", "got datetime.date(2017, 1, 1)").
    "empty file": ("# only a comment\n", "the case file is empty; see shared/cases/"),
    "a list, not a mapping": ("- a\n- b\n", "a mapping of fields (case_id, patient, labs, ...), got a list"),
    "case_id a date": (
        GOOD.replace("case_id: demo", "case_id: 2017-03-01"),
        "case_id: expected text, got the date 2017-03-01; write it in quotes",
    ),
    "sex a boolean": (GOOD.replace("sex: female", "sex: yes"), "patient.sex: expected text, got true"),
    # A range of two nulls read every value as normal (a calcium of 14 mg/dL).
    "range without limits": (
        GOOD.replace("value: 9.5, unit: mg/dL", "value: 14, unit: mg/dL, reference_range: [null, null]"),
        "labs.calcium.reference_range: [null, null] gives no limit",
    ),
    # A slip of a known field's name ran the case without what it held (every lab), with a
    # warning only; an unknown field of one's own (below) still only warns.
    "misspelt labs": (GOOD.replace("labs:", "lab:"), "lab: unknown top-level field; did you mean labs?"),
    "medication for medications": (
        GOOD + "medication: [{name: warfarin}]\n",
        "medication: unknown top-level field; did you mean medications?",
    ),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_file_raises_input_error_naming_the_field(name, write_case):
    text, expected = MALFORMED[name]
    with pytest.raises(InputError) as info:
        load_case(write_case(text))
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "name",
    [
        "not a mapping", "bad unit", "value not a number", "unknown flag", "missing case_id",
        "age typo", "creatinine of zero", "empty file", "case_id a date", "misspelt labs",
    ],
)  # fmt: skip
def test_cli_exit_code_2_and_one_line_message(name, write_case, capsys):
    text, expected = MALFORMED[name]
    code = main(["workup", str(write_case(text))])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0]
    assert "Traceback" not in captured.err + captured.out


def test_yaml_syntax_error_gives_the_line(write_case, capsys):
    path = write_case("case_id: x\nlabs:\n  calcium: {value: 9.5, unit: mg/dL\n  phosphate: 1\n")
    with pytest.raises(InputError, match=r"line \d+"):
        load_case(path)
    assert main(["workup", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "YAML syntax error at line" in err and len(err.splitlines()) == 1


def test_a_key_given_twice_is_refused_with_its_line(write_case, capsys):
    # PyYAML keeps the last of two equal keys silently: which calcium value is meant?
    path = write_case("case_id: x\nlabs:\n  calcium: {value: 9.5, unit: mg/dL}\n  calcium: {value: 11.5, unit: mg/dL}\n")
    with pytest.raises(InputError, match=r"line 4.*'calcium' is given twice"):
        load_case(path)
    assert main(["workup", str(path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_missing_file_and_bad_imaging_summary(tmp_path, write_case, capsys):
    assert main(["workup", str(tmp_path / "nope.yaml")]) == 2
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "summary.json"
    bad.write_text("{not json", encoding="utf-8")
    assert main(["workup", str(write_case(GOOD)), "--imaging", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not valid JSON" in err and "Traceback" not in err
    bad.write_text(json.dumps([1, 2]), encoding="utf-8")
    assert main(["workup", str(write_case(GOOD)), "--imaging", str(bad)]) == 2


def test_unknown_top_level_field_warns_but_works(write_case, capsys):
    path = write_case(GOOD + "favourite_colour: blue\n")
    with pytest.warns(CaseFormatWarning, match="favourite_colour"):
        case = load_case(path)
    assert any("favourite_colour" in w for w in case.warnings)
    assert main(["workup", str(path)]) == 0
    captured = capsys.readouterr()
    assert "favourite_colour" in captured.err
    assert "Primary type" in captured.out


def test_flag_contradicting_value_is_rejected(write_case):
    with pytest.raises(InputError, match="labs.calcium"):
        load_case(write_case(GOOD.replace("unit: mg/dL}", "unit: mg/dL, flag: high}")))


def test_aliases_and_unit_spellings(write_case):
    case = load_case(
        write_case(
            "case_id: a\npatient: {age_years: 70, sex: male}\nlabs:\n"
            "  pth: {value: 5.0, unit: PMOL/L}\n  phosphorus: {value: 1.0, unit: mmol/l}\n"
            "  creatinine: {value: 100, unit: umol/L}\n  25_oh_vitamin_d: {value: 40, unit: nmol/L}\n"
        )
    )
    assert case.lab("intact_pth").status == "normal"
    assert case.lab("phosphate").value_canonical == pytest.approx(3.097)
    assert case.lab("creatinine").value_canonical == pytest.approx(100 / 88.4, rel=1e-3)
    assert case.lab("vitamin_d_25oh").status == "low"  # 40 nmol/L ~ 16 ng/mL
    assert case.lab("egfr").derived_from == "labs.creatinine"
    # SI laboratories write PTH in ng/L and 25-OH vitamin D in ug/L: the same numbers as
    # pg/mL and ng/mL (they were refused as unknown units).
    case = load_case(
        write_case(
            "case_id: a\nlabs:\n  pth: {value: 120, unit: ng/L}\n"
            "  vitamin_d: {value: 30, unit: µg/L}\n"
        )
    )
    assert case.lab("intact_pth").value_canonical == 120 and case.lab("intact_pth").status == "high"
    assert case.lab("vitamin_d_25oh").value_canonical == 30
    # "phosphorous", the usual misspelling, was kept as a lab the work-up does not interpret.
    case = load_case(write_case("case_id: a\nlabs:\n  phosphorous: {value: 6.1, unit: mg/dL}\n"))
    assert case.lab("phosphate").status == "high"


def test_incomplete_file_lists_what_is_missing(write_case):
    workup = run_workup(load_case(write_case("case_id: only-an-id\n")))
    c = workup.classification
    assert c.primary in {"dystrophic", "metastatic", "iatrogenic", "idiopathic", "calciphylaxis"}
    assert c.confidence == "insufficient"
    assert c.missing  # many unknown facts would change the answer
    tests = {t.id for t in workup.suggested_tests}
    assert {
        "calcium",
        "phosphate",
        "pth",
        "vitamin_d_25oh",
        "renal_function",
        "autoantibodies",
        "imaging",
    } <= tests
    assert workup.ssc_criteria is None
    assert "lab:calcium" in c.unknown_facts


def test_ctd_without_labs_is_dystrophic_but_asks_for_calcium_and_phosphate(write_case):
    workup = run_workup(
        load_case(
            write_case("case_id: ctd\nhistory: {connective_tissue_disease: dermatomyositis}\n")
        )
    )
    assert workup.classification.primary == "dystrophic"
    tests = {t.id: t for t in workup.suggested_tests}
    assert "calcium" in tests and "phosphate" in tests
    # High calcium *and* phosphate would make it metastatic: reported as a missing pair or single.
    missing = [set(m.facts) for m in workup.classification.missing]
    assert any(s & {"lab:calcium", "lab:phosphate"} for s in missing)


def test_ssc_criteria_not_met_and_unknowns_could_change(write_case):
    text = (
        "case_id: early-ssc\nssc_criteria:\n  puffy_fingers: true\n  sclerodactyly: null\n"
        "  raynaud_phenomenon: true\n  telangiectasia: false\n"
    )
    result = run_workup(load_case(write_case(text))).ssc_criteria
    assert result.score == 2 + 3
    assert not result.classified
    assert result.unknown_could_change
    assert "sclerodactyly" in result.unknown_items


def test_ssc_antibody_from_labs(write_case):
    text = (
        "case_id: aca\nssc_criteria:\n  sclerodactyly: true\n  raynaud_phenomenon: true\n"
        "labs:\n  anticentromere: {flag: positive}\n"
    )
    result = run_workup(load_case(write_case(text))).ssc_criteria
    assert result.score == 4 + 3 + 3 and result.classified
    antibodies = next(i for i in result.items if i.item == "ssc_autoantibodies")
    assert antibodies.present and antibodies.source == "labs.anticentromere"


def test_all_items_known_cannot_change(write_case):
    items = [
        "skin_thickening_proximal_to_mcp",
        "puffy_fingers",
        "sclerodactyly",
        "digital_tip_ulcers",
        "fingertip_pitting_scars",
        "telangiectasia",
        "abnormal_nailfold_capillaries",
        "pulmonary_arterial_hypertension",
        "interstitial_lung_disease",
        "raynaud_phenomenon",
        "ssc_autoantibodies",
    ]
    present = ("puffy_fingers", "pulmonary_arterial_hypertension", "interstitial_lung_disease")
    body = "".join(f"  {i}: {'true' if i in present else 'false'}\n" for i in items)
    result = run_workup(load_case(write_case("case_id: x\nssc_criteria:\n" + body))).ssc_criteria
    assert result.score == 2 + 2  # puffy fingers 2; PAH and ILD together still at most 2
    assert result.max_possible_score == result.score
    assert not result.classified and not result.unknown_could_change


def test_antibodies_all_negative_in_labs_close_the_domain(write_case):
    text = (
        "case_id: neg\nssc_criteria:\n  sclerodactyly: true\n"
        "labs:\n  anticentromere: {flag: negative}\n  anti_scl70: {flag: negative}\n"
        "  anti_rna_polymerase_iii: {flag: normal}\n"
    )
    result = run_workup(load_case(write_case(text))).ssc_criteria
    antibodies = next(i for i in result.items if i.item == "ssc_autoantibodies")
    assert antibodies.present is False
    assert "ssc_autoantibodies" not in result.unknown_items
    # Everything else unknown: 9 + 4 (sclerodactyly counted) + 3 + 2 + 2 + 2 + 3 + 0.
    assert result.max_possible_score == 9 + 4 + 3 + 2 + 2 + 2 + 3


def test_a_case_file_not_in_utf8_says_how_to_save_it(tmp_path, capsys):
    path = tmp_path / "case.yaml"
    path.write_bytes("case_id: demo\n".encode("utf-16"))
    assert main(["workup", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith("the case file is not UTF-8 text; save it as UTF-8")


def test_out_must_be_a_folder(shared_case, tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x", encoding="utf-8")
    assert (
        main(["workup", str(shared_case("ifnb-injection-sites.yaml")), "--out", str(target)]) == 2
    )
    assert "must be a folder" in capsys.readouterr().err
    assert target.read_text(encoding="utf-8") == "x"


def test_out_that_would_replace_an_input_is_refused(shared_case, tmp_path, capsys):
    # A case file saved as workup.json (JSON is YAML) in the --out folder was removed as an
    # earlier run's output and overwritten by the work-up; an imaging summary the same.
    case = yaml.safe_load(shared_case("ifnb-injection-sites.yaml").read_text(encoding="utf-8"))
    text = json.dumps(case)
    (tmp_path / "workup.json").write_text(text, encoding="utf-8")
    assert main(["workup", str(tmp_path / "workup.json"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "would write workup.json over or inside the input" in err[0]
    assert (tmp_path / "workup.json").read_text(encoding="utf-8") == text
    summary = '{"totals": {"count": 0}}'
    (tmp_path / "workup.html").write_text(summary, encoding="utf-8")
    argv = ["workup", str(shared_case("ifnb-injection-sites.yaml")), "--imaging",
            str(tmp_path / "workup.html"), "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 2
    assert "would write workup.html over" in capsys.readouterr().err
    assert (tmp_path / "workup.html").read_text(encoding="utf-8") == summary


def test_a_rerun_stopped_while_writing_leaves_no_part_of_a_workup(shared_case, tmp_path, monkeypatch, capsys):
    # workup.json came first: Ctrl-C (or a failure) before workup.html left it alone, or this
    # run's workup.json beside an earlier run's page.
    import calcinosis.clinical.report as report

    out = tmp_path / "out"
    argv = ["workup", str(shared_case("ifnb-injection-sites.yaml")), "--out", str(out)]
    assert main(argv) == 0 and sorted(p.name for p in out.iterdir()) == ["workup.html", "workup.json"]

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    for name in ("write_text", "write_json"):
        with monkeypatch.context() as patch:
            patch.setattr(report, name, interrupted)
            assert main(argv) == 130
        assert sorted(p.name for p in out.iterdir()) == [], name
        assert main(argv) == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("unknown", None), ("n/a", None), ("?", None), ("absent", False), ("negative", False),
     ("none known", False), ("no injections", False), ("systemic sclerosis", "systemic sclerosis")],
)  # fmt: skip
def test_history_text_that_says_none_or_not_known(text, expected, write_case):
    # 'connective_tissue_disease: unknown' was read as the name of a connective tissue disease:
    # dystrophic, 'supported', for a patient whose history is not known.
    path = write_case(GOOD + f"history: {{connective_tissue_disease: '{text}', trauma_or_procedure_at_site: '{text}'}}\n")
    history = load_case(path).history
    assert history.connective_tissue_disease == expected
    assert history.trauma_or_procedure_at_site == expected
    if expected is None:
        workup = run_workup(load_case(path))
        assert "DYS-CTD" not in {r.rule_id for r in workup.classification.reasons}
        assert "connective_tissue_disease" in workup.classification.unknown_facts
