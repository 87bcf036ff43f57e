"""Per-component statistics from one sort of the labelled voxels agree with scipy.ndimage."""

from __future__ import annotations

import cc3d
import numpy as np
import pytest
from scipy import ndimage as ndi

from calcinosis.anatomy.components import label_components


@pytest.fixture(scope="module", params=[0, 1, 2])
def blobs(request):
    rng = np.random.default_rng(request.param)
    mask = ndi.gaussian_filter(rng.random((30, 40, 50)), 1.0) > 0.55
    values = rng.normal(100.0, 50.0, mask.shape).astype(np.float32)
    return mask, values, cc3d.connected_components(mask, connectivity=26)


def test_labels_boxes_and_counts_match_cc3d_and_ndimage(blobs):
    mask, _, ref = blobs
    comps = label_components(mask)
    assert comps.n == int(ref.max()) > 5
    assert comps.boxes() == ndi.find_objects(ref)
    assert np.array_equal(comps.counts, np.bincount(ref.ravel(), minlength=comps.n + 1) * (np.arange(comps.n + 1) > 0))
    boxes, centres = comps.geometry()
    assert boxes == comps.boxes()
    assert np.allclose(centres, ndi.center_of_mass(mask, ref, np.arange(1, comps.n + 1)))
    for label in (1, comps.n // 2, comps.n):
        box = comps.boxes()[label - 1]
        assert np.array_equal(comps.mask_in(label, box), ref[box] == label)
        assert np.array_equal(np.sort(comps.voxels(label)), np.flatnonzero(ref.ravel() == label))


def test_maximum_and_total_match_ndimage(blobs):
    mask, values, ref = blobs
    comps = label_components(mask)
    index = np.arange(1, comps.n + 1)
    gathered = comps.gather(values)
    assert np.allclose(comps.maximum(gathered)[1:], ndi.maximum(values, ref, index))
    assert np.allclose(comps.total(gathered)[1:], ndi.sum(values, ref, index), rtol=1e-6)
    assert comps.maximum(gathered)[0] == -np.inf and comps.total(gathered)[0] == 0.0


def test_empty_mask_has_no_components():
    comps = label_components(np.zeros((3, 4, 5), bool))
    assert comps.n == 0 and comps.boxes() == [] and comps.maximum(np.zeros(0)).tolist() == [-np.inf]


@pytest.mark.parametrize("connectivity", [6, 18, 26])
@pytest.mark.parametrize("seed, level", [(3, 0.52), (4, 0.62), (5, 0.56)])
def test_numbering_is_cc3d_raster_order(connectivity, seed, level):
    # Many components, some that meet only through an edge or a corner, U-shapes whose two
    # arms start apart: the numbers must still follow the raster order of first voxels.
    rng = np.random.default_rng(seed)
    mask = ndi.gaussian_filter(rng.random((25, 33, 41)), 0.8) > level
    mask[3, 2:9, 4] = mask[3, 2, 4:12] = mask[3, 2:9, 11] = True  # a U opening downwards
    ref = cc3d.connected_components(mask, connectivity=connectivity)
    comps = label_components(mask, connectivity=connectivity)
    assert comps.n == int(ref.max()) > 10
    labels = np.zeros(mask.size, np.int64)
    for label in range(1, comps.n + 1):
        labels[comps.voxels(label)] = label
    assert np.array_equal(labels.reshape(mask.shape), ref)


def test_gather_reads_a_cropped_view_like_a_contiguous_copy(blobs):
    # The analysis gathers from a crop of the scan (a view that is not contiguous).
    mask, values, _ = blobs
    big = np.zeros((34, 46, 57), values.dtype)
    big[2:32, 3:43, 4:54] = values
    view = big[2:32, 3:43, 4:54]
    assert not view.flags.c_contiguous
    comps = label_components(mask)
    assert np.array_equal(comps.gather(view), comps.gather(np.ascontiguousarray(view)))
    assert np.array_equal(comps.gather(view), values[mask][np.argsort(
        cc3d.connected_components(mask, connectivity=26)[mask], kind="stable")])


def test_large_mask_labelled_on_ordinary_pages_is_cc3d():
    # From a million voxels up the labels are written to an in-memory file (memfd on Linux):
    # the same components, numbers and voxels as cc3d's own array.
    from calcinosis.anatomy import components

    rng = np.random.default_rng(7)
    mask = ndi.zoom(rng.random((26, 26, 26)), 4, order=1) > 0.6
    assert mask.size >= components._ORDINARY_PAGES_VOXELS
    ref = cc3d.connected_components(mask, connectivity=26)
    comps = label_components(mask)
    assert comps.n == int(ref.max()) > 20
    keys = np.zeros(mask.size, np.int64)
    for label in range(1, comps.n + 1):
        keys[comps.voxels(label)] = label
    assert np.array_equal(keys.reshape(mask.shape), ref)
