"""The brute-force nearest distance of LocalDistance (scipy's cdist) gives the floats of
the plain broadcast formula, pair for pair, and the distance it returns is the exact
nearest one."""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

from calcinosis.measure.lesion import LocalDistance


def test_cdist_squares_are_the_broadcast_squares_bit_for_bit():
    rng = np.random.default_rng(0)
    sp = np.array([1.25, 0.7, 0.7])
    for n_points, n_edges in [(1, 5000), (40, 900), (700, 60)]:
        points = rng.integers(0, 400, (n_points, 3)) * sp
        edges = rng.integers(0, 400, (n_edges, 3)) * sp
        want = ((points[:, None, :] - edges[None, :, :]) ** 2).sum(axis=2)
        np.testing.assert_array_equal(cdist(points, edges, "sqeuclidean"), want)


def test_bone_distance_is_the_nearest_bone_voxel():
    rng = np.random.default_rng(1)
    sp = (1.5, 0.8, 0.8)
    bone = np.zeros((30, 60, 60), bool)
    bone[rng.integers(0, 30, 12), rng.integers(0, 60, 12), rng.integers(0, 60, 12)] = True
    lesion = np.zeros_like(bone)
    lesion[14:17, 28:33, 29:31] = True
    lesion &= ~bone
    box = (slice(14, 17), slice(28, 33), slice(29, 31))
    got = LocalDistance(bone, sp, inside=False).min_over(box, lesion[box])
    p = np.argwhere(lesion) * np.array(sp)
    b = np.argwhere(bone) * np.array(sp)
    want = float(np.sqrt(((p[:, None, :] - b[None, :, :]) ** 2).sum(axis=2).min()))
    assert got == want
