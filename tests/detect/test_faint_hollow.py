"""Faint deposits in fat and deposits joined to a hollow bone piece, on tiny noiseless arrays."""

from __future__ import annotations

import cc3d
import numpy as np
import pytest
from scipy import ndimage as ndi

from calcinosis.detect.candidates import is_hollow, smoothed
from calcinosis.detect.faint import FAINT_SEED_SIGMA, FAT_HU, is_faint_deposit, ring_percentiles_hu
from calcinosis.detect.hollow import deposits_on_bone_piece
from ribs import rib_section  # tests/detect/ribs.py (conftest.py puts it on the path)

THICK = (3.0, 0.8, 0.8)


def _faint(background_hu: float, *, lung_left: bool = False, voxels=((1, 20, 20), (1, 20, 21), (1, 21, 20))):
    hu = np.full((3, 41, 41), background_hu, np.int16)
    if lung_left:
        hu[:, :, :18] = -800
    for v in voxels:
        hu[v] = 170
    smooth = smoothed(hu, THICK)
    labels = cc3d.connected_components(hu >= 130, connectivity=26)
    box = ndi.find_objects(labels)[0]
    mask = labels == 1
    return smooth, labels, box, int(mask.sum()), float(smooth[mask].max())


@pytest.mark.parametrize("background, lung, noise_s, expected", [
    (-100, False, 5.0, True),     # in fat, far above it
    (50, False, 5.0, False),      # in muscle: the ring is not fat
    (-100, True, 5.0, False),     # beside lung: the ring is not fat
    (-100, False, 25.0, False),   # in fat, but not 8.5 noise SDs above it
])
def test_faint_deposit_needs_fat_round_it_and_contrast_over_noise(background, lung, noise_s, expected):
    smooth, labels, box, n, peak = _faint(background, lung_left=lung)
    # The blob's smoothed peak is well below the 130 HU threshold: only the local rule can keep it.
    assert peak < 130
    got = is_faint_deposit(smooth, lambda b: labels[b] == 1, box, THICK, n_voxels=n, seed_peak_hu=peak, noise_smoothed_hu=noise_s)
    assert got is expected
    if background == -100 and not lung:
        # The boundary is the noise rule itself: just below and just above 8.5 SDs of contrast.
        ring_p90 = -100.0
        at = (peak - ring_p90) / FAINT_SEED_SIGMA
        assert is_faint_deposit(smooth, lambda b: labels[b] == 1, box, THICK, n_voxels=n, seed_peak_hu=peak,
                                noise_smoothed_hu=at * 0.98)
        assert not is_faint_deposit(smooth, lambda b: labels[b] == 1, box, THICK, n_voxels=n, seed_peak_hu=peak,
                                    noise_smoothed_hu=at * 1.05)


def test_single_voxel_is_never_a_faint_deposit():
    smooth, labels, box, n, peak = _faint(-100, voxels=((1, 20, 20),))
    assert n == 1
    assert not is_faint_deposit(smooth, lambda b: labels[b] == 1, box, THICK, n_voxels=n, seed_peak_hu=peak, noise_smoothed_hu=1.0)


def test_faint_deposit_whose_own_blur_reaches_its_ring_is_in_fat():
    # A 3.6 mm 305 HU deposit in fat on 3 mm slices: only its 4 middle voxels reach the
    # threshold, and its blur lifts the top tenth of the ring round them out of the fat range.
    # Read as "not in fat" (the ring's 90th percentile), it was missed at every noise level.
    yy, xx = np.mgrid[0:41, 0:41] * 0.8
    blob = -100 + 300 * np.exp(-((yy - 16.4) ** 2 + (xx - 16.4) ** 2) / (2 * 1.3 ** 2))
    smooth = np.full((3, 41, 41), -100.0, np.float32)
    smooth[1] = blob
    labels = cc3d.connected_components(smooth >= 130, connectivity=26)
    box = ndi.find_objects(labels)[0]
    p10, p75, p90 = ring_percentiles_hu(smooth, lambda b: labels[b] == 1, box, THICK)
    assert p75 < FAT_HU[1] < p90  # the case: fat round it, its own blur in the top of the ring
    n = int((labels == 1).sum())
    assert n == 4
    assert is_faint_deposit(smooth, lambda b: labels[b] == 1, box, THICK, n_voxels=n,
                            seed_peak_hu=float(smooth.max()), noise_smoothed_hu=5.0)
    # Its level is still the 90th percentile: a candidate not far above its own blur is not kept.
    assert not is_faint_deposit(smooth, lambda b: labels[b] == 1, box, THICK, n_voxels=n,
                                seed_peak_hu=p90 + 8.0 * 5.0, noise_smoothed_hu=5.0)


