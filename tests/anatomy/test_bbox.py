"""bbox_of (two passes on 3-D masks) equals the box of the set voxels' indices."""

from __future__ import annotations

import numpy as np
import pytest

from calcinosis.anatomy.morphology import bbox_of


def _reference(mask, margin):
    where = np.argwhere(mask)
    if len(where) == 0:
        return None
    return tuple(slice(max(int(lo) - m, 0), min(int(hi) + 1 + m, n))
                 for lo, hi, m, n in zip(where.min(0), where.max(0), margin, mask.shape))


@pytest.mark.parametrize("shape", [(7, 9, 11), (1, 5, 6), (9, 13), (0, 4, 4), (3, 0, 2), (4, 5, 0)])
def test_bbox_equals_the_extent_of_the_voxels(shape):
    rng = np.random.default_rng(sum(shape))
    for density in (0.0, 0.002, 0.02, 0.5):
        for _ in range(20):
            mask = rng.random(shape) < density
            margin = tuple(int(m) for m in rng.integers(0, 3, len(shape)))
            assert bbox_of(mask, margin) == _reference(mask, margin)


def test_bbox_of_a_single_voxel_and_of_labels():
    mask = np.zeros((5, 6, 7), np.uint16)
    mask[3, 1, 6] = 9
    assert bbox_of(mask) == (slice(3, 4), slice(1, 2), slice(6, 7))
    assert bbox_of(mask, (1, 1, 1)) == (slice(2, 5), slice(0, 3), slice(5, 7))
