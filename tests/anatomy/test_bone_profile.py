"""The profile split's parts read where needed: equal to their whole-box arrays."""

import numpy as np
from scipy import ndimage as ndi

from calcinosis.anatomy.bone_profile import BlurResidual, InPlanePeak, per_label_max
from calcinosis.anatomy.morphology import label_maximum


def _image(dtype, seed=0):
    rng = np.random.default_rng(seed)
    hu = ndi.gaussian_filter(rng.normal(200, 150, (6, 17, 13)), 1.0)
    return np.rint(hu).astype(dtype) if dtype == np.int16 else hu.astype(dtype)


def test_in_plane_peak_equals_maximum_filter():
    for dtype in (np.int16, np.float32):
        hu = _image(dtype)
        hu[2, 5:8, 4:7] = hu.max()  # a plateau: its voxels are peaks (>= their neighbours)
        expected = hu >= ndi.maximum_filter(hu, size=(1, 3, 3))
        peak = InPlanePeak(hu)
        boxes = [(slice(0, 6), slice(0, 17), slice(0, 13)), (slice(1, 4), slice(0, 3), slice(10, 20)),
                 (slice(2, 3), slice(5, 9), slice(3, 8)), (slice(0, 6), slice(16, 18), slice(0, 1))]
        for box in boxes:
            np.testing.assert_array_equal(peak[box], expected[box])
        flat = np.arange(hu.size)
        np.testing.assert_array_equal(peak.at(flat), expected.ravel())
        np.testing.assert_array_equal(peak[expected], expected[expected])  # any other index
        np.testing.assert_array_equal(np.asarray(peak), expected)  # the whole box


def test_blur_residual_equals_whole_box():
    hu = _image(np.int16, 1)
    rng = np.random.default_rng(2)
    dist = (rng.integers(0, 9, hu.shape) * np.float32(0.8)).astype(np.float32)
    dist[0] = np.inf  # a slice without core
    last = int(5.0 / 0.4) + 1
    profile = np.full(last + 1, np.inf, np.float32)
    profile[2:12] = np.linspace(400, 100, 10, dtype=np.float32)
    bins = np.minimum(dist / 0.4 + 1e-4, last).astype(np.int32)
    expected = hu - profile[bins]
    residual = BlurResidual(hu, dist, profile, 0.4, last)
    box = (slice(0, 3), slice(2, 9), slice(1, 13))
    np.testing.assert_array_equal(residual[box], expected[box])
    assert residual[box].dtype == expected.dtype
    where = np.nonzero(dist < 3)
    np.testing.assert_array_equal(residual[where], expected[where])
    np.testing.assert_array_equal(np.where(dist < 3, residual, 0), np.where(dist < 3, expected, 0))


def test_per_label_max_equals_label_maximum():
    rng = np.random.default_rng(3)
    labels, n = ndi.label(rng.random((5, 20, 20)) < 0.3)
    values = rng.normal(size=labels.shape).astype(np.float32)
    at = np.flatnonzero(labels)
    np.testing.assert_array_equal(per_label_max(labels.ravel()[at], values.ravel()[at], n),
                                  label_maximum(values, labels, n))


def test_label_26_numbers_as_ndimage():
    from calcinosis.anatomy.valley import label_26

    rng = np.random.default_rng(4)
    for density in (0.02, 0.1, 0.3):
        mask = rng.random((9, 23, 19)) < density
        expected, n = ndi.label(mask, structure=np.ones((3, 3, 3), bool))
        labels, m = label_26(mask)
        assert m == n
        np.testing.assert_array_equal(labels, expected)
