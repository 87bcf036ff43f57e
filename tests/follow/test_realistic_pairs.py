"""Visit pairs as a trial would bring them, each with an exact phantom truth.

* A follow-up on thicker slices that covers less of the arm and is stored from the other
  end (negative slice direction; NIfTI against a DICOM baseline): the registration must not
  depend on the storage order, and a deposit that reaches the follow-up's first slice (where
  the analysis drops a finding cut by the scan's edge) is not comparable, not resolved.
* A follow-up on 5 mm slices, where deposits beside bone are counted with the bone: a
  deposit the analysis did not report although its place is still dense is not resolved
  (nor, the other way round, new).
* Deposits that grow, shrink by 30-40 %, merge, split, and sit 6 mm apart: the changes
  against the truth.
"""

from __future__ import annotations

import csv
import json
import math
from html import escape

import numpy as np
import pytest

from calcinosis.errors import InputError
from calcinosis.follow import Status, compare_visits, visit_from_analysis
from calcinosis.phantom import DepositSpec, make_ct_phantom
from calcinosis.pipeline import analyze
from calcinosis.volume import Volume

SEED = 3
LIMB_XY = (260.0, -10.0)  # the elbow phantom's limb axis


def at(z, ang, r):
    a = math.radians(ang)
    return (LIMB_XY[0] + r * math.cos(a), LIMB_XY[1] + 0.9 * r * math.sin(a), float(z))


def dep(z, ang, r, diam, hu=700.0):
    return DepositSpec(at(z, ang, r), float(hu), equivalent_diameter_mm=float(diam))


def phantom(deposits, **kw):
    args = {"seed": SEED, "length_mm": 60.0, "pixel_mm": 1.0, "slice_thickness_mm": 1.0,
            "external_objects": False, **kw}
    return make_ct_phantom("elbow", deposits=deposits, **args)


def crop_z(volume: Volume, z_lo: float, z_hi: float) -> Volume:
    """The slices of ``volume`` (identity direction) whose centres lie in ``[z_lo, z_hi]``: a
    shorter scan of the same patient lying as before."""
    z = volume.origin[2] + volume.spacing[2] * np.arange(volume.shape[0])
    keep = np.flatnonzero((z >= z_lo) & (z <= z_hi))
    origin = (volume.origin[0], volume.origin[1], float(z[keep[0]]))
    return Volume(np.ascontiguousarray(volume.array[keep]), volume.spacing, origin, volume.direction,
                  dict(volume.metadata))


def stored_top_down(volume: Volume) -> Volume:
    """The same image with its slices stored from the top (direction cosine of z negative)."""
    origin = np.array(volume.origin) + volume.direction[:, 2] * volume.spacing[2] * (volume.shape[0] - 1)
    return Volume(np.ascontiguousarray(volume.array[::-1]), volume.spacing, tuple(origin),
                  volume.direction @ np.diag([1.0, 1.0, -1.0]), dict(volume.metadata))


def change_at(cmp, point, side="baseline", tol_mm=2.5):
    """The change holding the deposit of ``side`` nearest ``point`` (None if none within ``tol_mm``)."""
    visit = cmp.baseline if side == "baseline" else cmp.followup
    if not visit.lesions:
        return None
    pts = np.array([[les.x_mm, les.y_mm, les.z_mm] for les in visit.lesions])
    if side == "followup":  # follow-up centroids in baseline space (the truth here is no motion)
        pts = cmp.registration.to_baseline(pts)
    d = np.linalg.norm(pts - np.asarray(point), axis=1)
    k = int(np.argmin(d))
    if d[k] > tol_mm:
        return None
    lid = visit.lesions[k].lesion_id
    (change,) = [c for c in cmp.changes if lid in (c.baseline_ids if side == "baseline" else c.followup_ids)]
    return change


# ---------------------------------------------------------------------------------------------
# A shorter, thicker follow-up stored top-down

# (z, angle, distance from the limb axis, diameter mm, HU, fate)
EDGE_PLAN = (
    (-20, 90, 22, 5.0, 600, "outside"),  # below the follow-up's first slice
    (-10, 150, 30, 6.0, 600, "edge"),  # reaches the follow-up's first slice (-15 .. -12 mm)
    (0, 0, 30, 7.0, 700, "stable"),
    (10, 60, 22, 5.0, 800, "resolved"),
    (20, 150, 22, 6.0, 700, "stable"),
    (10, 330, 30, 6.0, 700, "new"),
)
FOLLOWUP_Z = (-14.0, 29.0)  # slice centres -13.5 .. 28.5: the follow-up covers -15 .. 30 mm


def _edge_specs(visit):
    return [dep(z, a, r, d, hu) for z, a, r, d, hu, fate in EDGE_PLAN
            if not (visit == "baseline" and fate == "new") and not (visit == "followup" and fate == "resolved")]


