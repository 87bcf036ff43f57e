"""The fast morphology helpers give the same answers as the plain scipy/edt routines."""

from __future__ import annotations

import edt
import numpy as np
import pytest
from scipy import ndimage as ndi

from calcinosis.anatomy import morphology as M
from calcinosis import threads
from calcinosis.measure.lesion import LocalDistance

SPACING = (1.5, 0.7, 0.9)


@pytest.fixture(scope="module")
def blobs():
    """Random smooth blobs with holes, on an anisotropic grid."""
    rng = np.random.default_rng(3)
    field = ndi.gaussian_filter(rng.normal(size=(18, 40, 44)), 2.0)
    return field, field > 0.02


def test_label_maximum_matches_scipy(blobs, monkeypatch):
    field, mask = blobs
    labels, n = ndi.label(mask)
    assert n > 3
    index = np.arange(1, n + 1)
    for few in (M._FEW_LABELS, 0):  # bounding-box path and labelled-voxel path
        monkeypatch.setattr(M, "_FEW_LABELS", few)
        np.testing.assert_array_equal(M.label_maximum(field, labels, n)[1:], ndi.maximum(field, labels, index))


def test_label_maximum_of_missing_label_is_minus_inf():
    labels = np.zeros((2, 3, 3), np.uint8)
    labels[0, 1, 1] = 2
    out = M.label_maximum(np.full(labels.shape, 5.0), labels, 3)
    assert out[2] == 5.0 and out[1] == -np.inf and out[3] == -np.inf


def test_fill_holes_in_plane_matches_scipy_per_slice(blobs):
    _, mask = blobs
    expected = np.stack([ndi.binary_fill_holes(s) for s in mask])
    np.testing.assert_array_equal(M.fill_holes_in_plane(mask), expected)
    ring = np.zeros((1, 7, 7), bool)
    ring[0, 1:6, 1:6] = True
    ring[0, 3, 3] = False
    assert M.fill_holes_in_plane(ring)[0, 3, 3]


@pytest.mark.parametrize("threads", ["1", "3"])
def test_in_plane_distance_matches_3d_transform_without_z(blobs, monkeypatch, threads):
    _, mask = blobs
    monkeypatch.setenv("CALCINOSIS_THREADS", threads)
    expected = edt.edt(mask, anisotropy=(1e6, SPACING[1], SPACING[2]), black_border=False)
    np.testing.assert_allclose(M.distance_inside_mm(mask, SPACING, in_plane=True), expected, rtol=1e-6)


def test_threads_from_environment(monkeypatch):
    monkeypatch.setenv("CALCINOSIS_THREADS", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    assert threads.n_threads() == 1
    monkeypatch.delenv("CALCINOSIS_THREADS")
    assert threads.n_threads() == 7
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")
    assert threads.n_threads() >= 1


@pytest.mark.parametrize("inside", [True, False])
def test_local_distance_equals_whole_grid_map(blobs, inside):
    """Depth at points and bone distance over lesions, computed on boxes, equal the full maps,
    also for points far from any edge (the box must grow) and when the boxes' cost forces
    the whole-grid transform."""
    _, mask = blobs
    big = np.pad(mask, ((0, 0), (30, 30), (30, 30)), constant_values=inside)  # far edges
    full = (M.distance_inside_mm if inside else M.distance_outside_mm)(big, SPACING)
    local = LocalDistance(big, SPACING, inside=inside)
    rng = np.random.default_rng(0)
    pts = [tuple(int(rng.integers(0, s)) for s in big.shape) for _ in range(25)]
    pts.append((9, 5, 5))  # deep in the padding
    for p in pts:
        if inside:
            got = local.at_point(p)
        else:
            box = tuple(slice(max(i - 1, 0), i + 2) for i in p)
            where = ~big[box]
            if not where.any():
                continue
            got = local.min_over(box, where)
            p = (box, where)
        want = float(full[p]) if inside else float(full[p[0]][p[1]].min())
        assert got == pytest.approx(want, rel=1e-6, abs=1e-6)
    assert local.tree is not None  # the later points were read from the whole grid's edge voxels


def test_local_bone_distance_without_bone_is_inf():
    bone = np.zeros((5, 6, 7), bool)
    local = LocalDistance(bone, SPACING, inside=False)
    assert local.min_over((slice(1, 2),) * 3, np.ones((1, 1, 1), bool)) == np.inf


@pytest.mark.parametrize("shape", [(7, 9), (5, 6, 7)])
def test_grow_one_equals_binary_dilation(shape):
    rng = np.random.default_rng(len(shape))
    mask = rng.random(shape) > 0.85
    faces = ndi.generate_binary_structure(len(shape), 1)
    full = np.ones((3,) * len(shape), bool)
    assert np.array_equal(M.grow_one(mask), ndi.binary_dilation(mask, structure=faces))
    assert np.array_equal(M.grow_one(mask, corners=True), ndi.binary_dilation(mask, structure=full))


@pytest.mark.parametrize("steps", [1, 2])
def test_grow_matches_scipy_binary_dilation(steps):
    # The bone split's many small dilations use grow() instead of ndimage.binary_dilation:
    # the same voxels for the face cross, the full cube and the in-plane square, on masks
    # that touch the array's border (nothing grows in from outside it).
    rng = np.random.default_rng(steps)
    mask = rng.random((7, 9, 11)) > 0.93
    mask[0, 0, 0] = mask[-1, -1, -1] = True
    cross = ndi.generate_binary_structure(3, 1)
    cube = np.ones((3, 3, 3), bool)
    square = np.zeros((3, 3, 3), bool)
    square[1] = True
    for structure, kwargs in ((cross, {}), (cube, {"corners": True}), (square, {"corners": True, "axes": (1, 2)})):
        want = ndi.binary_dilation(mask, structure=structure, iterations=steps)
        got = M.grow(mask, steps, **kwargs)
        assert got.dtype == bool and want.sum() > mask.sum()
        np.testing.assert_array_equal(got, want)
    # Labels (not bool) are read as "non-zero"; the input is not changed.
    labels = mask.astype(np.uint8) * 3
    np.testing.assert_array_equal(M.grow(labels, steps), ndi.binary_dilation(labels, cross, iterations=steps))
    assert labels.max() == 3 and (labels > 0).sum() == mask.sum()
