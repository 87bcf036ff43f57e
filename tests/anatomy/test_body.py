"""The body mask: the fast path (parts chosen on a coarse grid, skin at full resolution)
equals the plain full-resolution opening, and objects lying on the skin stay outside."""

from __future__ import annotations

import cc3d
import numpy as np
import pytest

from calcinosis.anatomy.body import AIR_HU, MIN_HALF_THICKNESS_MM, TABLE_OPENING_MM, find_body
from calcinosis.anatomy.morphology import dilate_mm, distance_inside_mm, fill_holes_in_plane
from calcinosis.phantom import make_ct_phantom

DISTRACTORS = ("vessels", "bowel", "cartilage", "necklace", "ecg_leads")


def reference_body(hu: np.ndarray, spacing_zyx) -> np.ndarray:
    """The definition, computed the slow way on the full grid: non-air opened in-plane with
    the 4 mm disk; 3-D parts at least 12 mm deep (and >= 2 % of the largest) are body; a
    voxel of tissue next to them given back; holes of each slice filled."""
    tissue = hu > AIR_HU
    depth = distance_inside_mm(tissue, spacing_zyx, in_plane=True)
    opened = dilate_mm(depth > TABLE_OPENING_MM, spacing_zyx, TABLE_OPENING_MM, in_plane=True)
    labels, n = cc3d.connected_components(opened, connectivity=6, return_N=True)
    index = np.arange(1, n + 1)
    deepest = np.array([depth[labels == i].max() for i in index])
    sizes = np.array([(labels == i).sum() for i in index])
    keep = deepest >= MIN_HALF_THICKNESS_MM
    keep &= sizes >= 0.02 * sizes[keep].max()
    mask = np.isin(labels, index[keep])
    ring = mask.copy()
    ring[:, 1:] |= mask[:, :-1]
    ring[:, :-1] |= mask[:, 1:]
    ring[:, :, 1:] |= mask[:, :, :-1]
    ring[:, :, :-1] |= mask[:, :, 1:]
    return fill_holes_in_plane(ring & tissue)


@pytest.mark.parametrize("part, kwargs", [
    ("trunk", dict(seed=0, distractors=DISTRACTORS, noise_hu=25.0, slice_thickness_mm=3.0)),
    ("thighs", dict(seed=1)),
    ("elbow", dict(seed=2, pixel_mm=0.6)),
])
def test_fast_body_mask_equals_the_full_resolution_opening(part, kwargs):
    vol = make_ct_phantom(part, length_mm=24.0, keep_noiseless=False, **kwargs).volume
    body = find_body(vol.array, vol.spacing_zyx)
    got = np.zeros(vol.shape, bool)
    got[body.crop] = body.mask
    want = reference_body(vol.array, vol.spacing_zyx)
    assert got.sum() > 10_000
    # A voxel or so may differ where the coarse blocks and the full grid break a tie.
    assert (got != want).sum() <= 1e-5 * want.sum(), f"{(got != want).sum()} voxels differ"


def test_beads_on_the_skin_are_outside_the_body():
    ph = make_ct_phantom("trunk", seed=0, length_mm=40.0, keep_noiseless=False, distractors=DISTRACTORS,
                         noise_hu=25.0, slice_thickness_mm=3.0)
    vol = ph.volume
    body = find_body(vol.array, vol.spacing_zyx)
    inside = np.zeros(vol.shape, bool)
    inside[body.crop] = body.mask
    on_skin = [d for d in ph.distractors if d.kind == "necklace_bead"]
    assert on_skin
    for d in on_skin:
        idx = tuple(np.round(vol.lps_to_index(np.asarray(d.centroid_lps))).astype(int))
        assert not inside[idx], d.kind


def test_packed_growth_equals_growing_the_boolean_slice():
    # The skin's growth runs on rows packed 64 pixels to a word: widths round a word's (63,
    # 64, 65, 129), one row or column, and growth that stops early or goes on must all give
    # grow_one's pixels and the same "goes on" answer.
    from scipy import ndimage as ndi

    from calcinosis.anatomy.body import _grow_within
    from calcinosis.anatomy.morphology import grow_one

    def reference(m, tissue, steps):
        for step in range(steps + 1):
            grown = grow_one(m, corners=True) & tissue
            if np.count_nonzero(grown) == np.count_nonzero(m):
                return m, False
            if step == steps:
                return m, True
            m = grown
        raise AssertionError

    rng = np.random.default_rng(11)
    shapes = [(1, 70), (70, 1), (40, 63), (40, 64), (33, 65), (20, 129), (57, 200)]
    seen = set()
    for shape in shapes * 6:
        tissue = ndi.gaussian_filter(rng.random(shape), 1.5) > rng.uniform(0.35, 0.55)
        m = tissue & (rng.random(shape) > 0.97)
        for steps in (0, 1, 3, 8):
            want, goes_on = reference(m, tissue, steps)
            got, got_on = _grow_within(m, tissue, steps)
            assert got.dtype == bool and got.shape == shape
            assert got_on == goes_on and np.array_equal(got, want), (shape, steps)
            seen.add(goes_on)
    assert seen == {True, False}
