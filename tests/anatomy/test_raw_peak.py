"""A small dense deposit on the bone whose valley the smoothing filled (anatomy/raw_peak.py)."""

from __future__ import annotations

import numpy as np
import pytest

from calcinosis.anatomy.raw_peak import raw_peak_pieces

SP = (3.0, 0.8, 0.8)
NOISE_HU = 30.0


def _scene(blob_hu: float, noise_seed: int | None = 0, gap_hu: float = 500.0, rim: float = 0.8):
    """Voxel by voxel, on 3 mm slices: a slab of cortex (1400 HU, columns < 20, its edge
    column 1100) and, on the middle slice, a 3 x 3 voxel blob (``blob_hu`` at its centre,
    ``rim`` of it round) one column from the slab, the column between at ``gap_hu`` (the
    gap's blur: the valley in the raw HU), in soft tissue (50 HU) and 30 HU noise (none
    when ``noise_seed`` is None). Raw HU (int16), the blob and the slab."""
    shape = (5, 40, 40)
    img = np.full(shape, 50.0)
    slab = np.zeros(shape, bool)
    slab[:, :, :20] = True
    img[slab] = 1400.0
    img[:, :, 19] = 1100.0
    blob = np.zeros(shape, bool)
    blob[2, 19:22, 21:24] = True
    if blob_hu:
        img[blob] = rim * blob_hu
        img[2, 20, 22] = blob_hu
        img[2, 19:22, 20] = gap_hu
    if noise_seed is not None:
        img = img + np.random.default_rng(noise_seed).normal(0.0, NOISE_HU, shape)
    return np.rint(img).astype(np.int16), blob, slab


def _pieces(raw, h=6 * NOISE_HU):
    dense = raw >= 130
    taken = np.zeros(raw.shape, bool)
    return raw_peak_pieces(dense, raw, taken, SP, h, 130.0, 2500.0 / float(np.prod(SP))), dense, taken


@pytest.mark.parametrize("noise_seed", [None, 0, 1, 2])
def test_small_dense_deposit_on_the_cortex_is_cut_from_it(noise_seed):
    raw, blob, slab = _scene(1000.0, noise_seed=noise_seed)
    pieces, dense, taken = _pieces(raw)
    assert len(pieces) == 1
    sub, piece = pieces[0]
    full = np.zeros(raw.shape, bool)
    full[sub] = piece
    ideal = blob & dense  # the ball's voxels at the threshold
    assert (full & ideal).sum() >= 0.8 * ideal.sum()
    assert not (full & slab).any()
    assert (taken == full).all()  # the piece is marked taken for the caller


@pytest.mark.parametrize("noise_seed", [0, 1, 2, 3])
def test_bone_alone_gives_nothing(noise_seed):
    raw, _, _ = _scene(0.0, noise_seed=noise_seed)
    assert _pieces(raw)[0] == []


@pytest.mark.parametrize("noise_seed", [None, 0, 1])
def test_a_knob_of_the_cortex_gives_nothing(noise_seed):
    # A knob of the cortex's own density, 3 columns out of it, joined to it through cortex:
    # no valley.
    raw, _, _ = _scene(0.0, noise_seed=None)
    knob = raw.astype(float)
    knob[2, 19:22, 19:23] = 1400.0
    if noise_seed is not None:
        knob += np.random.default_rng(noise_seed).normal(0.0, NOISE_HU, knob.shape)
    assert _pieces(np.rint(knob).astype(np.int16))[0] == []


def test_a_peak_shallower_than_h_gives_nothing():
    # A blob whose valley is shallower than h (900 HU over an 800 HU gap) is left to the
    # other steps; 400 HU deeper, it is cut off.
    raw, _, _ = _scene(900.0, noise_seed=None, gap_hu=800.0, rim=1.0)
    assert _pieces(raw)[0] == []
    raw, _, _ = _scene(900.0, noise_seed=None, gap_hu=400.0, rim=1.0)
    assert len(_pieces(raw)[0]) == 1
