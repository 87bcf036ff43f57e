"""``calcinosis compare`` end to end: files, contract columns, reuse of analyses, bad inputs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from calcinosis.cli import main
from calcinosis.errors import InputError
from calcinosis.io import write_volume
from calcinosis.outputs import OutputOptions, write_analysis
from calcinosis.volume import Volume

CONTRACT = ["baseline_id", "followup_id", "status", "baseline_mass_mg", "followup_mass_mg", "mass_change_pct",
            "baseline_volume_mm3", "followup_volume_mm3", "x_mm", "y_mm", "z_mm"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, moved_pair):
    root = tmp_path_factory.mktemp("compare-inputs")
    paths = {}
    for name, analysis in (("baseline", moved_pair.baseline), ("followup", moved_pair.followup)):
        paths[f"{name}_image"] = write_volume(analysis.volume, root / f"{name}.nii.gz")
        write_analysis(analysis, root / f"{name}-analysis", OutputOptions(report=False))
        paths[f"{name}_folder"] = root / f"{name}-analysis"
    return paths


@pytest.fixture(scope="module")
def folder_run(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare-out") / "cmp"
    code = main(["compare", str(inputs["baseline_folder"]), str(inputs["followup_folder"]), "--out", str(out),
                 "--baseline-image", str(inputs["baseline_image"]),
                 "--followup-image", str(inputs["followup_image"])])
    return code, out


def test_compare_analysis_folders_writes_the_contract(folder_run, moved_pair):
    code, out = folder_run
    assert code == 0
    with open(out / "changes.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
        header = list(rows[0].keys())
    assert header[:len(CONTRACT)] == CONTRACT and "track_id" in header
    statuses = {r["status"] for r in rows}
    assert {"stable", "grown", "shrunk", "new", "resolved"} <= statuses
    n_base = len(moved_pair.baseline.lesions)
    assert sum(1 for r in rows if r["baseline_id"]) == n_base
    doc = json.loads((out / "comparison.json").read_text())
    assert doc["schema_version"] and doc["overall"]["call"] in ("progression", "stable", "improvement")
    assert doc["totals"]["baseline"]["count"] == n_base
    assert doc["totals"]["followup"]["count"] == len(moved_pair.followup.lesions)
    assert set(doc["by_compartment"]) >= {"subcutaneous", "juxta_osseous"}
    assert "by_region" in doc and doc["status_counts"]["new"] == sum(1 for r in rows if r["status"] == "new")
    reg = doc["registration"]
    assert reg["bone_dice"] > 0.85 and reg["matched_distance_mm_mean"] < 2.0
    assert any("slice thickness differs" in w for w in doc["warnings"])
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "http://" not in html and "https://" not in html
    assert f"<b>{doc['overall']['call']}</b>" in html and "<img" in html
    # analyses were reused, not redone
    assert not (out / "baseline").exists() and not (out / "followup").exists()


def test_compare_is_deterministic_and_keeps_tracks_over_visits(folder_run, inputs, tmp_path):
    _, first = folder_run
    again = tmp_path / "again"
    assert main(["compare", str(inputs["baseline_folder"]), str(inputs["followup_folder"]), "--out", str(again),
                 "--baseline-image", str(inputs["baseline_image"]), "--followup-image", str(inputs["followup_image"]),
                 "--no-report"]) == 0
    assert (again / "changes.csv").read_bytes() == (first / "changes.csv").read_bytes()
    assert (again / "comparison.json").read_bytes() == (first / "comparison.json").read_bytes()
    # third visit = the follow-up again: its deposits keep the tracks they got in the first comparison
    third = tmp_path / "third"
    assert main(["compare", str(inputs["followup_folder"]), str(inputs["followup_folder"]), "--out", str(third),
                 "--baseline-image", str(inputs["followup_image"]), "--followup-image", str(inputs["followup_image"]),
                 "--baseline-tracks", str(first / "changes.csv"), "--no-report"]) == 0
    with open(first / "changes.csv", newline="") as fh:
        earlier = {r["followup_id"]: r["track_id"] for r in csv.DictReader(fh) if r["followup_id"]}
    with open(third / "changes.csv", newline="") as fh:
        later = list(csv.DictReader(fh))
    assert all(r["status"] == "stable" and r["mass_change_pct"] == "0.0" for r in later)
    assert {r["followup_id"]: r["track_id"] for r in later} == earlier


def test_compare_raw_inputs_writes_both_analyses(inputs, tmp_path):
    out = tmp_path / "raw"
    assert main(["compare", str(inputs["baseline_image"]), str(inputs["followup_image"]), "--out", str(out),
                 "--no-report"]) == 0
    for name in ("baseline", "followup"):
        assert (out / name / "summary.json").is_file() and (out / name / "lesions.csv").is_file()
    assert (out / "comparison.json").is_file() and not (out / "report.html").exists()


EXPECTED = {
    "missing": ("does not exist",), "not_ct": ("unknown file type",),
    "folder_without_image": ("--baseline-image",), "wrong_image": ("made from",),
    "image_for_raw": ("applies only",), "bad_change_pct": ("change_pct",), "broken_csv": ("lacks the columns",),
    "missing_tracks": ("track file",), "foreign_tracks": ("no followup_id and track_id columns",),
    "mirrored_image": ("orientation differs",), "edited_threshold": ("threshold_hu is not a number",),
    "edited_size": ("size_voxels is not three voxel counts",),
}


@pytest.mark.parametrize("case", ["missing", "not_ct", "folder_without_image", "wrong_image", "image_for_raw",
                                  "bad_change_pct", "broken_csv", "missing_tracks", "foreign_tracks",
                                  "mirrored_image", "edited_threshold", "edited_size"])
def test_bad_inputs_exit_2_with_one_line(case, inputs, tmp_path, capsys):
    b_folder, f_folder = str(inputs["baseline_folder"]), str(inputs["followup_folder"])
    b_img, f_img = str(inputs["baseline_image"]), str(inputs["followup_image"])
    with_images = ["--baseline-image", b_img, "--followup-image", f_img]
    out = ["--out", str(tmp_path / "out")]
    if case == "missing":
        argv = [str(tmp_path / "nope.nii.gz"), f_img]
    elif case == "not_ct":
        text = tmp_path / "notes.txt"
        text.write_text("not an image")
        argv = [str(text), f_img]
    elif case == "folder_without_image":
        argv = [b_folder, f_folder, "--followup-image", f_img]
    elif case == "wrong_image":
        argv = [b_folder, f_folder, "--baseline-image", f_img, "--followup-image", f_img]
    elif case == "image_for_raw":
        argv = [b_img, f_img, "--baseline-image", b_img]
    elif case == "bad_change_pct":
        argv = [b_folder, f_folder, *with_images, "--change-pct", "-5"]
    elif case == "broken_csv":
        broken = tmp_path / "broken"
        broken.mkdir()
        for f in ("summary.json", "lesions.nii.gz"):
            (broken / f).write_bytes((inputs["baseline_folder"] / f).read_bytes())
        (broken / "lesions.csv").write_text("lesion_id,x_mm\n1,2\n")
        argv = [str(broken), f_folder, "--baseline-image", b_img, "--followup-image", f_img]
    elif case == "foreign_tracks":  # another CSV (it was read as "no tracks": every track new, silently)
        other = tmp_path / "other.csv"
        other.write_text("a,b\n1,2\n")
        argv = [b_folder, f_folder, *with_images, "--baseline-tracks", str(other)]
    elif case == "mirrored_image":  # its grid, origin and voxels, the y axis reversed: was compared
        from calcinosis.io import read_volume

        vol = read_volume(b_img)
        mirrored = write_volume(Volume(vol.array, vol.spacing, vol.origin, vol.direction @ np.diag([1.0, -1.0, 1.0])),
                                tmp_path / "mirrored.nii.gz")
        argv = [b_folder, f_folder, "--baseline-image", str(mirrored), "--followup-image", f_img]
    elif case.startswith("edited"):  # a summary.json edited by hand: internal errors (exit 1)
        import shutil

        edited = shutil.copytree(inputs["baseline_folder"], tmp_path / "edited")
        doc = json.loads((edited / "summary.json").read_text())
        if case == "edited_threshold":  # read only when a deposit was resolved or new
            doc["settings"]["threshold_hu"] = "abc"
        else:
            doc["input"]["size_voxels"] = 5
        (edited / "summary.json").write_text(json.dumps(doc))
        argv = [str(edited), f_folder, *with_images]
    else:
        argv = [b_folder, f_folder, *with_images, "--baseline-tracks", str(tmp_path / "none.csv")]
    assert main(["compare", *argv, *out]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("calcinosis compare: error:") and "\n" not in err
    assert any(word in err for word in EXPECTED[case]), err


def test_output_folder_that_would_overwrite_an_input_is_refused(inputs, tmp_path, capsys):
    # The follow-up's own analysis goes to OUT/followup/lesions.nii.gz: given as the input itself,
    # it was overwritten by the label map (and a DICOM folder given as OUT/baseline got the outputs).
    root = tmp_path / "Y"
    (root / "followup").mkdir(parents=True)
    followup = root / "followup" / "lesions.nii.gz"
    followup.write_bytes(inputs["followup_image"].read_bytes())
    before = followup.read_bytes()
    assert main(["compare", str(inputs["baseline_image"]), str(followup), "--out", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert "followup/lesions.nii.gz over or inside the input" in err and "\n" not in err
    assert followup.read_bytes() == before


def _small_ct():
    a = np.full((6, 32, 32), -1000, np.int16)
    a[:, 4:28, 4:28] = 40
    return Volume(a, (0.8, 0.8, 2.0))


@pytest.mark.parametrize("followup, word", [
    ({"patient_id": "OTHER999"}, "different patient IDs"),
    ({"patient_birth_date": "19500101"}, "different birth dates"),
    ({"study_date": "19991231"}, "taken before the baseline"),
])
def test_scans_that_are_not_one_patients_visits_are_refused(tmp_path, capsys, followup, word):
    # They were compared without a word: another patient's scan, or the visits swapped (every
    # change read backwards).
    from calcinosis.io import write_dicom_series

    write_dicom_series(_small_ct(), tmp_path / "b", study_date="20000101")
    write_dicom_series(_small_ct(), tmp_path / "f", **{"study_date": "20010101", **followup})
    assert main(["compare", str(tmp_path / "b"), str(tmp_path / "f"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert word in err and "\n" not in err
    assert not (tmp_path / "o").exists()  # the output folder made before the refusal is gone
    assert "OTHER999" not in err and "1950" not in err  # no identifier in the message


def test_a_scan_compared_with_itself_says_so(baseline_analysis):
    from calcinosis.follow import compare_visits, visit_from_analysis

    cmp = compare_visits(visit_from_analysis(baseline_analysis, "baseline"),
                         visit_from_analysis(baseline_analysis, "followup"))
    assert any("same scan" in w for w in cmp.warnings)


def test_any_patients_lets_a_comparison_of_renamed_scans_run(tmp_path):
    from calcinosis.io import write_dicom_series

    write_dicom_series(_small_ct(), tmp_path / "b")
    write_dicom_series(_small_ct(), tmp_path / "f", patient_id="PSEUDO2", study_date="20010101")
    assert main(["compare", str(tmp_path / "b"), str(tmp_path / "f"), "--out", str(tmp_path / "o"),
                 "--any-patients", "--no-report"]) == 0


def test_dates_in_the_retired_dotted_form_are_read_as_dates():
    # "2020.06.01" was compared as text with "20200101" and called earlier.
    from calcinosis.follow.cli import check_same_patient

    def visit(date):
        return Volume(_small_ct().array, (0.8, 0.8, 2.0), metadata={"study_date": date})

    check_same_patient(visit("20200101"), visit("2020.06.01"))
    with pytest.raises(InputError, match="taken before the baseline"):
        check_same_patient(visit("2020.06.01"), visit("20200101"))


def test_a_reused_out_loses_the_earlier_run_visit_analyses(inputs, tmp_path):
    # OUT/baseline and OUT/followup of an earlier comparison (of other scans) stayed beside a new
    # comparison made from analyze folders: it named one scan and showed another's outlines.
    import shutil

    out = tmp_path / "out"
    for name in ("baseline", "followup"):
        shutil.copytree(inputs["followup_folder"], out / name)  # another visit's analysis
    assert main(["compare", str(inputs["baseline_folder"]), str(inputs["followup_folder"]), "--out", str(out),
                 "--baseline-image", str(inputs["baseline_image"]), "--followup-image", str(inputs["followup_image"]),
                 "--no-report"]) == 0
    assert not (out / "baseline").exists() and not (out / "followup").exists()
    assert (out / "comparison.json").is_file()


def test_tracks_of_a_comparison_that_followed_up_another_scan_are_refused(folder_run, inputs, tmp_path, capsys):
    # Its track ids were given to this baseline's lesions by number, without a word.
    _, first = folder_run  # baseline -> followup: its follow-up is not the baseline
    argv = [str(inputs["baseline_folder"]), str(inputs["followup_folder"]), "--out", str(tmp_path / "o"),
            "--baseline-image", str(inputs["baseline_image"]), "--followup-image", str(inputs["followup_image"]),
            "--baseline-tracks", str(first / "changes.csv"), "--no-report"]
    assert main(["compare", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "whose follow-up is another scan" in err and "\n" not in err


def test_comparison_names_no_input_folder_or_file(folder_run):
    # comparison.json held the inputs' folder names, which can be the patient's name.
    _, out = folder_run
    doc = json.loads((out / "comparison.json").read_text())
    assert doc["baseline"]["source"] == doc["followup"]["source"] == "analyze output folder"
    text = (out / "comparison.json").read_text() + (out / "report.html").read_text()
    assert "baseline-analysis" not in text and "followup-analysis" not in text


@pytest.mark.parametrize("failure", [KeyboardInterrupt, RuntimeError])
def test_a_comparison_that_fails_midway_leaves_no_visit_analysis(inputs, tmp_path, monkeypatch, capsys, failure):
    # Ctrl-C (or a bug) during the registration left OUT/baseline and OUT/followup with this
    # run's analyses and no comparison (Ctrl-C while reading: an empty OUT/baseline).
    import calcinosis.follow.cli as follow_cli

    def fail(*_args, **_kwargs):
        raise failure("stopped")

    monkeypatch.setattr(follow_cli, "compare_visits", fail)
    out = tmp_path / "out"
    assert main(["compare", str(inputs["baseline_image"]), str(inputs["followup_image"]), "--out", str(out),
                 "--no-report"]) == (130 if failure is KeyboardInterrupt else 1)
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_rerun_that_fails_midway_leaves_no_comparison_of_the_earlier_run(inputs, tmp_path, monkeypatch):
    # The earlier comparison.json stayed beside the new run's visit analyses.
    import calcinosis.follow.cli as follow_cli

    out = tmp_path / "out"
    argv = ["compare", str(inputs["baseline_image"]), str(inputs["followup_image"]), "--out", str(out), "--no-report"]
    assert main(argv) == 0 and (out / "comparison.json").is_file()
    monkeypatch.setattr(follow_cli, "compare_visits", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(argv) == 130
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == []
