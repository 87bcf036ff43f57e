"""A follow-up that covers only part of the baseline, and a scan compared with itself."""

from __future__ import annotations

import numpy as np
import pytest

from calcinosis.follow import Status, compare_visits, visit_from_analysis
from calcinosis.pipeline import analyze
from calcinosis.volume import Volume

CROP_SLICES = 16  # the follow-up starts 24 mm above the baseline's first slice


@pytest.fixture(scope="module")
def cropped_comparison(baseline_phantom, baseline_analysis):
    vol = baseline_phantom.volume
    origin = np.asarray(vol.origin) + vol.direction @ np.array([0.0, 0.0, CROP_SLICES * vol.spacing[2]])
    cropped = Volume(np.ascontiguousarray(vol.array[CROP_SLICES:]), vol.spacing, tuple(origin), vol.direction,
                     dict(vol.metadata))
    follow = analyze(cropped)
    cmp = compare_visits(visit_from_analysis(baseline_analysis, "baseline"), visit_from_analysis(follow, "followup"))
    return cmp, float(origin[2] - 0.5 * vol.spacing[2])


def test_deposits_outside_the_overlap_are_not_covered(cropped_comparison, baseline_phantom):
    cmp, z_start = cropped_comparison
    by_id = cmp.baseline.lesion_by_id
    checked = 0
    for change in cmp.changes:
        assert change.status not in (Status.NEW, Status.RESOLVED), change
        for bid in change.baseline_ids:
            z = by_id[bid].z_mm
            if z < z_start:
                assert change.status == Status.NOT_COVERED, change
                checked += 1
            elif z > z_start + 4.0:  # wholly inside (radii are at most 3.5 mm)
                assert change.status == Status.STABLE, change
                checked += 1
    outside = sum(1 for d in baseline_phantom.deposits if d.centroid_lps[2] < z_start)
    assert outside >= 4 and checked == len(cmp.baseline.lesions)
    assert any("different anatomy" in w for w in cmp.warnings)
    assert cmp.registration.overlap_fraction < 0.8


def test_overall_call_uses_the_common_field_of_view_only(cropped_comparison):
    cmp, _ = cropped_comparison
    # half the deposits are cut away: a naive total would call improvement
    assert cmp.overall == "stable"
    assert abs(cmp.overall_change_pct) < 5.0


def test_scan_compared_with_itself_is_all_stable(baseline_analysis):
    visit = visit_from_analysis(baseline_analysis, "baseline")
    cmp = compare_visits(visit, visit)
    assert len(cmp.changes) == len(baseline_analysis.lesions) > 5
    for change in cmp.changes:
        assert change.status == Status.STABLE
        assert change.mass_change_pct == 0.0
        assert change.baseline_ids == change.followup_ids
        assert change.distance_mm < 0.5
    assert cmp.overall == "stable" and cmp.overall_change_pct == 0.0
    reg = cmp.registration
    assert np.allclose(reg.to_followup(np.array([[250.0, 0.0, 0.0]])), [[250.0, 0.0, 0.0]], atol=0.5)
    assert reg.bone_dice > 0.95 and reg.overlap_fraction > 0.99
