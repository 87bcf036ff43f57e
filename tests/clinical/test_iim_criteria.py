"""The 2017 EULAR/ACR classification criteria for idiopathic inflammatory myopathies (IIM).

Expected scores are added up by hand from the published table (Lundberg et al., Ann Rheum
Dis 2017;76:1955-64, Table "score points"; columns without / with muscle biopsy), written
here independently of the package's data file.
"""

from __future__ import annotations

import json

import pytest
import yaml

from calcinosis.cli import main
from calcinosis.clinical import load_case, run_workup
from calcinosis.clinical.knowledge import load_knowledge
from calcinosis.errors import InputError

# Published points (without biopsy, with biopsy).
PUBLISHED = {
    "age_onset_18_to_39": (1.3, 1.5),
    "age_onset_40_or_more": (2.1, 2.2),
    "proximal_upper_limb_weakness": (0.7, 0.7),
    "proximal_lower_limb_weakness": (0.8, 0.5),
    "neck_flexors_weaker_than_extensors": (1.9, 1.6),
    "legs_proximal_weaker_than_distal": (0.9, 1.2),
    "heliotrope_rash": (3.1, 3.2),
    "gottron_papules": (2.1, 2.7),
    "gottron_sign": (3.3, 3.7),
    "dysphagia_or_esophageal_dysmotility": (0.7, 0.6),
    "anti_jo1": (3.9, 3.8),
    "elevated_muscle_enzymes": (1.3, 1.4),
    "endomysial_infiltrate": (None, 1.7),
    "perimysial_or_perivascular_infiltrate": (None, 1.2),
    "perifascicular_atrophy": (None, 1.9),
    "rimmed_vacuoles": (None, 3.1),
}
CLINICAL = [k for k, (without, _) in PUBLISHED.items() if without is not None and not k.startswith("age_")]
BIOPSY = [k for k, (without, _) in PUBLISHED.items() if without is None]


def _case(items: dict, **fields) -> dict:
    case = {"case_id": "iim", "patient": {"age_years": 50, "sex": "female"}}
    case.update(fields)
    case["iim_criteria"] = items
    return case


def _all_clinical(value: bool | None, **overrides) -> dict:
    items = {k: value for k in CLINICAL}
    items.update(overrides)
    return items


def _iim(write_case, case):
    return run_workup(load_case(write_case(case))).iim_criteria


def test_points_match_the_2017_publication():
    spec = load_knowledge().iim
    loaded = {
        i.id: (
            None if i.tenths_without_biopsy is None else i.tenths_without_biopsy / 10,
            i.tenths_with_biopsy / 10,
        )
        for i in spec.items + spec.age_items
    }
    assert loaded == PUBLISHED
    tenths = {m: {c: v / 10 for c, v in cuts.items()} for m, cuts in spec.cutoffs.items()}
    assert tenths == {
        "without_biopsy": {"possible": 5.3, "probable": 5.5, "definite": 7.5},
        "with_biopsy": {"possible": 6.5, "probable": 6.7, "definite": 8.7},
    }
    assert set(spec.skin_items) == {"heliotrope_rash", "gottron_papules", "gottron_sign"}
    assert "Lundberg" in load_knowledge().cite(spec.citation)


def test_juvenile_case_hand_computed_score_is_a_lower_bound(write_case):
    case = _case(
        {
            "age_at_onset_years": 9,
            "heliotrope_rash": True,
            "gottron_papules": True,
            "proximal_upper_limb_weakness": True,
            "proximal_lower_limb_weakness": True,
            "elevated_muscle_enzymes": True,
            "anti_jo1": None,
        },
        patient={"age_years": 12, "sex": "female"},
    )
    result = _iim(write_case, case)
    # Onset at 9: no age points. 3.1 + 2.1 + 0.7 + 0.8 + 1.3.
    assert result.score == 8.0
    assert result.category == "definite" and result.probability_band == ">= 90 %"
    assert result.classified and result.model == "without_biopsy"
    # Not given or null: unknown, counted 0; reachable adds neck 1.9, legs 0.9,
    # Gottron's sign 3.3, dysphagia 0.7, anti-Jo-1 3.9.
    assert result.score_is_lower_bound
    assert set(result.unknown_items) == {
        "neck_flexors_weaker_than_extensors", "legs_proximal_weaker_than_distal",
        "gottron_sign", "dysphagia_or_esophageal_dysmotility", "anti_jo1",
    }  # fmt: skip
    assert result.max_possible_score == pytest.approx(8.0 + 1.9 + 0.9 + 3.3 + 0.7 + 3.9)
    ages = {i.item: i.present for i in result.items if i.item.startswith("age_")}
    assert ages == {"age_onset_18_to_39": False, "age_onset_40_or_more": False}
    assert result.probability is None and "not computed" in result.probability_note
    assert result.subgroup is None


