"""The ITK-based h-maxima used by the bone split equals scikit-image's (its reference)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.morphology import h_maxima as skimage_h_maxima

from calcinosis.anatomy.valley import h_maxima


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("h", [5.0, 24.0, 35.36, 60.0])
def test_same_maxima_as_skimage(seed, h):
    rng = np.random.default_rng(seed)
    # Smooth, whole-HU images like the smoothed CT the split reads (plateaus and ties included).
    img = np.rint(ndi.gaussian_filter(rng.normal(0.0, 300.0, (20, 30, 40)), 1.2) * 5).astype(np.float32)
    want = skimage_h_maxima(img, h).astype(bool)
    got = h_maxima(img, h)
    assert want.sum() > 50
    assert np.array_equal(got, want)


def test_flat_or_low_image_has_no_maxima():
    img = np.zeros((4, 5, 6), np.float32)
    img[2, 2, 2] = 10.0
    assert not h_maxima(img, 20.0).any()
    assert h_maxima(img, 10.0)[2, 2, 2] and h_maxima(img, 10.0).sum() == 1


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("h", [1.0, 24.0, 24.0005, 35.36, 60.0])
def test_whole_hu_images_same_maxima_as_float(seed, h):
    # Integer images take the int16 reconstruction; the maxima are those of the float path
    # and of scikit-image, non-integer h (rounded up) and h within the allowance included.
    rng = np.random.default_rng(seed + 10)
    img = np.rint(ndi.gaussian_filter(rng.normal(0.0, 300.0, (20, 30, 40)), 1.2) * 5).astype(np.int16)
    want = h_maxima(img.astype(np.float32), h)
    assert want.sum() > 50
    assert np.array_equal(h_maxima(img, h), want)
    if h != 24.0005:  # within the 0.001 allowance a peak of exactly 24 counts (not in skimage)
        assert np.array_equal(want, skimage_h_maxima(img.astype(np.float32), h).astype(bool))
    else:
        assert not np.array_equal(want, skimage_h_maxima(img.astype(np.float32), h).astype(bool))


def test_whole_hu_beyond_int16_reach_takes_the_float_path():
    img = np.zeros((5, 6, 7), np.int32)
    img[2, 3, 3] = 30000  # image - h would not be exact in the float path's allowance
    img[1, 1, 1] = 20
    got = h_maxima(img, 10.0)
    assert got[2, 3, 3] and got[1, 1, 1] and got.sum() == 2