@pytest.fixture(scope="module")
def edge_pair():
    base = phantom(_edge_specs("baseline"), length_mm=70.0)
    long = phantom(_edge_specs("followup"), length_mm=108.0, slice_thickness_mm=3.0)
    follow = crop_z(long.volume, *FOLLOWUP_Z)
    return analyze(base.volume), follow


@pytest.fixture(scope="module")
def edge_comparisons(edge_pair):
    base, follow = edge_pair
    visit = visit_from_analysis(base, "baseline")
    out = {}
    for name, vol in (("bottom_up", follow), ("top_down", stored_top_down(follow))):
        out[name] = compare_visits(visit, visit_from_analysis(analyze(vol), "followup"))
    return out


@pytest.mark.parametrize("order", ["bottom_up", "top_down"])
def test_a_shorter_thicker_followup_stored_either_way(edge_comparisons, order):
    cmp = edge_comparisons[order]
    # No motion: the registration finds none, whichever end the slices are stored from (stored
    # top-down, the follow-up was registered 17 mm off along the arm and every deposit read
    # as resolved or new).
    probe = np.array([at(0, 0, 30), at(20, 150, 22), at(-10, 150, 30)])
    assert np.abs(cmp.registration.to_followup(probe) - probe).max() < 1.0
    expected = {"outside": Status.NOT_COVERED, "edge": Status.NOT_COVERED, "stable": Status.STABLE,
                "resolved": Status.RESOLVED, "new": Status.NEW}
    for z, a, r, _d, _hu, fate in EDGE_PLAN:
        change = change_at(cmp, at(z, a, r), "followup" if fate == "new" else "baseline")
        assert change is not None and change.status == expected[fate], (fate, change)
    # The deposit on the follow-up's first slice was dropped by that analysis (scan_edge): it
    # read as resolved, -51 mg, and took the overall change to -22 %.
    assert cmp.overall == "stable"
    assert any("cover different anatomy" in w for w in cmp.warnings)


def test_storage_order_changes_nothing(edge_comparisons):
    a, b = edge_comparisons["bottom_up"], edge_comparisons["top_down"]
    assert [c.status for c in a.changes] == [c.status for c in b.changes]
    assert a.overall == b.overall and a.overall_change_pct == pytest.approx(b.overall_change_pct, abs=0.5)


def test_groups_and_totals_compare_only_the_common_field_of_view(edge_comparisons):
    from calcinosis.follow.tables import comparison_document

    cmp = edge_comparisons["bottom_up"]
    doc = comparison_document(cmp, baseline_source="a", followup_source="b")
    common = doc["totals_common_fov"]
    # Every deposit of each scan: different anatomy, so no call is made on them.
    assert doc["totals"]["call"] == "not_comparable"
    assert doc["totals"]["baseline"]["count"] == len(cmp.baseline.lesions)
    # The groups are the common field of view split up (they read "improvement" for the
    # deposits the follow-up did not cover).
    for key in ("by_compartment", "by_region", "by_side"):
        groups = doc[key].values()
        for side in ("baseline", "followup"):
            assert sum(g[side]["count"] for g in groups) == common[side]["count"]
            assert sum(g[side]["mass_mg"] for g in groups) == pytest.approx(common[side]["mass_mg"], abs=0.01)
        assert all(g["call"] in ("stable", "progression", "improvement") for g in groups)
    assert common["call"] == doc["overall"]["call"] == cmp.overall
    assert doc["overall"]["mass_change_mg"] == pytest.approx(
        common["followup"]["mass_mg"] - common["baseline"]["mass_mg"], abs=0.002)


