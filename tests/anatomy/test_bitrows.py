"""The packed-row erosion and dilation equal the boolean disk ones
(:mod:`calcinosis.anatomy.disk`), pixel for pixel: widths round a word's, one row or
column, square and oblong pixels, several radii, strict and not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from calcinosis.anatomy.bitrows import disk_op_packed, grow_packed, pack_rows, unpack_rows
from calcinosis.anatomy.disk import dilate_disk, disk_rectangles, erode_disk
from calcinosis.anatomy.morphology import grow_one

SHAPES = [(1, 70), (70, 1), (5, 5), (40, 63), (40, 64), (33, 65), (20, 129), (57, 200)]


@pytest.mark.parametrize("spacing", [(0.8, 0.8), (0.57, 0.57), (0.7, 1.1)])
@pytest.mark.parametrize("radius_mm, strict", [(4.0, False), (2.0, True), (6.0, False)])
def test_packed_disk_ops_equal_the_boolean_ones(spacing, radius_mm, strict):
    rng = np.random.default_rng(int(radius_mm * 10) + int(spacing[1] * 100))
    rects = disk_rectangles(spacing[0], spacing[1], radius_mm, not strict)
    assert rects is not None
    changed = 0
    for shape in SHAPES:
        m = ndi.gaussian_filter(rng.random(shape), 1.5) > rng.uniform(0.3, 0.6)
        for fill in (False, True):  # the padding bits are not read
            eroded = unpack_rows(disk_op_packed(pack_rows(m, fill), shape[1], rects, erode=True), shape[1])
            np.testing.assert_array_equal(eroded, erode_disk(m, spacing, radius_mm, strict=strict))
            if not strict:
                dilated = unpack_rows(disk_op_packed(pack_rows(m, fill), shape[1], rects, erode=False), shape[1])
                np.testing.assert_array_equal(dilated, dilate_disk(m, spacing, radius_mm))
                changed += int(not np.array_equal(dilated, m))
        changed += int(not np.array_equal(eroded, m))
    assert changed >= len(SHAPES) // 2  # the operations did something


def test_packed_results_have_zero_padding():
    m = np.ones((9, 70), bool)
    rects = disk_rectangles(0.8, 0.8, 4.0, True)
    for erode in (True, False):
        out = disk_op_packed(pack_rows(m, True), 70, rects, erode=erode)
        assert (out[:, -1] >> np.uint64(6) == 0).all()
        np.testing.assert_array_equal(unpack_rows(out, 70), m)  # all inside: the disk changes nothing


def test_pack_round_trip_and_grow():
    rng = np.random.default_rng(1)
    for shape in SHAPES:
        m = rng.random(shape) > 0.8
        packed = pack_rows(m)
        np.testing.assert_array_equal(unpack_rows(packed, shape[1]), m)
        grown = grow_packed(packed) & pack_rows(np.ones(shape, bool))
        np.testing.assert_array_equal(unpack_rows(grown, shape[1]), grow_one(m, corners=True))


@pytest.mark.parametrize("spacing, radius_mm, strict", [((2.4, 2.4), 4.0, False), ((2.4, 2.4), 12.0, True),
                                                        ((2.0, 2.6), 6.0, False)])
def test_packed_disk_ops_on_a_stack_equal_the_boolean_ones(spacing, radius_mm, strict):
    """A stack of slices ``[z, y, x]``: each slice on its own, as the boolean version."""
    rng = np.random.default_rng(7)
    rects = disk_rectangles(spacing[0], spacing[1], radius_mm, not strict)
    for shape in [(6, 40, 70), (3, 1, 65), (4, 30, 128), (5, 9, 1)]:
        m = ndi.gaussian_filter(rng.random(shape), (0, 2, 2)) > rng.uniform(0.4, 0.5)
        eroded = unpack_rows(disk_op_packed(pack_rows(m), shape[2], rects, erode=True), shape[2])
        np.testing.assert_array_equal(eroded, erode_disk(m, spacing, radius_mm, strict=strict))
        dilated = unpack_rows(disk_op_packed(pack_rows(m), shape[2], rects, erode=False), shape[2])
        if not strict:
            np.testing.assert_array_equal(dilated, dilate_disk(m, spacing, radius_mm))


def test_popcount_with_and_without_numpy_bitwise_count(monkeypatch):
    from calcinosis.anatomy import bitrows

    rng = np.random.default_rng(2)
    words = rng.integers(0, 2**63, (7, 5), dtype=np.uint64) | np.uint64(1) << np.uint64(63)
    want = sum(bin(int(w)).count("1") for w in words.ravel())
    assert bitrows.popcount(words) == want
    assert bitrows.popcount(words[1:, 2:]) == sum(bin(int(w)).count("1") for w in words[1:, 2:].ravel())
    monkeypatch.delattr(np, "bitwise_count", raising=False)  # numpy 1.26 has none
    assert bitrows.popcount(words) == want
    assert bitrows.popcount(words[1:, 2:]) == sum(bin(int(w)).count("1") for w in words[1:, 2:].ravel())