@pytest.mark.parametrize(
    ("present", "category"),
    [
        # 3.3 + 1.3 + 0.9 = 5.5 exactly (a float sum gives 5.4999...): probable.
        (["gottron_sign", "legs_proximal_weaker_than_distal"], "probable"),
        # 3.3 + 1.3 + 0.7 = 5.3: possible (50-55 %).
        (["gottron_sign", "proximal_upper_limb_weakness"], "possible"),
        # 3.3 + 1.3 = 4.6: below 50 %.
        (["gottron_sign"], "unlikely"),
        # 3.3 + 1.3 + 2.1 + 0.8 = 7.5 exactly: definite.
        (["gottron_sign", "gottron_papules", "proximal_lower_limb_weakness"], "definite"),
        # 1.3 + 0.7 + 0.9 + 3.3 + 1.3 = 7.5 exactly; added as floats in this order: 7.4999...
        (
            [
                "proximal_upper_limb_weakness", "legs_proximal_weaker_than_distal",
                "gottron_sign", "elevated_muscle_enzymes",
            ],
            "definite",
        ),
    ],
)
def test_categories_at_the_published_cutoffs(present, category, write_case):
    items = _all_clinical(False, **{k: True for k in present}, age_at_onset_years=30)
    result = _iim(write_case, _case(items))
    assert result.category == category
    assert not result.score_is_lower_bound and result.unknown_items == ()
    assert result.classified == (category in ("probable", "definite"))
    assert result.max_possible_score == result.score


def test_without_skin_signs_a_biopsy_is_needed_to_classify(write_case):
    no_skin = _all_clinical(
        False,
        anti_jo1=True,
        elevated_muscle_enzymes=True,
        proximal_upper_limb_weakness=True,
        age_at_onset_years=45,
    )
    result = _iim(write_case, _case(no_skin))
    # 3.9 + 1.3 + 0.7 + 2.1 = 8.0: definite by score, but no skin sign and no biopsy.
    assert result.score == 8.0 and result.category == "definite"
    assert not result.classified
    assert "muscle biopsy" in result.not_classified_because
    assert not result.unknown_could_change

    with_biopsy = dict(no_skin, endomysial_infiltrate=True, rimmed_vacuoles=False)
    result = _iim(write_case, _case(with_biopsy))
    assert result.model == "with_biopsy" and result.muscle_biopsy_done
    # With biopsy: 3.8 + 1.4 + 0.7 + 2.2 + 1.7 = 9.8; the other biopsy items not given: unknown.
    assert result.score == pytest.approx(9.8) and result.category == "definite"
    assert result.classified and result.not_classified_because is None
    by_model = {s.model: s.score for s in result.scores}
    assert by_model == {"without_biopsy": 8.0, "with_biopsy": pytest.approx(9.8)}
    assert set(result.unknown_items) == {"perimysial_or_perivascular_infiltrate", "perifascicular_atrophy"}


def test_unknown_skin_signs_could_change_the_classification(write_case):
    items = _all_clinical(False, anti_jo1=True, elevated_muscle_enzymes=True, age_at_onset_years=45)
    items["heliotrope_rash"] = None
    result = _iim(write_case, _case(items))
    # 3.9 + 1.3 + 2.1 = 7.3: probable by score; a heliotrope rash is not known either way.
    assert result.category == "probable" and not result.classified
    assert result.skin_sign_present is None
    assert result.unknown_could_change


