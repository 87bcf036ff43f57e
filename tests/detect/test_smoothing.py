"""The smoothed CT read box by box (SmoothedHU) equals smoothing the whole volume."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from calcinosis.detect.candidates import smoothed
from calcinosis.detect.smoothing import SmoothedHU, gaussian_z, smooth_box


def _ct(shape, seed):
    rng = np.random.default_rng(seed)
    # Noise round soft tissue with dense specks and a bone-like slab: whole HU, wide range.
    hu = rng.normal(40.0, 25.0, shape)
    hu[rng.random(shape) < 0.01] = 900.0
    hu[:, : shape[1] // 3] = ndi.gaussian_filter(rng.normal(600.0, 300.0, (shape[0], shape[1] // 3, shape[2])), 1.0)
    return np.rint(hu).astype(np.int16)


@pytest.mark.parametrize("spacing", [(1.0, 0.8, 0.8), (3.0, 0.7, 0.7), (0.5, 0.3, 1.2), (2.5, 2.0, 2.0)])
def test_boxes_and_slices_equal_the_whole_volume(spacing):
    # (2.5, 2, 2): no axis is smoothed at all; (3, .7, .7): thick slices, in-plane only.
    hu = _ct((23, 31, 29), seed=int(spacing[0] * 10))
    whole = smoothed(hu, spacing, dtype=np.int16)
    smooth = SmoothedHU(hu, spacing)
    assert smooth.shape == hu.shape and smooth.dtype == np.int16
    rng = np.random.default_rng(1)
    for _ in range(60):
        lo = rng.integers(0, hu.shape)
        hi = np.minimum(lo + rng.integers(1, 12, 3), hu.shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        assert np.array_equal(smooth[box], whole[box]), box
    # Whole slices (the noise estimate's reads), the edges, negative and open indices.
    for z in (0, 11, hu.shape[0] - 1, -1):
        assert np.array_equal(smooth[z], whole[z])
    assert np.array_equal(smooth[:, 0], whole[:, 0])
    assert np.array_equal(smooth[3:, :, -4:], whole[3:, :, -4:])
    assert np.array_equal(smooth[:, :, :], whole)
    assert smooth[5:5].shape == whole[5:5].shape == (0, 31, 29)


def test_float_image_smooths_like_the_whole_volume():
    hu = _ct((12, 20, 20), seed=3)
    box = (slice(2, 9), slice(0, 7), slice(13, 20))
    assert np.array_equal(smooth_box(hu, (1.0, 0.8, 0.8), box), smoothed(hu, (1.0, 0.8, 0.8), dtype=np.int16)[box])


def test_bad_indices_are_refused():
    smooth = SmoothedHU(np.zeros((4, 5, 6), np.int16), (1.0, 1.0, 1.0))
    with pytest.raises(TypeError):
        smooth[::2]
    with pytest.raises(TypeError):
        smooth[np.array([0, 1])]
    with pytest.raises(IndexError):
        smooth[4]


@pytest.mark.parametrize("threads", ["1", "2"])
def test_large_box_in_slabs_equals_the_whole_volume(monkeypatch, threads):
    # Boxes of a million voxels and more (a spine's) are smoothed in slabs of slices on
    # several threads; the slabs' seams are where a wrong edge rule would show.
    monkeypatch.setenv("CALCINOSIS_THREADS", threads)
    hu = _ct((44, 160, 170), seed=5)
    whole = smoothed(hu, (1.0, 0.8, 0.8), dtype=np.int16)
    box = (slice(1, 43), slice(2, 159), slice(0, 170))
    assert np.prod([s.stop - s.start for s in box]) >= 1 << 20
    assert np.array_equal(SmoothedHU(hu, (1.0, 0.8, 0.8))[box], whole[box])


@pytest.mark.parametrize("sigma, radius", [(0.6, 2), (0.75, 3), (1.7, 7), (0.5, 1)])
@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_z_pass_of_a_few_slices_is_gaussian_filter1d_bit_for_bit(sigma, radius, dtype):
    # The float32 values themselves, before any rounding to whole HU: the order of the sums
    # and the weights must be scipy's, at the volume's ends (nearest) and inside.
    hu = _ct((17, 21, 19), seed=radius).astype(dtype)
    if dtype == np.float32:
        hu += np.random.default_rng(0).random(hu.shape, np.float32)
    plane = (slice(2, 20), slice(1, 17))
    whole = ndi.gaussian_filter1d(hu[:, plane[0], plane[1]], sigma, 0, output=np.float32, mode="nearest",
                                  truncate=4.0, radius=radius)
    for zs in (slice(0, 1), slice(0, 17), slice(5, 6), slice(3, 11), slice(15, 17), slice(16, 17), slice(4, 4)):
        got = gaussian_z(hu, sigma, radius, zs, plane)
        assert got.dtype == np.float32 and got.shape == whole[zs].shape
        assert np.array_equal(got.view(np.uint32), whole[zs].view(np.uint32)), zs
