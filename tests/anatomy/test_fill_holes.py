"""Filling holes slice by slice equals scipy's binary_fill_holes (4-connected background)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from calcinosis.anatomy.morphology import fill_holes_2d, fill_holes_in_plane, runs_are_single


def test_fill_holes_equals_scipy_on_ragged_masks():
    rng = np.random.default_rng(7)
    four = ndi.generate_binary_structure(2, 1)
    n_hole_slices = 0
    for fraction in (0.2, 0.45, 0.55, 0.8, 0.97):
        noise = ndi.gaussian_filter(rng.standard_normal((6, 48, 57)), sigma=(0, 2, 2))
        mask = noise > np.quantile(noise, 1 - fraction)
        got = fill_holes_in_plane(mask)
        for z in range(mask.shape[0]):
            want = ndi.binary_fill_holes(mask[z], structure=four)
            np.testing.assert_array_equal(got[z], want)
            np.testing.assert_array_equal(fill_holes_2d(mask[z]), want)
            n_hole_slices += bool((want & ~mask[z]).any())
    assert n_hole_slices > 5


def test_special_slices():
    ring = np.zeros((9, 9), bool)
    ring[2:7, 2:7] = True
    ring[4, 4] = False
    np.testing.assert_array_equal(fill_holes_2d(ring), ring | (np.arange(9)[:, None] == 4) & (np.arange(9) == 4))
    frame = np.ones((6, 6), bool)
    frame[1:5, 1:5] = False  # the background touches no border: all of it is a hole
    assert fill_holes_2d(frame).all()
    two_sides = np.zeros((5, 8), bool)
    two_sides[:, 3] = True  # a wall splits the outside in two: nothing to fill
    np.testing.assert_array_equal(fill_holes_2d(two_sides), two_sides)
    assert fill_holes_2d(np.ones((3, 3), bool)).all() and not fill_holes_2d(np.zeros((3, 3), bool)).any()


def test_single_runs_mean_no_hole_and_are_told_apart():
    # Convex-ish random blobs (some with holes, some notched): whenever the run test says
    # "no hole", filling changes nothing; and it says so for most hole-free blobs.
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[0:40, 0:50]
    said, hole_free = 0, 0
    for _ in range(300):
        cy, cx, r = rng.uniform(10, 30), rng.uniform(10, 40), rng.uniform(3, 15)
        m = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        if rng.random() < 0.3:
            m &= (yy - cy) ** 2 + (xx - cx) ** 2 > (r / 2) ** 2  # a ring: a hole
        if rng.random() < 0.3:
            m[int(cy) - 1:int(cy) + 2, :int(cx)] = False  # a notch from the left
        filled = fill_holes_2d(m)
        hole_free += np.array_equal(filled, m)
        if runs_are_single(m):
            said += 1
            np.testing.assert_array_equal(filled, m)
    assert said >= 0.6 * hole_free > 0


def test_single_runs_cases():
    m = np.zeros((9, 9), bool)
    assert runs_are_single(m)  # empty
    m[2:7, 2:7] = True
    assert runs_are_single(m)
    m[4, 4] = False  # a one-pixel hole
    assert not runs_are_single(m)
    m[4, 4:] = False  # the hole opened to the right: columns split, rows not
    assert runs_are_single(m)
    side = np.zeros((9, 9), bool)
    side[2:7, 1:3] = side[2:7, 5:8] = True  # two bars side by side: columns are single runs
    assert runs_are_single(side)
    corner = np.zeros((9, 9), bool)
    corner[1:4, 1:4] = corner[5:8, 5:8] = corner[1:4, 5:8] = True  # rows and columns both split
    assert not runs_are_single(corner)
