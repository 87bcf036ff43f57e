"""The risen part of a blur-profile candidate (calcinosis.anatomy.bone._risen_part)."""

from __future__ import annotations

import numpy as np

from calcinosis.anatomy.bone import _risen_part


def _two_bumps():
    """A candidate along a bone's edge: two bumps above the profile (the first higher), and
    a strip one voxel wide a little above ``h`` joining them, with a ridge between them
    higher than the second bump (the bone's edge, no deposit's highest)."""
    shape = (20, 9, 9)
    z, y, x = np.indices(shape)
    res = np.full(shape, 20.0)
    for cz, height in ((4, 400.0), (15, 250.0)):
        res = np.maximum(res, height * np.exp(-((z - cz) ** 2 + (y - 4) ** 2 + (x - 4) ** 2) / 3.0))
    strip = (y == 4) & (x == 4)
    res[strip] = np.maximum(res[strip], 110.0)
    res[9:11, 4, 4] = 300.0
    piece = (res >= 60.0) | strip
    return piece, res


def test_risen_part_is_the_highest_bump_without_the_strip():
    piece, res = _two_bumps()
    part = _risen_part(piece, res, 100.0)
    z = np.flatnonzero(part.any(axis=(1, 2)))
    assert part[4, 4, 4] and not part[15, 4, 4]
    assert z.max() <= 7  # the strip's voxels beyond the top bump's reach are left out
    assert part.sum() < piece.sum()


def test_risen_part_from_given_tops_is_the_other_bump():
    piece, res = _two_bumps()
    first = _risen_part(piece, res, 100.0)
    tops = np.zeros(piece.shape, bool)
    tops[15, 4, 4] = True
    rest = piece & ~first
    part = _risen_part(rest, res, 100.0, tops=tops)
    z = np.flatnonzero(part.any(axis=(1, 2)))
    assert part[15, 4, 4] and not part[4].any()
    assert z.min() >= 12  # not the ridge, higher than the second bump
    assert not _risen_part(rest, res, 100.0)[15, 4, 4]  # without tops: the ridge's part