def test_cli_dicom_baseline_nifti_followup_files_agree(edge_pair, tmp_path):
    """DICOM baseline, NIfTI follow-up stored top-down, through the command: the CSV, the
    JSON and the report say the same, and each change carries its noise SD."""
    from calcinosis.cli import main
    from calcinosis.io import write_dicom_series, write_volume

    base, follow = edge_pair
    write_dicom_series(base.volume, tmp_path / "b", study_date="20240101")
    write_volume(stored_top_down(follow), tmp_path / "f.nii.gz")
    out = tmp_path / "out"
    assert main(["compare", str(tmp_path / "b"), str(tmp_path / "f.nii.gz"), "--out", str(out)]) == 0
    with open(out / "changes.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    doc = json.loads((out / "comparison.json").read_text())
    html = (out / "report.html").read_text()
    sds = {}
    for name in ("baseline", "followup"):
        with open(out / name / "lesions.csv", newline="") as fh:
            sds[name] = {r["lesion_id"]: float(r["mass_sd_mg"]) for r in csv.DictReader(fh)}
    counts = {s.value: 0 for s in Status}
    for row in rows:
        counts[row["status"]] += 1
        b = float(row["baseline_mass_mg"]) if row["baseline_id"] else 0.0
        f = float(row["followup_mass_mg"]) if row["followup_id"] else 0.0
        if row["status"] == "not_covered":
            assert row["mass_change_mg"] == "" and row["mass_change_sd_mg"] == ""
            continue
        assert float(row["mass_change_mg"]) == pytest.approx(f - b, abs=0.002)
        members = [sds["baseline"][i] for i in row["baseline_id"].split(";") if i] + \
                  [sds["followup"][i] for i in row["followup_id"].split(";") if i]
        assert float(row["mass_change_sd_mg"]) == pytest.approx(math.sqrt(sum(s * s for s in members)), abs=0.002)
    assert counts == doc["status_counts"]
    assert counts["resolved"] == 1 and counts["not_covered"] >= 2
    ov = doc["overall"]
    assert ov["call"] == "stable" and ov["mass_change_sd_mg"] > 0
    assert f"<b>{ov['call']}</b>" in html and f"{ov['mass_change_pct']:+.1f} %" in html
    assert f"{ov['mass_change_mg']:+.1f} ± {ov['mass_change_sd_mg']:.1f} mg" in html
    assert "image noise alone" in html and "not_comparable" in html
    assert all(escape(f"follow-up analysis: {w}") in html for w in doc["followup_warnings"])
    # every CSV row is in the report's table, with its status
    assert html.count("<td class='t' style='color:") == len(rows)


# ---------------------------------------------------------------------------------------------
# 5 mm slices: deposits beside bone are counted with the bone

def _small_deposits():
    """Small deposits all round the arm, many of them 1-2 mm from bone."""
    out = []
    for z in (-22, -12, -2, 8, 18):
        for ang in (0, 72, 144, 216, 288):
            spec = dep(z + ang % 5, ang + 10 * (z % 3), 30 if ang % 144 else 22, 2.5 + (ang % 7) * 0.2, 500 + ang)
            try:
                phantom([*out, spec])
            except InputError:  # it does not fit in soft tissue there
                continue
            out.append(spec)
    return out


GONE = (1, 5, 9, 13)  # indexes of the deposits that really resolve (or are really new)


@pytest.fixture(scope="module")
def small_deposits():
    specs = _small_deposits()
    assert len(specs) >= 15
    return specs


def _fate_check(cmp, specs, later_side):
    """(truly gone/new statuses, statuses of the deposits present in both scans)."""
    changed, present = [], []
    for k, spec in enumerate(specs):
        side = later_side if k in GONE else "baseline"
        change = change_at(cmp, spec.center_lps, side)
        if change is not None:
            (changed if k in GONE else present).append(change)
    return changed, present


def test_thick_slices_beside_bone_do_not_read_as_resolved(small_deposits):
    base = analyze(phantom(small_deposits, noise_hu=15.0).volume)
    follow = analyze(phantom([s for k, s in enumerate(small_deposits) if k not in GONE],
                             slice_thickness_mm=5.0, noise_hu=20.0).volume)
    cmp = compare_visits(visit_from_analysis(base, "baseline"), visit_from_analysis(follow, "followup"))
    gone, present = _fate_check(cmp, small_deposits, "baseline")
    assert len(gone) == len(GONE) and all(c.status == Status.RESOLVED for c in gone), gone
    # Four deposits 1-2 mm from bone are not reported on the 5 mm slices (counted with the
    # bone): they read as resolved, and the overall call as improvement (-42 %, truth -18 %).
    unreported = [c for c in present if c.status == Status.NOT_COVERED]
    assert all(c.status != Status.RESOLVED for c in present), present
    assert unreported and all(c.detail.startswith("not reported by the follow-up analysis") for c in unreported)
    assert any("not reported by the other scan's analysis" in w for w in cmp.warnings)
    assert not cmp.baseline_covered[[cmp.baseline.lesions.index(cmp.baseline.lesion_by_id[c.baseline_ids[0]])
                                     for c in unreported]].any()
    # The truth is -18 %; what is left (-26 %) is the mass the 5 mm slices lose on the small
    # deposits beside bone that they do report.
    truth = phantom(small_deposits).deposits
    before = sum(d.mass_mg for d in truth)
    after = sum(d.mass_mg for k, d in enumerate(truth) if k not in GONE)
    assert 100 * (after - before) / before > -25.0
    assert -30.0 < cmp.overall_change_pct < 0.0


def test_thick_slices_beside_bone_do_not_read_as_new(small_deposits):
    base = analyze(phantom([s for k, s in enumerate(small_deposits) if k not in GONE],
                           slice_thickness_mm=5.0, noise_hu=20.0).volume)
    follow = analyze(phantom(small_deposits, noise_hu=15.0).volume)
    cmp = compare_visits(visit_from_analysis(base, "baseline"), visit_from_analysis(follow, "followup"))
    new, present = _fate_check(cmp, small_deposits, "followup")
    assert len(new) == len(GONE) and all(c.status == Status.NEW for c in new), new
    assert all(c.status != Status.NEW for c in present)
    present_fu = [c for c in cmp.changes if not c.baseline_ids and c.status == Status.NOT_COVERED]
    assert present_fu and all(c.detail.startswith("not reported by the baseline analysis") for c in present_fu)


# ---------------------------------------------------------------------------------------------
# Growth, shrinkage, merging, splitting, neighbours

def _sphere(x, y, z, diam, hu=700.0):
    return DepositSpec((x, y, z), float(hu), equivalent_diameter_mm=float(diam))


SPLIT_XY = at(22, 210, 30)[:2]
BIOLOGY_BASELINE = [
    dep(-20, 90, 22, 5.0, 600),  # grows x1.7
    dep(-10, 150, 30, 6.0, 600),  # shrinks to 0.6
    dep(0, 0, 30, 7.0),  # shrinks to 0.7
    dep(20, 150, 22, 6.0),  # stable
    _sphere(290, -10, -24, 4.0), _sphere(290, -10, -17, 4.0),  # merge into one
    DepositSpec(at(22, 210, 30), 700.0, radii_mm=(2.5, 2.5, 5.0)),  # splits in two
    dep(5, 255, 30, 4.0), dep(5, 267, 30, 4.0, 900),  # neighbours 6 mm apart
]
BIOLOGY_FOLLOWUP = [
    dep(-20, 90, 22, 5.0 * 1.7 ** (1 / 3), 600),
    dep(-10, 150, 30, 6.0 * 0.6 ** (1 / 3), 600),
    dep(0, 0, 30, 7.0 * 0.7 ** (1 / 3)),
    dep(20, 150, 22, 6.0),
    DepositSpec((290, -10, -20.5), 700.0, radii_mm=(2.0, 2.0, 5.0)),
    _sphere(*SPLIT_XY, 18.5, 4.0), _sphere(*SPLIT_XY, 25.5, 4.0),
    dep(5, 255, 30, 4.0), dep(5, 267, 30, 4.0, 900),
]


@pytest.fixture(scope="module")
def biology():
    base = phantom(BIOLOGY_BASELINE)
    follow = phantom(BIOLOGY_FOLLOWUP, slice_thickness_mm=1.5, noise_hu=20.0)
    cmp = compare_visits(visit_from_analysis(analyze(base.volume), "baseline"),
                         visit_from_analysis(analyze(follow.volume), "followup"))
    return cmp, base.deposits, follow.deposits


def test_growth_and_shrinkage_against_the_truth(biology):
    cmp, before, after = biology
    for k, status in ((0, Status.GROWN), (1, Status.SHRUNK), (2, Status.SHRUNK), (3, Status.STABLE)):
        change = change_at(cmp, before[k].centroid_lps)
        truth = 100.0 * (after[k].mass_mg - before[k].mass_mg) / before[k].mass_mg
        assert change.status == status and change.baseline_ids and change.followup_ids
        assert change.mass_change_pct == pytest.approx(truth, abs=6.0), (k, change.mass_change_pct, truth)
        assert change.mass_change_mg == pytest.approx(after[k].mass_mg - before[k].mass_mg,
                                                      abs=0.06 * before[k].mass_mg)
        assert 0 < change.mass_change_sd_mg < 0.1 * before[k].mass_mg


def test_merge_split_and_neighbours(biology):
    cmp, before, after = biology
    merged = change_at(cmp, before[4].centroid_lps)
    assert merged is change_at(cmp, before[5].centroid_lps)
    assert merged.detail.startswith("merged") and len(merged.baseline_ids) == 2 and len(merged.followup_ids) == 1
    truth = after[4].mass_mg - before[4].mass_mg - before[5].mass_mg
    assert merged.mass_change_mg == pytest.approx(truth, abs=3.0)
    split = change_at(cmp, before[6].centroid_lps)
    assert "split" in split.detail and len(split.followup_ids) == 2
    truth = 100.0 * (after[5].mass_mg + after[6].mass_mg - before[6].mass_mg) / before[6].mass_mg
    assert split.mass_change_pct == pytest.approx(truth, abs=6.0) and split.status == Status.SHRUNK
    # The neighbours 6 mm apart keep their partners (the denser one is the heavier).
    for k in (7, 8):
        change = change_at(cmp, before[k].centroid_lps)
        assert change.status == Status.STABLE and change.distance_mm < 1.0
        assert change is change_at(cmp, after[k].centroid_lps, "followup")
