"""In-plane disk erosion/dilation by shifted copies equals the distance-transform threshold."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from calcinosis.anatomy.disk import dilate_disk, disk_rectangles, erode_disk
from calcinosis.anatomy.morphology import dilate_mm, distance_inside_mm, erode_mm


def _blobs(shape, seed, fraction=0.5):
    """Random blobs with ragged edges, touching the image border in places."""
    rng = np.random.default_rng(seed)
    noise = ndi.gaussian_filter(rng.standard_normal(shape), sigma=(0, 3, 3))
    return noise > np.quantile(noise, 1 - fraction)


# Spacings and radii with offsets exactly on the circle (0.8 mm, 4 mm: (0, 5) and (3, 4);
# 2.4 mm, 12 mm: (0, 5), (3, 4)), anisotropic pixels, and disks of 1 to 12 pixels.
CASES = [((0.8, 0.8), 4.0), ((2.4, 2.4), 4.0), ((2.4, 2.4), 12.0), ((1.6, 1.6), 7.0),
         ((0.5703125, 0.5703125), 4.0), ((0.7, 1.1), 5.0), ((2.0, 2.0), 7.0), ((1.0, 1.0), 1.0)]


@pytest.mark.parametrize("spacing_yx, radius", CASES)
def test_erosion_and_dilation_equal_the_distance_transform(spacing_yx, radius):
    sp = (3.0, *spacing_yx)
    for seed in range(3):
        mask = _blobs((5, 61, 47), seed, fraction=(0.3, 0.6, 0.9)[seed])
        np.testing.assert_array_equal(erode_disk(mask, spacing_yx, radius), erode_mm(mask, sp, radius, in_plane=True))
        np.testing.assert_array_equal(dilate_disk(mask, spacing_yx, radius), dilate_mm(mask, sp, radius, in_plane=True))
        depth = distance_inside_mm(mask, sp, in_plane=True)
        np.testing.assert_array_equal(erode_disk(mask, spacing_yx, radius, strict=True), depth >= radius)
        # One slice (2-D) gives the same as the slice of the 3-D result.
        np.testing.assert_array_equal(erode_disk(mask[2], spacing_yx, radius),
                                      erode_mm(mask, sp, radius, in_plane=True)[2])


def test_empty_and_full_slices():
    mask = np.zeros((3, 20, 30), bool)
    mask[1] = True
    np.testing.assert_array_equal(erode_disk(mask, (1.0, 1.0), 3.0), mask)  # the border is not outside
    np.testing.assert_array_equal(dilate_disk(mask, (1.0, 1.0), 3.0), mask)
    assert not dilate_disk(np.zeros((2, 9, 9), bool), (1.0, 1.0), 3.0).any()


def test_disk_shape_and_large_disks_fall_back():
    # 1 mm pixels, 2 mm radius: rows of half-width 2, 1, 0 -> rectangles (dy, dx) (2, 0), (1, 1), (0, 2).
    assert disk_rectangles(1.0, 1.0, 2.0) == ((2, 0), (1, 1), (0, 2))
    assert disk_rectangles(1.0, 1.0, 2.0, False) == ((1, 1),)  # strict: (0, 2) and (2, 0) are on the circle
    assert disk_rectangles(0.5, 0.5, 30.0) is None
    mask = _blobs((2, 150, 150), 4)
    sp = (1.0, 0.5, 0.5)
    np.testing.assert_array_equal(erode_disk(mask, sp[1:], 8.0), erode_mm(mask, sp, 8.0, in_plane=True))
    np.testing.assert_array_equal(dilate_disk(mask, sp[1:], 8.0), dilate_mm(mask, sp, 8.0, in_plane=True))
