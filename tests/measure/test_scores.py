"""Per-lesion scores on tiny arrays whose answer is computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from calcinosis.config import AnalysisConfig
from calcinosis.measure.lesion import LesionContext, _shell_and_ring, max_diameter_mm, measure_lesions
from calcinosis.measure.scores import agatston_score, agatston_weight, background_corrected_mass_mg


@pytest.mark.parametrize("peak, weight", [(129.9, 0), (130.0, 1), (199.0, 1), (200.0, 2), (399.0, 3), (400.0, 4)])
def test_agatston_weight_bands(peak, weight):
    assert agatston_weight(peak) == weight


def test_agatston_sums_slices_with_their_own_peak_and_scales_to_3mm():
    hu = np.zeros((2, 4, 4))
    hu[0, 1, 1:3] = [150, 250]  # 2 pixels, peak 250 -> weight 2
    hu[1, 2, 1:4] = [450, 140, 140]  # 3 pixels, peak 450 -> weight 4
    mask = hu >= 130
    # pixel 0.5 x 0.5 mm = 0.25 mm^2; slices 1.5 mm -> factor 0.5
    expected = (2 * 0.25 * 2 + 3 * 0.25 * 4) * 1.5 / 3.0
    assert agatston_score(hu, mask, (1.5, 0.5, 0.5)) == pytest.approx(expected)


def test_mass_is_background_corrected_integral_independent_of_blur():
    # 1000 HU above a 40 HU background in one 1 mm^3 voxel -> 0.8 mg; blurring it over the
    # region (same integral) must not change the mass, a wrong background must.
    sharp = np.full((5, 5, 5), 40.0)
    sharp[2, 2, 2] += 1000.0
    blurred = np.full((5, 5, 5), 40.0)
    blurred[1:4, 1:4, 1:4] += 1000.0 / 27.0
    region = np.ones((5, 5, 5), bool)
    assert background_corrected_mass_mg(sharp, region, 40.0, 1.0) == pytest.approx(0.8)
    assert background_corrected_mass_mg(blurred, region, 40.0, 1.0) == pytest.approx(0.8)
    assert background_corrected_mass_mg(blurred, region, 30.0, 1.0) == pytest.approx(0.8 + 0.8 * 10 * 125 / 1000)


def test_shell_reaches_one_voxel_along_thick_slices_and_ring_lies_outside_it():
    mask = np.zeros((7, 15, 15), bool)
    mask[3, 7, 7] = True
    region, ring = _shell_and_ring(mask, np.array([3.0, 0.8, 0.8]), 1.5)
    assert region[2, 7, 7] and region[4, 7, 7]  # the slices above and below (3 mm > 1.5 mm shell)
    assert not region[1, 7, 7]
    assert region[3, 7, 8] and not region[3, 7, 9]  # 0.8 mm in, 1.6 mm > 1.5 mm out
    assert not (region & ring).any() and not (mask & ring).any() and not (mask & region).any()
    # The ring is the shell's ellipsoid scaled by the smallest (radius + 2 mm) / radius ratio:
    # here (3.03 + 2) / 3.03 in z, so in-plane it reaches 1.66 x 1.5 = 2.49 mm.
    assert ring[3, 7, 9] and ring[3, 7, 10] and not ring[3, 7, 11]
    assert not ring[:, 7, 7].any()  # two slices away is 6 mm > 3.03 + 2 mm


def _measure_one(hu, labels, sp):
    """The one lesion of ``labels`` measured on ``hu`` (all body, no bone, 10 HU noise), its
    positions in mm along the array's axes."""
    ctx = LesionContext(hu=hu, labels=labels, body=np.ones(hu.shape, bool), bone=np.zeros(hu.shape, bool),
                        depth_mm=None, bone_distance_mm=None, spacing_zyx=sp, offset_zyx=(0, 0, 0))
    (lesion,) = measure_lesions(ctx, lambda idx: np.asarray(idx, float)[..., ::-1] * sp[::-1], AnalysisConfig(),
                                midline_x_mm=0.0, noise_hu=10.0)
    return lesion


def test_mass_beside_the_lung_counts_soft_tissue_only():
    # A deposit (3 x 3 voxels, 500 HU above muscle) on the last slice of muscle under the
    # lung: the shell's slice above is lung (-850 HU), whose voxels are not the deposit's
    # surroundings. Counted against the muscle's background they made the mass negative.
    sp = (3.0, 0.8, 0.8)
    hu = np.full((9, 31, 31), 50.0, np.float32)
    hu[5:] = -850.0
    labels = np.zeros(hu.shape, np.int32)
    labels[4, 14:17, 14:17] = 1
    hu[labels == 1] = 550.0
    lesion = _measure_one(hu, labels, sp)
    assert lesion.background_hu == 50.0
    assert lesion.mass_mg == pytest.approx(0.8 * 500.0 * 9 * np.prod(sp) / 1000.0)


