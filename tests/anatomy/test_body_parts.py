"""The body mask's fast pieces equal their plain versions: the coarse tissue blocks, the
parts' thickness and size, the growth with its check, and the opening of one slice."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from calcinosis.anatomy import body as body_module
from calcinosis.anatomy.body import AIR_HU, _coarse_tissue, _grow_within, _open_slice, _thick_and_sizes
from calcinosis.anatomy.morphology import grow_one, label_counts, label_maximum


@pytest.mark.parametrize("f", [1, 2, 3, 4])
def test_coarse_tissue_is_the_all_tissue_blocks(f):
    rng = np.random.default_rng(f)
    hu = rng.choice(np.array([-1000, -600, -400, 40], np.int16), (5, 31, 29), p=[0.1, 0.1, 0.1, 0.7])
    cy, cx = 31 // f, 29 // f
    blocks = hu[:, :cy * f, :cx * f].reshape(5, cy, f, cx, f)
    want = (blocks > AIR_HU).all(axis=(2, 4))
    np.testing.assert_array_equal(_coarse_tissue(hu, f), want)


@pytest.mark.parametrize("n_parts", [3, 20])
def test_thick_and_sizes_equal_the_label_statistics(n_parts):
    rng = np.random.default_rng(n_parts)
    labels = rng.integers(0, n_parts + 1, (6, 20, 25)).astype(np.uint32)
    deep = rng.random(labels.shape) > 0.999  # few deep voxels: some parts have none
    thick, sizes = _thick_and_sizes(labels, n_parts, deep)
    np.testing.assert_array_equal(thick, label_maximum(deep.view(np.uint8), labels, n_parts)[1:] >= 1)
    np.testing.assert_array_equal(sizes, label_counts(labels, n_parts)[1:])
    assert not thick.all() and thick.any()


def _plain_growth(base, tissue, steps):
    m = base
    for _ in range(steps):
        m = grow_one(m, corners=True) & tissue
    return m, bool((grow_one(m, corners=True) & tissue & ~m).any())


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("steps", [1, 3])
def test_growth_with_early_end_equals_the_plain_growth(seed, steps):
    rng = np.random.default_rng(seed)
    tissue = ndi.binary_opening(rng.random((40, 50)) > 0.35 + 0.05 * seed)
    base = np.zeros_like(tissue)
    base[15:25, 20:30] = True
    base &= tissue
    m, spills = _grow_within(base, tissue, steps)
    want, want_spills = _plain_growth(base, tissue, steps)
    np.testing.assert_array_equal(m, want)
    assert spills == want_spills


def test_growth_that_stops_inside_the_tissue_does_not_spill():
    tissue = np.zeros((20, 20), bool)
    tissue[5:15, 5:15] = True
    base = np.zeros_like(tissue)
    base[9:11, 9:11] = True
    m, spills = _grow_within(base, tissue, 5)  # reaches the square's edge in 4 steps
    np.testing.assert_array_equal(m, tissue)
    assert not spills
    m, spills = _grow_within(base, tissue, 2)
    assert spills and m.sum() == 6 * 6


@pytest.mark.parametrize("few", [0, 100])
def test_open_slice_same_by_comparisons_and_by_look_up(monkeypatch, few):
    """Six blobs (three touched by base, one joined to a base blob by a thin bridge):
    the pieces taken are the same by per-piece comparisons and by the look-up table."""
    yy, xx = np.mgrid[0:80, 0:120]
    tissue = np.zeros((80, 120), bool)
    centres = [(20, 20), (20, 60), (20, 100), (60, 20), (60, 60), (60, 100)]
    for cy, cx in centres:
        tissue |= (yy - cy) ** 2 + (xx - cx) ** 2 <= 14 ** 2
    tissue[19:21, 20:60] = True  # a thin bridge: opened away
    base = np.zeros_like(tissue)
    for cy, cx in centres[:3]:
        base[cy - 2:cy + 3, cx - 2:cx + 3] = True
    monkeypatch.setattr(body_module, "_FEW_PIECES", few)
    got = _open_slice(tissue, base, 0.8, 0.8)
    on_left = (yy < 40)
    assert got[on_left & tissue].sum() > 0.95 * (on_left & tissue).sum()
    assert not got[~on_left].any()
    monkeypatch.setattr(body_module, "_FEW_PIECES", 100 - few)
    np.testing.assert_array_equal(_open_slice(tissue, base, 0.8, 0.8), got)


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.uint16, np.float32])
def test_above_air_is_the_float_comparison(dtype):
    """Integer HU compared with the integer threshold: the voxels above -500.0 HU, the
    values round the threshold included (and any float HU as they are)."""
    from calcinosis.anatomy.body import _above_air

    values = np.array([-1024, -502, -501, -500, -499, -498, 0, 40, 3000])
    if dtype is np.uint16:
        values = np.abs(values)
    if dtype is np.float32:
        values = np.concatenate((values, [-500.5, -499.5, -500.0001]))
    hu = np.resize(values, (3, 5, 7)).astype(dtype)
    want = hu.astype(np.float64) > AIR_HU
    got = _above_air(hu)
    assert got.dtype == bool
    np.testing.assert_array_equal(got, want)
    out = np.empty(hu.shape, bool)
    _above_air(hu, out=out)
    np.testing.assert_array_equal(out, want)


def test_packed_runs_are_single_equals_the_boolean_check():
    """The one-run-per-row-or-column check on packed words gives runs_are_single's answer
    (both answers met), widths round a word's."""
    from calcinosis.anatomy.bitrows import pack_rows as _pack_rows
    from calcinosis.anatomy.body import _packed_runs_are_single
    from calcinosis.anatomy.morphology import runs_are_single

    rng = np.random.default_rng(4)
    seen = set()
    for shape in [(1, 70), (70, 1), (40, 63), (40, 64), (33, 65), (20, 129)] * 8:
        yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        m = (yy - cy) ** 2 / rng.uniform(4, 400) + (xx - cx) ** 2 / rng.uniform(4, 900) <= 1.0
        if rng.random() < 0.5:  # a notch or a hole: runs split along rows or columns
            m &= rng.random(shape) > 0.05
        packed = _pack_rows(m)
        got = _packed_runs_are_single(packed, m.any(axis=1), m.any(axis=0))
        assert got == runs_are_single(m), shape
        seen.add(got)
    assert seen == {True, False}


