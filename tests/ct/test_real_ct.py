"""Real scans: what we know about them (../shared/data/README.md, pydicom's test files)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from calcinosis.cli import main
from calcinosis.io import read_dicom_slice_hu, read_volume


@pytest.fixture(scope="module")
def chest(real_ct_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("chest")
    assert main(["analyze", str(real_ct_path), "--out", str(out), "--no-report"]) == 0
    return read_volume(real_ct_path), json.loads((out / "summary.json").read_text()), out


def test_chest_ct_reads_as_hu(chest):
    volume, summary, _ = chest
    assert volume.shape == (48, 512, 512)
    assert summary["input"]["size_voxels"] == [512, 512, 48]
    assert np.percentile(volume.array, 5) < -900  # air around the patient


def test_necklace_is_excluded_as_external_metal_not_a_lesion(chest):
    """The beads (up to 3071 HU) lie on the skin of the neck and upper chest."""
    volume, summary, out = chest
    metal = [o for o in summary["excluded"]["objects"] if o["reason"] == "external_metal"]
    assert metal, summary["excluded"]
    import csv

    with open(out / "lesions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert all(float(r["peak_hu"]) < 2500 for r in rows)
    # No lesion sits where a bead is: every bead voxel is unlabelled.
    import SimpleITK as sitk

    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "lesions.nii.gz")))
    assert not labels[volume.array >= 3000].any()


def test_ct_small_slice_reads_and_is_refused_as_a_volume(tmp_path, capsys):
    path = get_testdata_file("CT_small.dcm")
    hu, spacing = read_dicom_slice_hu(path)
    assert hu.shape == (128, 128) and -1100 < hu.min() < 0 < hu.max() < 3000
    assert main(["analyze", path, "--out", str(tmp_path / "o")]) == 2
    assert "single" in capsys.readouterr().err.lower()


def test_label_map_matches_the_lesion_table(chest):
    """Findings excluded after detection (scan edge, ...) leave the label map, and the rest
    are renumbered 1..N: each label's voxel count is its row's n_voxels."""
    import csv

    import SimpleITK as sitk

    _, summary, out = chest
    assert summary["excluded"]["counts"].get("scan_edge", 0) > 0  # something was dropped
    with open(out / "lesions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "lesions.nii.gz")))
    counts = np.bincount(labels.ravel(), minlength=len(rows) + 1)
    assert len(counts) == len(rows) + 1
    assert [int(r["lesion_id"]) for r in rows] == list(range(1, len(rows) + 1))
    assert all(counts[int(r["lesion_id"])] == int(r["n_voxels"]) for r in rows)