SP = (1.0, 0.8, 0.8)


def _rib(deposit_hu: float | None):
    """The synthetic rib (:func:`ribs.rib_section`), noiseless, with an optional
    5-voxel-radius deposit 1.6 mm outside its cortex."""
    hu = rib_section(deposit_hu, 33.5)
    labels = cc3d.connected_components(hu >= 130, connectivity=26)
    mask = labels == labels[3, 20, 34]
    return hu, mask


def _assert_the_deposit_alone_split_off(hu, mask, smooth):
    """One deposit split off the rib piece: centred on the deposit, none of the rib."""
    found = deposits_on_bone_piece(hu, smooth, mask, SP, threshold_hu=130.0, h_hu=88.0,
                                   max_deposit_volume_mm3=2500.0, is_hollow=is_hollow)
    assert len(found) == 1
    centre = np.array(ndi.center_of_mass(found[0]))
    assert np.allclose(centre, (3, 20, 33.5), atol=1.0)
    assert not found[0][:, :, :27].any()  # none of the rib


def test_deposit_denser_than_its_rib_piece_is_split_off():
    hu, mask = _rib(1400.0)
    assert mask[3, 20, 13] and is_hollow(hu, mask, SP, 130.0)  # joined to the rib: one hollow object
    _assert_the_deposit_alone_split_off(hu, mask, smoothed(hu, SP))


def test_rib_piece_alone_stays_bone():
    hu, mask = _rib(None)
    mask = cc3d.connected_components(hu >= 130, connectivity=26) == 1
    assert is_hollow(hu, mask, SP, 130.0)
    found = deposits_on_bone_piece(hu, smoothed(hu, SP), mask, SP, threshold_hu=130.0, h_hu=88.0,
                                   max_deposit_volume_mm3=2500.0, is_hollow=is_hollow)
    assert found == []


def test_deposit_as_dense_as_its_rib_piece_apart_across_its_gap_is_split_off():
    # The 400 HU deposit's smoothed peak (411) lies within h of the thin cortex's (433): by
    # density alone it is an arc of that cortex. It meets the rib only through the blur of the
    # 1.6 mm gap, below threshold + h (an arc of the cortex meets the rest through cortex).
    hu, mask = _rib(400.0)
    assert is_hollow(hu, mask, SP, 130.0)
    smooth = smoothed(hu, SP)
    assert abs(float(smooth[:, :, 27:][mask[:, :, 27:]].max()) - float(smooth[:, :, :27][mask[:, :, :27]].max())) < 88.0
    _assert_the_deposit_alone_split_off(hu, mask, smooth)


def test_outside_share_tells_an_arc_of_the_outline_from_a_bump_on_it():
    # A bone piece's section (radius 8 mm) with a 2 mm bump on its edge: an arc of the edge
    # lies on the smooth outline, the bump stands out of it.
    from calcinosis.detect.hollow import OUTSIDE_MIN_SHARE, _outside_share

    z, y, x = np.mgrid[:3, :60, :60]
    r = np.hypot((y - 30) * 0.8, (x - 30) * 0.8)
    bump = np.hypot((y - 30) * 0.8, (x - 30) * 0.8 - 9.0) <= 2.0
    solid = (r <= 8.0) | bump
    arc = (r <= 8.0) & (r > 6.5) & (x > 30) & (np.abs(y - 30) < 6)
    piece = bump & (r > 8.0)
    assert _outside_share(arc, solid, SP) < 0.2 < OUTSIDE_MIN_SHARE
    assert _outside_share(piece, solid, SP) > OUTSIDE_MIN_SHARE
