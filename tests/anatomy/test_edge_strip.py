"""A deposit flush on a bone parted from a strip of the bone's edge joined to it
(calcinosis.anatomy.bone._off_the_edge_strip)."""

from __future__ import annotations

import numpy as np

from calcinosis.anatomy.bone import _off_the_edge_strip

SHAPE = (5, 10, 24)


def _strip_with_bumps(*bumps):
    """A risen piece: a strip one voxel thick along the bone's edge (row 6, every column, three
    slices, 250 HU above the profile) and a bump of 4 x 4 voxels standing off it for each
    ``(first column, rise)`` in ``bumps``."""
    piece = np.zeros(SHAPE, bool)
    res = np.zeros(SHAPE)
    piece[1:4, 6, :] = True
    res[1:4, 6, :] = 250.0
    for x0, rise in bumps:
        piece[1:4, 3:7, x0:x0 + 4] = True
        res[1:4, 3:7, x0:x0 + 4] = rise
    return piece, res


def test_the_bump_is_kept_and_the_strip_beyond_its_rim_dropped():
    piece, res = _strip_with_bumps((8, 280.0))
    part = _off_the_edge_strip(piece, res)
    assert part is not None
    assert part[1:4, 3:7, 8:12].all()  # the bump whole
    assert part[1:4, 6, 7].all() and part[1:4, 6, 12].all()  # its rim along the strip
    assert not part[:, 6, :7].any() and not part[:, 6, 13:].any()  # the strip beyond it
    assert int(part.sum()) == 4 * 4 * 3 + 2 * 3


def test_of_two_bumps_the_higher_one_is_kept():
    piece, res = _strip_with_bumps((3, 270.0), (15, 320.0))
    part = _off_the_edge_strip(piece, res)
    assert part is not None
    assert part[1:4, 3:7, 15:19].all()
    assert not part[:, :, :10].any()


def test_a_strip_alone_or_a_piece_without_a_strip_gives_nothing():
    piece, res = _strip_with_bumps()
    assert _off_the_edge_strip(piece, res) is None  # one voxel thick: holds no cross
    block = np.zeros(SHAPE, bool)
    block[1:4, 3:7, 8:12] = True
    assert _off_the_edge_strip(block, np.where(block, 300.0, 0.0)) is None  # nothing to strip
