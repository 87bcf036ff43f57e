"""A real abdominal CT series with thin slices: reading it, and what we know about it.

The series is the example CT of TotalSegmentator's source distribution on PyPI (version
2.9.0, Apache-2.0: ``tests/reference_files/example_ct_dicom``), fetched by
``.ci/setup-realct.sh`` into ``~/.cache/calcinosis/real-ct`` (or ``$CALCINOSIS_REAL_CT_CACHE``),
never copied into the repository. 20 slices of 512 x 512, 0.977 mm pixels, 3 mm thick
every 2 mm, 120 kVp, kernel Br38f, portal-venous contrast (``ContrastBolusAgent``
APPLIED). Seen by eye: the upper abdomen at the level of the liver, spleen and stomach (its
gas in front of the spine), the lower thoracic or first lumbar vertebra, lower ribs, the
arms down at the sides lying against the trunk (the humeri beside the flanks), the table.
No skull, no pelvis, no lungs beyond the posterior bases. An anonymiser emptied the
dataset's Study, Series and SOP Instance UIDs (the file meta keeps the SOP UIDs).

It is the only real scan here with bone on slices thin enough for the bone split (3.5 mm
or less); what its findings are is not known, so the tests check reading and anatomy only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from calcinosis.io import read_volume

CACHE = Path(os.environ.get("CALCINOSIS_REAL_CT_CACHE", Path.home() / ".cache" / "calcinosis" / "real-ct"))
SERIES = CACHE / "totalsegmentator-2.9.0" / "example_ct_dicom"
# The same source's example_ct.nii.gz: a real CT resampled to 3 mm voxels (122 x 101 x 112),
# seen by eye from the kidneys to the femoral heads (abdomen and pelvis, arms at the sides).
COARSE = CACHE / "totalsegmentator-2.9.0" / "example_ct.nii.gz"


@pytest.fixture(scope="module")
def series():
    if not SERIES.is_dir() or len(list(SERIES.iterdir())) != 20:
        pytest.skip(f"real abdominal CT not found at {SERIES}: run .ci/setup-realct.sh (fetches the "
                    "totalsegmentator 2.9.0 source distribution from PyPI)")
    return SERIES


@pytest.fixture(scope="module")
def outputs(series, tmp_path_factory):
    from calcinosis.cli import main

    before = {p.name: p.read_bytes() for p in series.iterdir()}
    out = tmp_path_factory.mktemp("abdomen")
    assert main(["analyze", str(series), "--out", str(out), "--no-report"]) == 0
    assert {p.name: p.read_bytes() for p in series.iterdir()} == before, "the input series was modified"
    return out


def test_reads_the_series_geometry_and_acquisition(series):
    vol = read_volume(series)
    assert vol.shape == (20, 512, 512)
    assert vol.spacing == pytest.approx((0.9765625, 0.9765625, 2.0))
    assert vol.metadata["kvp"] == 120.0
    assert vol.metadata["slice_thickness_mm"] == 3.0
    assert vol.metadata["convolution_kernel"].startswith("Br38f")
    assert vol.metadata["contrast_agent"] == "APPLIED"
    # Air outside the body, soft tissue and bone in HU (rescale applied).
    assert vol.array.min() <= -1000 and vol.array.max() >= 1000


def test_upper_abdomen_with_the_arms_down_is_abdomen(outputs):
    """The arms lie against the trunk and join its outline: their humeri are no pelvic bone
    plates, and the stomach's gas in front of the spine is no trachea (before: 43 % head_neck,
    47 % shoulder, 10 % pelvis)."""
    summary = json.loads((outputs / "summary.json").read_text())
    anatomy = summary["anatomy"]
    assert anatomy["field_of_view"] == "abdomen"
    assert set(anatomy["regions"]) <= {"abdomen", "back", "upper_arm", "elbow", "forearm", "unknown"}
    assert anatomy["regions"]["abdomen"] >= 0.8
    assert anatomy["landmarks"]["skull"] == 0 and anatomy["landmarks"]["pelvic_bones"] == 0
    assert {"upper_arm", "elbow"} & set(anatomy["regions"])  # the arms are named as arms


def test_contrast_warning_and_dicom_outputs_refused_for_missing_uids(outputs):
    summary = json.loads((outputs / "summary.json").read_text())
    assert any(w.startswith("contrast agent (APPLIED)") for w in summary["warnings"])
    seg_sr = [w for w in summary["warnings"] if "SEG/SR" in w]
    assert len(seg_sr) == 1 and "StudyInstanceUID" in seg_sr[0]
    assert not (outputs / "lesions_seg.dcm").exists() and not (outputs / "lesions_sr.dcm").exists()
    assert (outputs / "lesions.csv").exists() and (outputs / "lesions.nii.gz").exists()


def test_aortic_wall_plaque_on_the_vertebral_body_is_vascular(outputs):
    """Seen by eye: a 14 mm calcified plaque in the left wall of the aorta, which lies on the
    vertebral body (LPS about 19, -148, -791 mm), behind the line where the cavity stops; it
    was called juxta-osseous (0.98 mm from bone)."""
    from calcinosis.report.tables import read_lesions_csv

    rows = read_lesions_csv(outputs / "lesions.csv")
    near = [r for r in rows if abs(float(r["x_mm"]) - 19.1) < 5 and abs(float(r["y_mm"]) + 148.4) < 5
            and abs(float(r["z_mm"]) + 790.6) < 5]
    assert len(near) == 1 and near[0]["compartment"] == "vascular"


def test_no_subcutaneous_finding_deep_in_the_trunk(outputs):
    """Seen by eye: a 4.5 mm 352 HU finding in the fat at the right posterolateral corner of a
    vertebral body (LPS about -36, -96, -769 mm), 64 mm from the skin, was "subcutaneous" for
    the fat round it; that fat is enclosed by the crus, the liver and the spine, not the fat
    under the skin. Subcutaneous findings here are the arm's, 7 mm deep."""
    from calcinosis.report.tables import read_lesions_csv

    rows = read_lesions_csv(outputs / "lesions.csv")
    near = [r for r in rows if abs(float(r["x_mm"]) + 36.1) < 5 and abs(float(r["y_mm"]) + 96.1) < 5
            and abs(float(r["z_mm"]) + 769.2) < 5]
    assert len(near) == 1 and near[0]["compartment"] == "visceral"
    assert all(float(r["depth_mm"]) < 20 for r in rows if r["compartment"] == "subcutaneous")


