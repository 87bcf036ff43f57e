"""The hollow test's fast parts equal their slow references: in-plane hole filling on a
box, and the in-plane core by an erosion instead of a distance map."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from calcinosis.anatomy.morphology import distance_inside_mm, fill_holes_in_plane
from calcinosis.detect.hollow import core_in_plane, fill_holes_in_plane_box


def _shapes(seed, n=40):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        shape = tuple(int(v) for v in rng.integers(1, 22, 3))
        mask = ndi.gaussian_filter(rng.random(shape), rng.uniform(0.5, 2.0)) > rng.uniform(0.42, 0.58)
        if rng.random() < 0.4:  # shells round holes, like a rib's cortex round its marrow
            mask = ndi.binary_dilation(mask, iterations=2) & ~ndi.binary_erosion(mask)
        yield mask


@pytest.mark.parametrize("seed", [0, 1])
def test_box_hole_filling_equals_slice_by_slice(seed):
    shell = np.zeros((3, 9, 9), bool)
    shell[:, 2:7, 2:7] = True
    shell[:, 3:6, 3:6] = False
    shell[2, 4, 2] = False  # the last slice's hole opens to the box's edge: no hole there
    shell[2, 4, 3] = False
    want = fill_holes_in_plane(shell)
    assert want[0, 4, 4] and want[1, 4, 4] and not want[2, 4, 4]
    assert np.array_equal(fill_holes_in_plane_box(shell), want)
    for mask in _shapes(seed):
        assert np.array_equal(fill_holes_in_plane_box(mask), fill_holes_in_plane(mask))


# 0.8 and 0.57 mm pixels put no offset at 2 mm; 0.5 mm puts (4, 0) exactly on it (the
# distance map decides); 0.4 x 1.1 mm is anisotropic in-plane.
@pytest.mark.parametrize("spacing", [(1.0, 0.8, 0.8), (5.0, 0.5703125, 0.5703125), (1.5, 0.5, 0.5),
                                     (2.0, 0.4, 1.1)])
@pytest.mark.parametrize("depth_mm", [2.0, 1.2])
def test_core_equals_the_padded_in_plane_distance_map(spacing, depth_mm):
    for mask in _shapes(7, n=30):
        solid = fill_holes_in_plane(mask)
        padded = np.pad(solid, ((0, 0), (1, 1), (1, 1)))
        want = distance_inside_mm(padded, spacing, in_plane=True)[:, 1:-1, 1:-1] >= depth_mm
        assert np.array_equal(core_in_plane(solid, spacing, depth_mm), want)


def test_core_of_a_disk_is_its_inner_disk():
    yy, xx = np.mgrid[:21, :21]
    r = np.hypot(yy - 10, xx - 10) * 0.8
    disk = np.broadcast_to(r <= 6.0, (2, 21, 21))
    core = core_in_plane(disk, (1.0, 0.8, 0.8), 2.0)
    # Depth from the rim is about 6.4 - r (the first voxel outside lies beyond 6 mm).
    assert core[0, 10, 10] and core[1, 10, 10]
    assert not core[0][r > 4.6].any() and core[0][r < 4.0].all()