def test_onset_bounded_by_the_current_age_when_not_given(write_case):
    child = _iim(write_case, _case({"heliotrope_rash": True}, patient={"age_years": 10}))
    ages = {i.item: (i.present, i.source) for i in child.items if i.item.startswith("age_")}
    assert all(present is False for present, _ in ages.values())
    assert all("patient.age_years" in source for _, source in ages.values())

    adult = _iim(write_case, _case(_all_clinical(False, heliotrope_rash=True)))
    assert {"age_onset_18_to_39", "age_onset_40_or_more"} <= set(adult.unknown_items)
    # The two age items exclude each other: at most the higher one (2.1) is reachable.
    assert adult.score == pytest.approx(3.1)
    assert adult.max_possible_score == pytest.approx(3.1 + 2.1)


def test_a_better_explanation_excludes(write_case):
    items = _all_clinical(True, age_at_onset_years=45, better_explanation_exists=True)
    result = _iim(write_case, _case(items))
    assert result.category == "definite" and not result.classified
    assert result.excluded_by == ("better_explanation_exists",)
    assert not result.unknown_could_change


def test_shown_when_myositis_is_named_without_items(write_case):
    case = {"case_id": "dm", "patient": {"age_years": 35}, "diagnoses": ["juvenile dermatomyositis"]}
    result = _iim(write_case, case)
    assert result is not None and result.shown_because == "diagnoses[0]"
    assert result.score == 0 and result.score_is_lower_bound and not result.classified
    assert result.unknown_could_change

    sign = {"case_id": "s", "symptoms": ["Gottron papules over the knuckles"]}
    assert _iim(write_case, sign).shown_because == "symptoms[0]"

    other = {"case_id": "o", "diagnoses": ["systemic sclerosis"], "symptoms": ["pain"]}
    assert _iim(write_case, other) is None


def test_classified_iim_counts_as_connective_tissue_disease(write_case):
    items = _all_clinical(False, heliotrope_rash=True, gottron_sign=True, age_at_onset_years=45)
    workup = run_workup(load_case(write_case(_case(items))))
    assert workup.iim_criteria.classified
    fact = workup.classification.reasons
    ctd = next(r for r in fact if r.rule_id == "DYS-CTD")
    assert any(e.field == "iim_criteria" for e in ctd.evidence)


def test_workup_json_and_html_show_the_criteria(write_case, tmp_path):
    items = {"heliotrope_rash": True, "gottron_papules": True, "age_at_onset_years": 40}
    out = tmp_path / "out"
    assert main(["workup", str(write_case(_case(items))), "--out", str(out)]) == 0
    data = json.loads((out / "workup.json").read_text())["iim_criteria"]
    # 3.1 + 2.1 + 2.1 (onset at 40) = 7.3.
    assert data["score"] == pytest.approx(7.3) and data["category"] == "probable"
    assert data["score_is_lower_bound"] is True and data["probability_band"] == "55-90 %"
    assert data["probability"] is None and data["subgroup"] is None
    html = (out / "workup.html").read_text()
    assert "2017 EULAR/ACR classification criteria for idiopathic inflammatory myopathies" in html
    assert "lower bound" in html and "Lundberg" in html


BAD = {
    "unknown item": ({"heliotrope": True}, "iim_criteria.heliotrope: unknown item"),
    "not a boolean": ({"heliotrope_rash": "yes"}, "iim_criteria.heliotrope_rash"),
    "onset after now": ({"age_at_onset_years": 60}, "iim_criteria.age_at_onset_years: 60 is after"),
    "onset not a number": ({"age_at_onset_years": "nine"}, "iim_criteria.age_at_onset_years"),
    "biopsy finding without biopsy": (
        {"muscle_biopsy_done": False, "rimmed_vacuoles": True},
        "iim_criteria.rimmed_vacuoles: a muscle biopsy finding is given but muscle_biopsy_done is false",
    ),
    "not a mapping": (["heliotrope_rash"], "iim_criteria: expected a mapping"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_items_exit_2_with_one_line(name, write_case, capsys, tmp_path):
    items, expected = BAD[name]
    path = write_case(_case(items))
    with pytest.raises(InputError):
        load_case(path)
    code = main(["workup", str(path), "--out", str(tmp_path / "o")])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], lines
    assert "Traceback" not in captured.err + captured.out


def test_case_file_without_the_field_has_no_iim_criteria(write_case):
    text = yaml.safe_dump({"case_id": "plain", "diagnoses": ["multiple sclerosis"]})
    assert run_workup(load_case(write_case(text))).to_dict()["iim_criteria"] is None