def test_mass_of_a_deposit_in_the_skin_leaves_out_the_air_outside_the_body():
    # A deposit in the skin on coarse pixels (2.5 mm): its shell reaches the air outside the
    # body, whose voxels counted about -1000 HU each against the skin's background (masses of
    # -22 mg for beads of 1500 HU).
    sp = (1.5, 2.5, 2.5)
    hu = np.full((7, 15, 15), 40.0, np.float32)
    hu[:, :6] = -1000.0  # air above the skin
    body = hu > -500
    labels = np.zeros(hu.shape, np.int32)
    labels[3, 6, 7] = 1  # in the skin's first row
    hu[labels == 1] = 540.0
    ctx = LesionContext(hu=hu, labels=labels, body=body, bone=np.zeros(hu.shape, bool),
                        depth_mm=None, bone_distance_mm=None, spacing_zyx=sp, offset_zyx=(0, 0, 0))
    (lesion,) = measure_lesions(ctx, lambda idx: np.asarray(idx, float)[..., ::-1] * sp[::-1], AnalysisConfig(),
                                midline_x_mm=0.0, noise_hu=10.0)
    assert lesion.background_hu == 40.0
    assert lesion.mass_mg == pytest.approx(0.8 * 500.0 * np.prod(sp) / 1000.0)


def _deposit_in_fat(skin_strip: bool):
    """A deposit (3 x 3 voxels, 500 HU above fat) on a 3 mm slice of fat, its blur below the
    threshold round it: 100 HU above the fat one voxel out, 50 HU two voxels out (past the
    1.5 mm shell). With ``skin_strip``, a strip of skin (40 HU) lies in its background ring."""
    sp = (3.0, 0.8, 0.8)
    hu = np.full((9, 31, 31), -100.0, np.float32)
    hu[4, 12:19, 12:19] = -50.0
    hu[4, 13:18, 13:18] = 0.0
    labels = np.zeros(hu.shape, np.int32)
    labels[4, 14:17, 14:17] = 1
    hu[labels == 1] = 400.0
    if skin_strip:
        hu[:, 18:, :] = 40.0
    lesion = _measure_one(hu, labels, sp)
    return lesion, 0.8 * np.prod(sp) / 1000.0


def test_mass_in_fat_takes_the_blur_past_the_shell():
    # Over fat the 130 HU outline lies high on the deposit's edge: the lesion is grown through
    # the voxels 80 HU (130 - muscle) above the fat (the 5 x 5 at +100), then by the shell,
    # which now holds the +50 HU ring too (24 voxels). The shell round the 3 x 3 alone holds
    # only the +100 HU ring: 4500 + 1600 HU.
    lesion, mg_per_hu = _deposit_in_fat(skin_strip=False)
    assert lesion.background_hu == -100.0
    assert lesion.mass_mg == pytest.approx(mg_per_hu * (9 * 500.0 + 16 * 100.0 + 24 * 50.0))


def test_mass_with_other_tissue_in_its_ring_keeps_the_shell():
    # Skin in the background ring: the background is no longer one tissue, and voxels above
    # it need not be the deposit's blur. Only the shell round the lesion counts.
    lesion, mg_per_hu = _deposit_in_fat(skin_strip=True)
    assert lesion.background_hu == -100.0
    assert lesion.mass_mg == pytest.approx(mg_per_hu * (9 * 500.0 + 16 * 100.0))


def test_centroid_z_takes_the_partial_volume_on_the_next_thick_slice():
    # A deposit mostly in slice 4 (3 x 3 voxels, 500 HU above muscle) whose part in slice 5
    # reads 70 HU above muscle there, under the threshold: that slice holds where between the
    # two it lies. The centroid along z weighs it in: (4 * 500 + 5 * 70) / 570 slices.
    sp = (3.0, 0.8, 0.8)
    hu = np.full((9, 31, 31), 50.0, np.float32)
    labels = np.zeros(hu.shape, np.int32)
    labels[4, 14:17, 14:17] = 1
    hu[labels == 1] = 550.0
    hu[5, 14:17, 14:17] = 120.0
    lesion = _measure_one(hu, labels, sp)
    assert lesion.z_mm == pytest.approx((4 * 500.0 + 5 * 70.0) / 570.0 * 3.0)
    assert lesion.x_mm == pytest.approx(15 * 0.8) and lesion.y_mm == pytest.approx(15 * 0.8)


