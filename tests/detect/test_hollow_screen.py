"""The hollow-piece split's screen (no piece can stand h apart: no flooding) against the full
split, on rib pieces with and without deposits, with noise."""

from __future__ import annotations

import cc3d
import numpy as np
import pytest
from scipy import ndimage as ndi

from calcinosis.anatomy.valley import valley_markers
from calcinosis.detect.candidates import is_hollow, smoothed
from calcinosis.anatomy.valley import WEAK_H_FRACTION, h_maxima
from calcinosis.detect.hollow import (_dome_is_its_own, _no_low_saddle, _no_peak_apart, _two_marker_plateaus,
                                      deposits_on_bone_piece, fill_holes_in_plane_box)
from ribs import rib_section  # tests/detect/ribs.py (conftest.py puts it on the path)

SP = (1.0, 0.8, 0.8)
H_HU = 60.0


def _rib(deposit_hu, gap_px: float, noise_hu: float, seed: int, marrow_mm: float = 5.4):
    """The synthetic rib (:func:`ribs.rib_section`) with an optional deposit ``gap_px`` pixels
    outside its cortex, noisy; the object at 130 HU that holds the rib."""
    hu = rib_section(deposit_hu, 29 + gap_px, noise_hu=noise_hu, seed=seed, marrow_mm=marrow_mm)
    labels = cc3d.connected_components(hu >= 130, connectivity=26)
    mask = labels == labels[3, 20, 12]
    return hu, mask


# 700 HU: a deposit at the cortex's own density, apart from it only by the gap's valley.
CASES = [(dep, gap, noise, seed) for dep in (None, 400.0, 700.0, 900.0, 1400.0) for gap in (4.5, 5.5)
         for noise, seed in ((0.0, 0), (15.0, 1), (30.0, 2))]


@pytest.fixture(scope="module")
def outcomes():
    found = []
    for dep, gap, noise, seed in CASES:
        hu, mask = _rib(dep, gap, noise, seed)
        if not is_hollow(hu, mask, SP, 130.0):
            continue
        smooth = smoothed(hu, SP, dtype=np.int16)
        kw = dict(threshold_hu=130.0, h_hu=H_HU, max_deposit_volume_mm3=2500.0, is_hollow=is_hollow)
        screened = deposits_on_bone_piece(hu, smooth, mask, SP, **kw)
        full = deposits_on_bone_piece(hu, smooth, mask, SP, screen=False, **kw)
        solid = fill_holes_in_plane_box(mask)
        markers = valley_markers(solid, mask, smooth, H_HU)
        connected = _no_low_saddle(mask, smooth, 130.0, H_HU)
        fired = connected and _no_peak_apart(markers, float(smooth[mask].max()), H_HU)
        early = connected and _two_marker_plateaus(solid, mask, smooth, H_HU)
        found.append(((dep, gap, noise, seed), screened, full, fired, early))
    return found


def test_screen_gives_the_full_split(outcomes):
    assert len(outcomes) >= 12
    for case, screened, full, _, _ in outcomes:
        assert len(screened) == len(full), case
        for a, b in zip(screened, full):
            np.testing.assert_array_equal(a, b)


def test_screen_fires_on_plain_ribs_and_never_where_a_deposit_is_found(outcomes):
    for which in (3, 4):  # with the markers, and before them (from the plateaus)
        fired = [o[0] for o in outcomes if o[which]]
        assert fired  # the screen saves work on some pieces (the plain ribs)
        assert any(case[0] is None for case in fired)
        with_deposit = [o for o in outcomes if o[2]]
        assert with_deposit  # the dense deposits are split off by the full split
        assert not any(o[which] for o in with_deposit)


@pytest.mark.parametrize("noise_hu, seed", [(15.0, 1), (30.0, 2), (30.0, 3)])
def test_deposit_as_dense_as_the_rib_joined_by_noise_is_split_off(noise_hu, seed):
    # A thick cortex (2.6 mm, smoothed peak ~600 HU) and a 700 HU deposit 2.4 mm from it: the
    # deposit's smoothed peak lies within h of the rib's, and the noise joins them at the
    # threshold. Joined only below threshold + h (the low saddle), it is apart from the bone;
    # the screen does not fire (its proof needs the part above threshold + h to be one piece).
    hu, mask = _rib(700.0, 5.5, noise_hu, seed, marrow_mm=4.4)
    assert is_hollow(hu, mask, SP, 130.0)
    smooth = smoothed(hu, SP, dtype=np.int16)
    right = np.zeros(mask.shape, bool)
    right[:, :, 27:] = True  # the deposit's side
    assert (mask & right).any()  # joined to the rib at the threshold
    assert abs(float(smooth[mask & right].max()) - float(smooth[mask & ~right].max())) < H_HU
    assert not _no_low_saddle(mask, smooth, 130.0, H_HU)
    kw = dict(threshold_hu=130.0, h_hu=H_HU, max_deposit_volume_mm3=2500.0, is_hollow=is_hollow)
    deposits = deposits_on_bone_piece(hu, smooth, mask, SP, **kw)
    assert len(deposits) == 1
    assert (deposits[0] & right).sum() == deposits[0].sum()  # the deposit, none of the rib
    assert deposits[0].sum() > 150


@pytest.mark.parametrize("seed", range(4))
def test_dome_rule_is_the_h_maxima_transform(seed):
    # On whole-HU images with plateaus and near-ties: a local maximum's dome holds nothing
    # higher exactly where the h-maxima transform keeps it.
    rng = np.random.default_rng(seed)
    img = np.rint(ndi.gaussian_filter(rng.normal(0, 60, (8, 14, 13)), 1.2) * 3).astype(np.int16) // 2 * 2
    h_weak = WEAK_H_FRACTION * H_HU
    steps = int(np.ceil(h_weak - 1e-3))
    expected = h_maxima(img, h_weak)
    local = img == ndi.maximum_filter(img, size=3, mode="nearest")
    assert expected.any() and (local & ~expected).any()  # both answers occur
    assert not (expected & ~local).any()  # every marker voxel is a local maximum
    for voxel in zip(*np.nonzero(local)):
        assert _dome_is_its_own(img, voxel, steps) == bool(expected[voxel]), voxel
