"""The valley split's border counts (flat face pairs) against a plain reference on views."""

import numpy as np
import pytest

from calcinosis.anatomy.valley import _border_counts, _saddles


def _reference(basins, n, img):
    tissue = np.zeros(n + 1, np.int64)
    other = np.zeros(n + 1, np.int64)
    saddle = np.full(n + 1, -np.inf)
    for axis in range(basins.ndim):
        first = (slice(None),) * axis + (slice(None, -1),)
        second = (slice(None),) * axis + (slice(1, None),)
        for x, y, vx, vy in ((basins[first], basins[second], img[first], img[second]),
                             (basins[second], basins[first], img[second], img[first])):
            for p, q, u, v in zip(x.ravel(), y.ravel(), vx.ravel(), vy.ravel()):
                if p > 0 and p != q:
                    if q == 0:
                        tissue[p] += 1
                    else:
                        other[p] += 1
                        saddle[p] = max(saddle[p], min(u, v))
    return tissue, other, saddle


@pytest.mark.parametrize("shape", [(5, 7, 9), (1, 6, 6), (4, 1, 5), (3, 4, 1), (2, 2, 2), (6, 5, 4)])
def test_border_counts_equal_the_reference(shape):
    rng = np.random.default_rng(sum(shape))
    basins = rng.integers(0, 5, shape).astype(np.int32)
    img = rng.normal(size=shape).astype(np.float32)
    tissue, other, pairs = _border_counts(basins, 4, img)
    ref_tissue, ref_other, ref_saddle = _reference(basins, 4, img)
    np.testing.assert_array_equal(tissue, ref_tissue)
    np.testing.assert_array_equal(other, ref_other)
    np.testing.assert_array_equal(_saddles(pairs, np.ones(5, bool), 4)[1:], ref_saddle[1:])
