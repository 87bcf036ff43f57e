"""`calcinosis analyze` and `demo`: the output contract, exit codes and bad inputs."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file

from calcinosis.cli import main
from calcinosis.errors import InputError
from calcinosis.io import write_dicom_series, write_volume
from calcinosis.phantom import make_ct_phantom
from calcinosis.volume import Volume

CONTRACT_COLUMNS = [
    "lesion_id", "x_mm", "y_mm", "z_mm", "volume_mm3", "mass_mg", "agatston", "peak_hu",
    "mean_hu", "max_diameter_mm", "compartment", "side", "region", "depth_mm", "bone_distance_mm",
]


@pytest.fixture(scope="module")
def small_phantom():
    return make_ct_phantom("thighs", seed=5, noise_hu=15.0, slice_thickness_mm=2.0, length_mm=30)


@pytest.fixture(scope="module")
def analysed(small_phantom, tmp_path_factory):
    root = tmp_path_factory.mktemp("analyze")
    src = root / "scan.nii.gz"
    write_volume(small_phantom.volume, src)
    out = root / "out"
    assert main(["analyze", str(src), "--out", str(out)]) == 0
    return src, out


def test_output_files_follow_the_contract(analysed, small_phantom):
    src, out = analysed
    for name in ("lesions.csv", "summary.json", "lesions.nii.gz", "report.html"):
        assert (out / name).is_file(), name
    with open(out / "lesions.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][: len(CONTRACT_COLUMNS)] == CONTRACT_COLUMNS
    # After the contract's columns: the noise SDs of volume and mass (positive: a noisy scan).
    sd_cols = [rows[0].index("volume_sd_mm3"), rows[0].index("mass_sd_mg")]
    assert min(sd_cols) > len(CONTRACT_COLUMNS)
    assert all(float(r[c]) > 0 for r in rows[1:] for c in sd_cols)
    ids = [int(r[0]) for r in rows[1:]]
    assert ids == list(range(1, len(ids) + 1)) and len(ids) >= 5
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "lesions.nii.gz")))
    assert labels.shape == small_phantom.volume.shape
    assert sorted(set(np.unique(labels)) - {0}) == ids
    summary = json.loads((out / "summary.json").read_text())
    assert summary["schema_version"]
    assert summary["totals"]["count"] == len(ids)
    total_mass = sum(float(r[5]) for r in rows[1:])
    assert summary["totals"]["mass_mg"] == pytest.approx(total_mass, abs=0.01)
    # The totals' noise SDs add the lesions' in quadrature (independent noise).
    mass_sds = [float(r[sd_cols[1]]) for r in rows[1:]]
    assert summary["totals"]["mass_sd_mg"] == pytest.approx(np.sqrt(np.sum(np.square(mass_sds))), abs=0.002)
    assert max(mass_sds) < summary["totals"]["mass_sd_mg"] < sum(mass_sds)
    # The noise the SDs use: one voxel's SD near the phantom's 15 HU, and the phantom's mildly
    # correlated noise widens sums a little (its true factor is 1.24).
    structure = summary["image"]["noise_structure"]
    assert structure["voxel_sd_hu"] == pytest.approx(15.0, rel=0.1)
    assert 1.0 < structure["sum_factor"] < 1.8
    for key in ("input", "settings", "by_compartment", "by_region", "by_side", "pattern",
                "excluded", "warnings", "software", "run_time_s"):
        assert key in summary, key
    # The phantom carries a table and objects on the skin: excluded, and said so.
    assert summary["excluded"]["counts"].get("table", 0) >= 1
    html = (out / "report.html").read_text()
    assert "<table" in html and "http://" not in html and "https://" not in html


def test_summary_totals_equal_the_sums_of_the_csv_rows(analysed):
    # The totals were the rounded sums of the unrounded values: 0.001 mg off the sum of the rows
    # a reader of lesions.csv computes (1202.379 against 1202.380 on a thigh phantom).
    from decimal import Decimal

    _, out = analysed
    with open(out / "lesions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    summary = json.loads((out / "summary.json").read_text())
    groups = [(summary["totals"], rows)]
    for key, column in (("by_compartment", "compartment"), ("by_region", "region"), ("by_side", "side")):
        groups += [(summary[key][name], [r for r in rows if r[column] == name]) for name in summary[key]]
    for total, members in groups:
        assert total["count"] == len(members)
        for measure in ("volume_mm3", "mass_mg", "agatston"):
            assert total[measure] == float(sum((Decimal(r[measure]) for r in members), Decimal(0))), measure


def test_outputs_are_deterministic(analysed, tmp_path):
    src, out = analysed
    again = tmp_path / "again"
    assert main(["analyze", str(src), "--out", str(again), "--no-report"]) == 0
    for name in ("lesions.csv", "lesions.nii.gz"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    a = json.loads((out / "summary.json").read_text())
    b = json.loads((again / "summary.json").read_text())
    a.pop("run_time_s"), b.pop("run_time_s")
    assert a == b


def test_demo_writes_a_report_folder(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    truth = json.loads((out / "phantom" / "truth.json").read_text())
    assert summary["totals"]["count"] >= 0.8 * len(truth["deposits"])
    assert (out / "report.html").stat().st_size > 1000


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for p in files:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _bad_inputs(tmp: Path, phantom):
    vol = phantom.volume
    small = Volume(vol.array[:6, ::4, ::4].copy(), (vol.spacing[0] * 4, vol.spacing[1] * 4, vol.spacing[2]))
    empty = tmp / "empty"
    empty.mkdir()
    yield "empty folder", empty, "no DICOM"
    notdicom = tmp / "notdicom"
    notdicom.mkdir()
    (notdicom / "readme.txt").write_text("hello")
    yield "no image", notdicom, "no DICOM"
    mr = tmp / "mr"
    write_dicom_series(small, mr, modality="MR")
    yield "non-CT", mr, "MR"
    dup = tmp / "dup"
    files = write_dicom_series(small, dup)
    again = pydicom.dcmread(files[2])  # another image at slice 3's place (a copy of the same image is read once)
    again.SOPInstanceUID = "1.2.826.0.1.3.2"
    again.save_as(dup / "again_slice3.dcm")
    yield "duplicated slice", dup, "duplicate"
    gap = tmp / "gap"
    files = write_dicom_series(small, gap)
    files[3].unlink()
    yield "missing slice", gap, "missing"
    single = tmp / "single"
    single.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), single / "CT_small.dcm")
    yield "single slice", single, "single"
    raw = tmp / "raw.nii.gz"
    write_volume(Volume((small.array.astype(np.int32) + 1024).clip(0, 4095).astype(np.int16), small.spacing), raw)
    yield "not HU", raw, "HU"
    flat = tmp / "flat.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(vol.array[3].copy()), str(flat))
    yield "2-D image", flat, "3-D"
    zero = tmp / "zero.nrrd"
    zero.write_bytes(b"")
    yield "empty file", zero, "empty (0 bytes)"
    metres = tmp / "metres.nii.gz"  # the spacing written in metres: a body a few mm across
    write_volume(Volume(small.array, tuple(s / 1000.0 for s in small.spacing)), metres)
    yield "spacing in metres", metres, "too small for a CT"
    coarse = tmp / "coarse.nii.gz"
    write_volume(Volume(small.array, (20.0, 20.0, small.spacing[2])), coarse)
    yield "coarse voxels", coarse, "too coarse"
    fine = tmp / "fine_x.nrrd"  # one axis's spacing written as (almost) nothing: the run never ended
    write_volume(Volume(small.array, (1e-30, small.spacing[1], small.spacing[2])), fine)
    yield "vanishing pixel spacing", fine, "too small for a CT"
    thin = tmp / "thin_z.nrrd"
    write_volume(Volume(small.array, (small.spacing[0], small.spacing[1], 0.001)), thin)
    yield "micrometre slices", thin, "finer than any CT"
    sheared = tmp / "sheared.nrrd"  # the second axis leans on the first: was an internal error
    block = small.array.astype("<i2")
    nz, ny, nx = block.shape
    sheared.write_bytes(
        ("NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\n"
         f"sizes: {nx} {ny} {nz}\nspace directions: (1,0,0) (1,1,0) (0,0,1)\nkinds: domain domain domain\n"
         "endian: little\nencoding: raw\nspace origin: (0,0,0)\n\n").encode() + block.tobytes())
    yield "sheared grid", sheared, "not at right angles"
    if hasattr(os, "mkfifo"):
        pipe = tmp / "pipe.nii.gz"  # was "empty (0 bytes)"
        os.mkfifo(pipe)
        yield "named pipe", pipe, "not a regular file"


def test_each_bad_input_exits_2_with_one_line_and_is_unchanged(small_phantom, tmp_path, capsys):
    for name, path, word in _bad_inputs(tmp_path, small_phantom):
        before = _digest(path)
        code = main(["analyze", str(path), "--out", str(tmp_path / f"out-{name.replace(' ', '_')}")])
        err = capsys.readouterr().err.strip()
        assert code == 2, (name, err)
        assert len(err.splitlines()) == 1, (name, err)
        assert word.lower() in err.lower(), (name, err)
        assert "Traceback" not in err
        assert _digest(path) == before, name
        assert not (tmp_path / f"out-{name.replace(' ', '_')}").exists(), name  # no empty folder left


def test_missing_input_exits_2(tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "nope.nii.gz"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("option, value, word", [
    ("--calibration", "nan", "mass calibration nan"),  # was an internal error (NaN in summary.json)
    ("--calibration", "1e9", "mass calibration 1e+09"),  # was accepted: masses 10^9 times too large
    ("--calibration", "0", "mass calibration 0"),
    ("--calibration", "1e-300", "mass calibration 1e-300"),  # was accepted: every mass 0.0 mg
    ("--threshold-hu", "5000", "outside -200..1000 HU"),
])
def test_bad_settings_exit_2_with_one_line(analysed, tmp_path, capsys, option, value, word):
    src, _ = analysed
    out = tmp_path / "o"
    assert main(["analyze", str(src), "--out", str(out), "--no-report", option, value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and word in err
    assert not out.exists()


def test_output_that_would_replace_the_input_is_refused(analysed, tmp_path, capsys):
    # The label map is written as OUT/lesions.nii.gz: it replaced an input of that name.
    src, _ = analysed
    clash = tmp_path / "clash"
    clash.mkdir()
    shutil.copy(src, clash / "lesions.nii.gz")
    before = _digest(clash / "lesions.nii.gz")
    assert main(["analyze", str(clash / "lesions.nii.gz"), "--out", str(clash)]) == 2
    assert "would write lesions.nii.gz over or inside the input" in capsys.readouterr().err
    assert _digest(clash / "lesions.nii.gz") == before


def test_a_rerun_leaves_no_file_of_the_earlier_run(analysed, tmp_path):
    # A reused folder kept an earlier run's report and DICOM SR beside the new results.
    src, first = analysed
    out = tmp_path / "o"
    shutil.copytree(first, out)  # an earlier run with a report
    for name in ("lesions_sr.dcm", "lesions_seg.dcm"):
        (out / name).write_text("from an earlier run of a DICOM series")
    (out / "notes.txt").write_text("the user's own")
    assert main(["analyze", str(src), "--out", str(out), "--no-report"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["lesions.csv", "lesions.nii.gz", "notes.txt", "summary.json"]


def test_a_rerun_that_fails_midway_leaves_no_summary_of_the_earlier_run(analysed, tmp_path, monkeypatch, capsys):
    # The earlier run's summary.json and report.html stayed beside the new lesions.csv and label
    # map when writing the report failed: a folder that looked whole and mixed two runs. Now
    # neither run's files stay (the run takes back the lesions.csv and label map it wrote).
    import calcinosis.outputs as outputs

    src, first = analysed
    out = tmp_path / "o"
    shutil.copytree(first, out)

    def full_disk(*args, **kwargs):
        raise InputError(f"cannot write {out / 'report.html'}: No space left on device")

    monkeypatch.setattr(outputs, "render_report", full_disk)
    assert main(["analyze", str(src), "--out", str(out)]) == 2
    assert "No space left" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == []


def test_a_first_run_that_fails_midway_leaves_no_folder(analysed, tmp_path, monkeypatch, capsys):
    # It left lesions.csv and lesions.nii.gz without a summary: a table a reader could take for
    # a result.
    import calcinosis.outputs as outputs

    src, _ = analysed
    out = tmp_path / "new"

    def full_disk(*args, **kwargs):
        raise InputError(f"cannot write {out / 'report.html'}: No space left on device")

    monkeypatch.setattr(outputs, "render_report", full_disk)
    assert main(["analyze", str(src), "--out", str(out)]) == 2
    assert "No space left" in capsys.readouterr().err
    assert not out.exists()


def test_files_of_the_user_beside_the_scan_are_kept(analysed, tmp_path):
    # With --out beside the scan and no earlier run there, a report.html is the user's own.
    src, _ = analysed
    shutil.copy(src, tmp_path / "scan.nii.gz")
    (tmp_path / "report.html").write_text("the user's own report")
    assert main(["analyze", str(tmp_path / "scan.nii.gz"), "--out", str(tmp_path), "--no-report"]) == 0
    assert (tmp_path / "report.html").read_text() == "the user's own report"


def test_outputs_take_the_mode_the_umask_gives(analysed):
    # They were 0600 whatever the umask (the temporary file's mode), unreadable to colleagues.
    _, out = analysed
    mask = os.umask(0o022)
    os.umask(mask)
    for name in ("lesions.csv", "lesions.nii.gz", "summary.json"):
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


@pytest.mark.parametrize("make_out, word", [
    (lambda tmp: "", "empty string"),  # was the current folder
    (lambda tmp: tmp / ("a" * 300), "cannot use output folder"),  # was an internal error
    (lambda tmp: tmp / "file.txt" / "sub", "cannot create output folder"),
])
def test_unusable_output_folders_exit_2(analysed, tmp_path, capsys, make_out, word):
    src, _ = analysed
    (tmp_path / "file.txt").write_text("x")
    assert main(["analyze", str(src), "--out", str(make_out(tmp_path)), "--no-report"]) == 2
    err = capsys.readouterr().err.strip()
    assert word in err and "\n" not in err


def test_demo_into_a_file_exits_2(tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    assert main(["demo", "--out", str(tmp_path / "taken")]) == 2  # was NotADirectoryError, exit 1
    assert "exists and is not a folder" in capsys.readouterr().err


def test_an_image_left_incomplete_by_itk_is_an_error(tmp_path, monkeypatch, small_phantom):
    # On a full disk ITK's writers print a warning and return as if all went well: the
    # truncated file was renamed into place.
    import calcinosis.io.itk as itk

    real = itk.sitk.WriteImage

    def short_write(image, name, useCompression=False):
        real(image, name, useCompression=useCompression)
        with open(name, "r+b") as fh:
            fh.truncate(os.path.getsize(name) // 2)

    monkeypatch.setattr(itk.sitk, "WriteImage", short_write)
    with pytest.raises(InputError, match="came out incomplete"):
        write_volume(small_phantom.volume, tmp_path / "scan.nii.gz")
    assert not (tmp_path / "scan.nii.gz").exists()


def test_a_scan_without_a_body_says_so_on_stderr(tmp_path, capsys):
    # It exited 0 with nothing on stderr: only summary.json said nothing was analysed.
    a = np.full((4, 8, 8), -1000, np.int16)
    a[1:3, 3:5, 3:5] = 40  # a speck of tissue, too small for a body
    src = write_volume(Volume(a, (0.8, 0.8, 1.0)), tmp_path / "speck.nii.gz")
    assert main(["analyze", str(src), "--out", str(tmp_path / "o"), "--no-report"]) == 0
    err = capsys.readouterr().err.strip()
    assert err == "calcinosis: warning: no body found in the image (all air?): nothing analysed"


def test_summary_input_has_every_key_null_where_unknown(analysed):
    # A NIfTI says nothing of kVp or UIDs: the keys were left out (a reader's lookup failed).
    _, out = analysed
    inp = json.loads((out / "summary.json").read_text())["input"]
    for key in ("kvp", "series_uid", "study_uid", "frame_of_reference_uid", "study_date", "convolution_kernel"):
        assert key in inp and inp[key] is None, key
    assert inp["modality"] == "CT" and "-0.0" not in json.dumps(inp["direction"])


def test_summary_groups_have_one_shape_for_every_scan(analysed):
    # by_region listed only the regions found (an export's columns then differed by cohort), and
    # an empty group's volume, mass and Agatston were written 0 where others are 0.0.
    from calcinosis.anatomy.region_rules import REGIONS

    _, out = analysed
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["by_region"]) == list(REGIONS)
    empty = summary["by_region"]["head_neck"]
    assert empty["count"] == 0 and all(isinstance(empty[k], float) for k in ("volume_mm3", "mass_mg", "agatston"))


def test_a_scan_without_patient_axes_is_analysed_with_a_warning(small_phantom, tmp_path):
    # A NIfTI with neither qform nor sform: ITK takes its axes as LPS; the sides are a guess.
    import gzip
    import struct

    src = write_volume(small_phantom.volume, tmp_path / "scan.nii.gz")
    raw = bytearray(gzip.decompress(src.read_bytes()))
    raw[252:256] = struct.pack("<2h", 0, 0)  # qform_code, sform_code
    src.write_bytes(gzip.compress(bytes(raw)))
    assert main(["analyze", str(src), "--out", str(tmp_path / "out"), "--no-report"]) == 0
    warnings = json.loads((tmp_path / "out" / "summary.json").read_text())["warnings"]
    assert any(w.startswith("its NIfTI header has neither a qform nor an sform") and "left and right" in w
               for w in warnings)