@pytest.mark.parametrize("f", [1, 2, 3])
def test_sampled_box_is_the_box_of_the_samples(f):
    """The box searched from the edges inwards equals the box of all the samples above
    air: scattered tissue, tissue at one edge only, a single voxel, nothing at all."""
    from calcinosis.anatomy.body import _above_air, _sampled_box
    from calcinosis.anatomy.morphology import bbox_of

    rng = np.random.default_rng(f)
    shape = (23, 61, 77)
    cases = []
    for density in (0.3, 0.01, 0.0005):
        cases.append(np.where(rng.random(shape) < density, 40, -1000).astype(np.int16))
    for where in [(0, 0, 0), (22, 60, 76), (11, 1, 75), (5, 33, 0)]:
        one = np.full(shape, -1000, np.int16)
        one[where] = -499  # just above air
        cases.append(one)
    edge = np.full(shape, -1000, np.int16)
    edge[:, -3:, :] = 100  # a table along the bottom rows only
    cases += [edge, np.full(shape, -1000, np.int16), np.full(shape, -500, np.int16)]
    found = 0
    for hu in cases:
        want = bbox_of(_above_air(hu[:, f // 2::f, f // 2::f]), (0, 1, 1))
        assert _sampled_box(hu, f) == want
        found += want is not None
    assert 0 < found < len(cases)
