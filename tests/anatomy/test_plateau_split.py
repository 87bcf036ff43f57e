"""Faint deposits pressed on a bone with no valley: the plateau step of the bone split."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from calcinosis.anatomy.bone import split_bone

SP = (3.0, 0.8, 0.8)
SHAPE = (12, 70, 70)


def _scan(deposit_hu: float | None, gap_mm: float = 0.3, radius_mm: float = 3.8):
    """A bone plate (cortex 1100 HU, 6 mm thick, across the box) in muscle, and a faint
    sphere pressed on it, on 3 mm slices (each slice the mean over its thickness),
    blurred; the dense structure and its smoothed HU."""
    z, y, x = np.indices(SHAPE).astype(float)
    yy, xx = y * SP[1], x * SP[2]
    img = np.full(SHAPE, 45.0)
    img[(yy >= 20.0) & (yy < 26.0)] = 1100.0
    if deposit_hu is not None:
        cy, cx, cz = 26.0 + gap_mm + radius_mm, 28.0, 18.0
        inside = np.zeros(SHAPE)
        for dz in np.linspace(-1.5, 1.5, 7):
            inside += ((z * SP[0] + dz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 <= radius_mm ** 2) / 7.0
        img = img + inside * (deposit_hu - 45.0) * (img < 1000.0)
    smooth = ndi.gaussian_filter(img, (0.3, 1.0, 1.0)).astype(np.float32)
    dense = smooth >= 130.0
    labels, _ = ndi.label(dense, structure=np.ones((3, 3, 3)))
    dense = labels == labels[6, 29, 35]
    return dense, smooth


def _split(dense, smooth):
    return split_bone(dense, smooth, SP, h_hu=90.0, max_deposit_volume_mm3=2500.0, threshold_hu=130.0)


def test_faint_broad_deposit_pressed_on_the_bone_is_split_off():
    dense, smooth = _scan(320.0)
    got = _split(dense, smooth)
    assert len(got.deposits) == 1
    sub, piece = got.deposits[0]
    whole = np.zeros(dense.shape, bool)
    whole[sub] = piece
    z, y, x = np.nonzero(whole)
    assert abs(x.mean() * SP[2] - 28.0) < 1.0
    assert y.min() * SP[1] >= 25.0  # none of the bone plate
    assert not (whole & got.bone).any()


def test_bone_alone_gives_nothing():
    dense, smooth = _scan(None)
    assert _split(dense, smooth).deposits == ()


def test_a_joint_space_between_two_bones_is_not_a_deposit():
    # Two plates 1 mm apart (a facet joint): the blurred gap is below cortical density and
    # deep in the structure, but it faces the bone on both sides.
    z, y, x = np.indices(SHAPE).astype(float)
    yy, xx = y * SP[1], x * SP[2]
    img = np.full(SHAPE, 45.0)
    img[(yy >= 14.0) & (yy < 20.0) & (xx > 10.0) & (xx < 46.0)] = 1100.0
    img[(yy >= 21.0) & (yy < 27.0) & (xx > 10.0) & (xx < 46.0)] = 1100.0
    img[(yy >= 27.0) & (yy < 40.0)] = 1100.0
    smooth = ndi.gaussian_filter(img, (0.3, 1.0, 1.0)).astype(np.float32)
    dense = smooth >= 130.0
    assert _split(dense, smooth).deposits == ()