def test_noise_specks_in_the_enhanced_liver_are_excluded(outputs):
    """Seen by eye: five specks of one to three voxels, 137-158 HU, in the liver (94-106 HU
    in the portal-venous phase; the scan's soft tissue 63 HU, noise 16 HU); two of them
    beside the spine, behind the line where the cavity stops, were "intramuscular". Noise on
    an organ denser than muscle: excluded as dense_tissue_noise and listed."""
    from calcinosis.report.tables import read_lesions_csv

    rows = read_lesions_csv(outputs / "lesions.csv")
    assert not [r for r in rows if "low_contrast" in r["flags"] and float(r["background_hu"]) >= 88.0]
    summary = json.loads((outputs / "summary.json").read_text())
    listed = [e for e in summary["excluded"]["objects"] if e["reason"] == "dense_tissue_noise"]
    assert len(listed) == 5 and all(137.0 <= e["peak_hu"] <= 158.0 for e in listed)


def test_abdomen_resampled_to_3_mm_voxels(tmp_path):
    """On 3 mm pixels the bone split does not run (it read 41 of 58 findings off the bones
    there) and says so; the regions are abdomen and pelvis, not the neck or shoulder that
    midline bowel gas once passed for a trachea, a chest made of colonic gas, or a knee made
    of both hips."""
    if not COARSE.is_file():
        pytest.skip(f"{COARSE} not found: run .ci/setup-realct.sh")
    from calcinosis.cli import main

    assert main(["analyze", str(COARSE), "--out", str(tmp_path), "--no-report"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    regions = summary["anatomy"]["regions"]
    assert summary["anatomy"]["field_of_view"] == "abdomen"
    assert regions["abdomen"] + regions.get("pelvis", 0.0) >= 0.75
    assert regions.get("pelvis", 0.0) >= 0.2
    seen = {k for k, v in regions.items() if v > 0}
    assert not {"head_neck", "shoulder"} & seen
    # Its lowest slices hold both hips in one part below the sacrum: pelvis, not knee or foot.
    assert not {"knee", "ankle_foot", "leg"} & seen
    assert regions.get("chest", 0.0) <= 0.1  # lung bases at the top only
    assert any("not split from it" in w for w in summary["warnings"])
    # Below the ribs the cavity has no bone round it. Seen by eye: a calcified plaque in front
    # of L4 (the aorta's bifurcation) and stones in the kidneys; with bowel content deep in the
    # abdomen they were "intramuscular", 82-123 mm from the skin.
    from calcinosis.report.tables import read_lesions_csv

    rows = read_lesions_csv(tmp_path / "lesions.csv")

    def at(x, y, z):
        return [r for r in rows if abs(float(r["x_mm"]) - x) < 6 and abs(float(r["y_mm"]) - y) < 6
                and abs(float(r["z_mm"]) - z) < 6]

    # The plaque; stones or calcifications in both kidneys (27-33 mm behind the spine's front;
    # the last, in the right kidney, 39 mm behind it on a slice the lowest ribs ring).
    for place in ((11.1, -175.8, 297.7), (80.1, -133.2, 332.1), (-86.0, -131.3, 319.1), (91.0, -128.3, 331.7),
                  (-56.0, -118.2, 349.4)):
        found = at(*place)
        assert len(found) == 1 and found[0]["compartment"] in ("vascular", "visceral"), place
    assert not [r for r in rows if r["compartment"] == "intramuscular" and r["region"] == "abdomen"
                and float(r["depth_mm"]) > 90]
    # Nothing is parted from bone on 3 mm pixels, a rib piece cut across by the slices
    # included: two pieces of a rib's curve on the left flank were parted from it (810 and
    # 567 mm3, the second "intramuscular").
    assert not [r for r in rows if "split_from_bone" in r["flags"]]
    # Single voxels of 159-161 HU by the sacrum (its edge averaged into a 3 mm pixel) were
    # "intramuscular": a faint piece near bone on pixels too coarse to tell, as on thick slices.
    assert not [r for r in rows if r["compartment"] in ("intramuscular", "juxta_osseous")]
    # An iliac vessel's calcification beside the left psoas, inside the bony pelvis: on slices
    # whose body centre lies in front of the pelvic bones' hull (regions: hip_gluteal) there
    # was no cavity, and it was "intramuscular" calcinosis of the hip.
    (iliac,) = at(-51.0, -172.0, 238.0)
    assert iliac["compartment"] in ("vascular", "visceral") and iliac["region"] == "pelvis"
