"""Filling holes slice by slice equals scipy's binary_fill_holes (4-connected background)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from calcinosis.anatomy.morphology import fill_holes_2d, fill_holes_in_plane


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