@pytest.mark.parametrize("n_voxels, small", [(1, True), (2, False)])
def test_a_single_coarse_voxel_is_small(n_voxels, small):
    # 3 mm voxels: one is 27 mm3, over the 3 mm3 of "small", yet a point's partial volume can
    # lift one voxel over the threshold: a one-voxel lesion tells neither size nor shape.
    sp = (3.0, 3.0, 3.0)
    hu = np.full((9, 9, 9), 50.0, np.float32)
    labels = np.zeros(hu.shape, np.int32)
    labels[4, 4, 4:4 + n_voxels] = 1
    hu[labels == 1] = 600.0
    lesion = _measure_one(hu, labels, sp)
    assert lesion.volume_mm3 == pytest.approx(27.0 * n_voxels)
    assert ("small" in lesion.flags.split(";")) is small
    assert (lesion.confidence == "low") is small


def test_max_diameter_between_voxel_centres_plus_one_voxel():
    coords = np.array([[0, 0, 0], [0, 0, 4]])
    assert max_diameter_mm(coords, (2.0, 0.5, 0.5)) == pytest.approx(4 * 0.5 + 0.5)
    assert max_diameter_mm(np.array([[0, 0, 0]]), (1.0, 1.0, 1.0)) == pytest.approx(1.0)


@pytest.mark.parametrize("threshold", [100.0, 200.0])
def test_agatston_is_scored_at_130_hu_whatever_the_detection_threshold(threshold):
    # Agatston is defined at 130 HU: a 200 HU detection threshold scored only the lesion's
    # voxels of 200 HU or more (3.84 for 10.88), a 100 HU one counted voxels under 130.
    sp = (3.0, 0.8, 0.8)
    hu = np.full((5, 21, 21), 40.0, np.float32)
    hu[2, 8:13, 8:13] = 160.0  # fringe: in the lesion at 130 HU
    hu[2, 9:12, 9:12] = 450.0  # core
    hu[2, 7, 8:13] = 110.0  # under 130: in the lesion at 100 HU only

    def measured(thr):
        labels = (hu >= thr).astype(np.int32)
        ctx = LesionContext(hu=hu, labels=labels, body=np.ones(hu.shape, bool), bone=np.zeros(hu.shape, bool),
                            depth_mm=None, bone_distance_mm=None, spacing_zyx=sp, offset_zyx=(0, 0, 0))
        (lesion,) = measure_lesions(ctx, lambda idx: np.asarray(idx, float)[..., ::-1] * sp[::-1],
                                    AnalysisConfig(threshold_hu=thr), midline_x_mm=0.0, noise_hu=10.0)
        return lesion.agatston

    expected = agatston_score(hu, hu >= 130, sp)  # 25 pixels of weight 4
    assert expected == pytest.approx(25 * 0.64 * 4)
    assert measured(130.0) == pytest.approx(expected)
    assert measured(threshold) == pytest.approx(expected)


def test_agatston_is_scored_on_axial_slices_however_the_scan_is_stored():
    # Three voxels over 50 HU muscle on 3 mm axial slices of 0.8 mm pixels: slice 4 holds one of
    # 450 HU (weight 4), slice 5 two of 150 HU (weight 1): (1 x 4 + 2 x 1) x 0.64 mm^2 x 3/3.
    # Stored as coronal slices (array axes y, z, x) the same voxels scored their coronal slices,
    # 5.76 (each coronal slice's area and peak differ), not the method's 3.84.
    sp = (3.0, 0.8, 0.8)
    hu = np.full((9, 15, 15), 50.0, np.float32)
    labels = np.zeros(hu.shape, np.int32)
    for (z, y, x), value in {(4, 7, 7): 450.0, (5, 7, 7): 150.0, (5, 8, 7): 150.0}.items():
        hu[z, y, x], labels[z, y, x] = value, 1
    expected = (1 * 4 + 2 * 1) * 0.64 * 3.0 / 3.0
    assert _measure_one(hu, labels, sp).agatston == pytest.approx(expected)
    coronal = (sp[1], sp[0], sp[2])
    hu_c, labels_c = (np.ascontiguousarray(a.transpose(1, 0, 2)) for a in (hu, labels))
    ctx = LesionContext(hu=hu_c, labels=labels_c, body=np.ones(hu_c.shape, bool), bone=np.zeros(hu_c.shape, bool),
                        depth_mm=None, bone_distance_mm=None, spacing_zyx=coronal, offset_zyx=(0, 0, 0))

    def to_lps(idx):  # array (y, z, x) -> LPS (x, y, z)
        idx = np.asarray(idx, float)
        return np.stack([idx[..., 2] * sp[2], idx[..., 0] * sp[1], idx[..., 1] * sp[0]], axis=-1)

    (stored_coronal,) = measure_lesions(ctx, to_lps, AnalysisConfig(), midline_x_mm=0.0, noise_hu=10.0)
    assert stored_coronal.agatston == pytest.approx(expected)
