"""Matching rules on small hand-made lesion sets whose answer is known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from calcinosis.errors import InputError
from calcinosis.follow import CompareConfig, Status, match_lesions
from calcinosis.follow.matching import change_status, inside_fov, refine_with_deposits
from calcinosis.measure.lesion import Lesion
from calcinosis.volume import Volume


def lesion(lid, x, y, z, mass_mg=10.0, volume_mm3=50.0, mass_sd_mg=float("nan")):
    return Lesion(lid, x, y, z, volume_mm3, mass_mg, 0.0, 500.0, 400.0, 5.0, "subcutaneous", "left", "thigh",
                  5.0, 20.0, 0.0, 50, "high", "", mass_sd_mg=mass_sd_mg)


def run(base, follow, overlaps=None, config=CompareConfig(), b_cov=None, f_cov=None, tracks=None):
    f_pts = np.array([[les.x_mm, les.y_mm, les.z_mm] for les in follow]).reshape(-1, 3)
    return match_lesions(base, follow, f_pts, overlaps or {},
                         np.ones(len(base), bool) if b_cov is None else np.asarray(b_cov),
                         np.ones(len(follow), bool) if f_cov is None else np.asarray(f_cov), config, tracks)


def test_statuses_by_mass_change_and_threshold():
    assert change_status(10.0, 12.5, 25.0)[0] == Status.STABLE  # exactly 25 % is not more than 25 %
    assert change_status(10.0, 12.6, 25.0)[0] == Status.GROWN
    assert change_status(10.0, 7.4, 25.0)[0] == Status.SHRUNK
    assert change_status(10.0, 12.6, 30.0)[0] == Status.STABLE
    base = [lesion(1, 0, 0, 0, 10.0), lesion(2, 50, 0, 0, 10.0), lesion(3, 100, 0, 0, 10.0)]
    follow = [lesion(1, 1, 0, 0, 16.0), lesion(2, 50, 1, 0, 4.0), lesion(3, 100, 0, 1, 10.5)]
    changes = run(base, follow)
    assert [c.status for c in changes] == [Status.GROWN, Status.SHRUNK, Status.STABLE]
    assert changes[0].mass_change_pct == pytest.approx(60.0)


def test_a_change_within_the_image_noise_is_stable():
    # 10 -> 13.5 mg is +35 %, but each mass has a noise SD of 1.5 mg: the difference's SD is
    # 2.12 mg and 3.5 mg is within 2 of them. With SDs of 0.5 mg (0.71 for the difference) it
    # is growth; with the rule off (noise_sds 0) or the SDs unknown (NaN), the 25 % rule alone.
    noisy = run([lesion(1, 0, 0, 0, 10.0, mass_sd_mg=1.5)], [lesion(1, 0, 0, 0, 13.5, mass_sd_mg=1.5)])
    assert [(c.status, c.detail) for c in noisy] == [(Status.STABLE, "within_noise")]
    assert noisy[0].mass_change_pct == pytest.approx(35.0)
    clear = run([lesion(1, 0, 0, 0, 10.0, mass_sd_mg=0.5)], [lesion(1, 0, 0, 0, 13.5, mass_sd_mg=0.5)])
    assert [(c.status, c.detail) for c in clear] == [(Status.GROWN, "")]
    off = run([lesion(1, 0, 0, 0, 10.0, mass_sd_mg=1.5)], [lesion(1, 0, 0, 0, 13.5, mass_sd_mg=1.5)],
              config=CompareConfig(noise_sds=0.0))
    assert off[0].status == Status.GROWN
    unknown = run([lesion(1, 0, 0, 0, 10.0)], [lesion(1, 0, 0, 0, 13.5, mass_sd_mg=1.5)])
    assert unknown[0].status == Status.GROWN
    # A small change stays stable without the note.
    assert [(c.status, c.detail) for c in run([lesion(1, 0, 0, 0, 10.0, mass_sd_mg=1.5)],
                                              [lesion(1, 0, 0, 0, 10.5, mass_sd_mg=1.5)])] == [(Status.STABLE, "")]
    with pytest.raises(InputError, match="noise_sds"):
        CompareConfig(noise_sds=-1.0)


def test_gate_scales_with_size():
    small_b, small_f = lesion(1, 0, 0, 0, volume_mm3=4.0), lesion(1, 6, 0, 0, volume_mm3=4.0)
    changes = run([small_b], [small_f])
    assert sorted(c.status for c in changes) == sorted([Status.RESOLVED, Status.NEW])
    big_b, big_f = lesion(1, 0, 0, 0, volume_mm3=500.0), lesion(1, 8, 0, 0, volume_mm3=500.0)
    (change,) = run([big_b], [big_f])
    assert change.status == Status.STABLE and change.distance_mm == pytest.approx(8.0)


def test_assignment_is_one_to_one_and_nearest():
    base = [lesion(1, 0, 0, 0), lesion(2, 4, 0, 0)]
    follow = [lesion(1, 3.5, 0, 0), lesion(2, 0.5, 0, 0)]
    changes = run(base, follow)
    assert {(c.baseline_ids, c.followup_ids) for c in changes} == {((1,), (2,)), ((2,), (1,))}


def test_split_and_merge_from_label_overlap():
    base = [lesion(1, 0, 0, 0, 10.0, 100.0)]
    follow = [lesion(1, 0, 0, -3, 6.0, 60.0), lesion(2, 0, 0, 9, 6.0, 60.0)]
    (change,) = run(base, follow, {(1, 1): 20, (1, 2): 4})
    assert change.followup_ids == (1, 2) and change.detail == "split"
    assert change.followup_mass_mg == pytest.approx(12.0) and change.status == Status.STABLE
    base = [lesion(1, 0, 0, -3, 5.0, 60.0), lesion(2, 0, 0, 9, 5.0, 60.0)]
    follow = [lesion(1, 0, 0, 0, 20.0, 150.0)]
    (change,) = run(base, follow, {(1, 1): 20, (2, 1): 4})
    assert change.baseline_ids == (1, 2) and change.detail == "merged" and change.status == Status.GROWN
    assert change.track_id == 1


def test_not_covered_instead_of_new_or_resolved():
    base = [lesion(1, 0, 0, 0), lesion(2, 0, 0, 50)]
    follow = [lesion(1, 0, 0, 0), lesion(2, 30, 0, -50)]
    changes = run(base, follow, b_cov=[True, False], f_cov=[True, False])
    statuses = {c.track_id: c.status for c in changes}
    assert statuses == {1: Status.STABLE, 2: Status.NOT_COVERED, 3: Status.NOT_COVERED}
    changes = run(base, follow)
    assert {c.status for c in changes} == {Status.STABLE, Status.RESOLVED, Status.NEW}


def test_tracks_continue_from_an_earlier_comparison():
    base = [lesion(4, 0, 0, 0), lesion(5, 40, 0, 0)]
    follow = [lesion(1, 0, 0, 0), lesion(2, 40, 0, 0), lesion(3, 80, 0, 0)]
    changes = run(base, follow, tracks={4: 11, 5: 2})
    by_follow = {c.followup_ids: c.track_id for c in changes}
    assert by_follow == {(1,): 11, (2,): 2, (3,): 12}


def test_inside_fov_uses_the_voxel_edges_and_margin():
    vol = Volume(np.zeros((10, 10, 10), np.int16), (1.0, 1.0, 2.0))  # z covers -1 .. 19 mm
    pts = np.array([[5, 5, 18.5], [5, 5, 19.5], [5, 5, 0.0], [5, 5, -1.5]], float)
    assert inside_fov(vol, pts, np.zeros(4)).tolist() == [True, False, True, False]
    assert inside_fov(vol, pts, np.full(4, 1.0)).tolist() == [False, False, True, False]
    # Clear of the first and last slice (1..17 mm here), where the analysis drops a deposit
    # cut by the scan's edge: a deposit of radius 2 mm at z 2.5 mm reaches the first slice.
    pts = np.array([[5, 5, 2.5], [5, 5, 3.5], [5, 5, 14.5], [5, 5, 15.5]], float)
    assert inside_fov(vol, pts, np.full(4, 2.0)).tolist() == [True, True, True, True]
    assert inside_fov(vol, pts, np.full(4, 2.0), edge_voxels=1).tolist() == [False, True, True, False]


def test_extent_is_at_least_half_the_largest_diameter():
    from calcinosis.follow.matching import extent_mm, radius_mm

    round_ = lesion(1, 0, 0, 0, volume_mm3=4 / 3 * np.pi * 27)  # a 3 mm sphere; max diameter 5 mm
    assert extent_mm(round_) == pytest.approx(3.0) == pytest.approx(radius_mm(round_))
    long = Lesion(**{**round_.row(), "max_diameter_mm": 14.0})  # a rod of the same volume
    assert extent_mm(long) == pytest.approx(7.0)


def test_deposit_refinement_recovers_a_shift_and_keeps_a_good_fit():
    rng = np.random.default_rng(1)
    b = rng.uniform(-60, 60, (12, 3))
    shift = np.array([0.5, -1.0, 14.0])
    f = np.vstack([b[:10] - shift + rng.normal(0, 0.3, (10, 3)), rng.uniform(-60, 60, (3, 3))])
    found, n_after, n_before = refine_with_deposits(b, f, np.ones(12), np.ones(13), 25.0)
    assert np.allclose(found, shift, atol=0.5) and n_after >= 10 > n_before
    found, n_after, n_before = refine_with_deposits(b, b + 0.2, np.ones(12), np.ones(12), 25.0)
    assert np.all(found == 0) and n_after == n_before == 12


def test_deposit_refinement_takes_out_a_common_offset_within_the_tolerance():
    # Along a limb that is nearly the same all along, the image registration left every deposit
    # 2.5 mm off along z (a shorter follow-up of the thighs): all lie within the 3 mm tolerance,
    # so no candidate lines up more, but their common offset is taken out.
    rng = np.random.default_rng(2)
    b = rng.uniform(-60, 60, (12, 3))
    offset = np.array([0.05, -0.05, 2.5])
    f = b - offset + rng.normal(0, 0.2, (12, 3))
    found, n_after, n_before = refine_with_deposits(b, f, np.ones(12), np.ones(12), 25.0)
    assert np.allclose(found, offset, atol=0.3) and n_after == n_before == 12
    # Fewer than three deposits, or an offset within a millimetre: nothing is added.
    found, *_ = refine_with_deposits(b[:2], f[:2], np.ones(2), np.ones(2), 25.0)
    assert np.all(found == 0)
    found, *_ = refine_with_deposits(b, b - 0.3 * offset, np.ones(12), np.ones(12), 25.0)
    assert np.all(found == 0)


def test_config_is_checked():
    with pytest.raises(InputError):
        CompareConfig(change_pct=0.0)
    from calcinosis.follow import RegistrationConfig

    with pytest.raises(InputError):
        RegistrationConfig(affine="sometimes")


def test_lesions_csv_written_before_the_noise_sds_still_reads(tmp_path):
    # The noise SDs came after the first lesions.csv files: one without them reads, with NaN
    # SDs (the change rule then falls back to the percentage); with them, they are kept.
    from calcinosis.follow.visit import read_lesions
    from calcinosis.report.tables import lesions_csv

    text = lesions_csv([lesion(1, 0, 0, 0, 10.0, mass_sd_mg=1.25)])
    new = tmp_path / "new.csv"
    new.write_text(text)
    (read,) = read_lesions(new, "new")
    assert read.mass_sd_mg == pytest.approx(1.25) and read.mass_mg == pytest.approx(10.0)
    old = tmp_path / "old.csv"
    old.write_text("\n".join(",".join(line.split(",")[:-2]) for line in text.splitlines()) + "\n")
    assert "mass_sd_mg" not in old.read_text()
    (read,) = read_lesions(old, "old")
    assert np.isnan(read.mass_sd_mg) and np.isnan(read.volume_sd_mm3) and read.lesion_id == 1
