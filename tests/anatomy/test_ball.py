"""open_ball (shifted in-plane disks) against open_mm (edt thresholds): the same masks."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from calcinosis.anatomy.ball import ball_planes, open_ball
from calcinosis.anatomy.morphology import open_mm

SPACINGS = [(1.0, 0.8, 0.8), (3.0, 0.8, 0.8), (2.5, 0.7, 0.7), (0.5, 0.5, 0.5), (1.25, 0.6, 0.9),
            (5.0, 1.0, 1.0)]


def _masks(shape, seed):
    rng = np.random.default_rng(seed)
    speckled = rng.random(shape) < 0.8
    blobby = ndi.binary_closing(speckled, iterations=1)
    # A bone-like shape: a thick tube with a knob, and a few loose voxels.
    z, y, x = np.indices(shape)
    tube = (y - shape[1] / 2) ** 2 + (x - shape[2] / 2) ** 2 < (shape[1] / 3) ** 2
    knob = (z - shape[0] / 2) ** 2 + (y - 3) ** 2 + (x - shape[2] / 2) ** 2 < 9
    return [speckled, blobby, tube | knob | (rng.random(shape) < 0.02)]


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("radius_mm", [3.0, 4.0, 1.6])
def test_open_ball_equals_open_mm(spacing, radius_mm):
    for seed, shape in enumerate([(12, 30, 25), (2, 20, 21), (1, 15, 15)]):
        for mask in _masks(shape, seed):
            expected = open_mm(mask, spacing, radius_mm)
            np.testing.assert_array_equal(open_ball(mask, spacing, radius_mm), expected)


def test_open_ball_edges():
    spacing = (1.0, 0.8, 0.8)
    empty = np.zeros((5, 9, 9), bool)
    assert not open_ball(empty, spacing, 3.0).any()
    full = np.ones((5, 9, 9), bool)
    # Outside the array is not outside the mask: a full array stays full.
    assert open_ball(full, spacing, 3.0).all()
    np.testing.assert_array_equal(open_ball(full, spacing, 3.0), open_mm(full, spacing, 3.0))


def test_ball_planes_shape():
    planes = ball_planes(1.0, 0.8, 0.8, 3.0)
    # z offsets 0..3 (3 mm at 1 mm slices); the plane at 3 mm is the single centre pixel.
    assert len(planes) == 4 and planes[-1] == ((0, 0),)
    widths = [max(w for _, w in rects) for rects in planes]
    assert widths == sorted(widths, reverse=True)
    # Too large a ball for shifted copies: no planes (open_ball falls back to open_mm).
    assert ball_planes(0.1, 0.1, 0.1, 5.0) is None
