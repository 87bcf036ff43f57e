"""The midline from column counts equals the median of the listed body voxels' LPS x."""

from __future__ import annotations

import numpy as np
import pytest

from calcinosis.anatomy.body import find_body
from calcinosis.phantom import make_ct_phantom
from calcinosis.pipeline import _midline_x_mm, _weighted_quantile
from calcinosis.volume import Volume


@pytest.mark.parametrize("seed", range(5))
def test_weighted_quantile_is_percentile_of_the_repeated_values(seed):
    rng = np.random.default_rng(seed)
    for _ in range(40):
        values = rng.normal(size=int(rng.integers(1, 20)))
        counts = rng.integers(0, 5, size=len(values))
        counts[rng.integers(len(counts))] += 1
        q = float(rng.random())
        assert _weighted_quantile(values, counts, q) == pytest.approx(np.percentile(np.repeat(values, counts), 100 * q))


def test_midline_same_for_axis_aligned_and_listed_voxels():
    ph = make_ct_phantom("thighs", seed=0, length_mm=20.0, keep_noiseless=False)
    vol = ph.volume
    body = find_body(vol.array, vol.spacing_zyx)
    got = _midline_x_mm(vol, body.mask, body.crop, body.n_parts)
    idx = np.argwhere(body.mask[::2, ::4, ::4]) * [2, 4, 4] + [s.start for s in body.crop]
    assert got == pytest.approx(float(np.median(vol.index_to_lps(idx)[:, 0])))
    # Flipped x: the column order reverses, the midline stays in place (LPS).
    flipped = Volume(np.ascontiguousarray(vol.array[:, :, ::-1]), vol.spacing,
                     vol.index_to_lps(np.array([0, 0, vol.shape[2] - 1]))[[0, 1, 2]],
                     vol.direction @ np.diag([-1.0, 1.0, 1.0]))
    fb = find_body(flipped.array, flipped.spacing_zyx)
    assert _midline_x_mm(flipped, fb.mask, fb.crop, fb.n_parts) == pytest.approx(got, abs=4 * vol.spacing[0])


@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_muscle_histogram_counts_the_muscle_range_of_the_body(dtype):
    # Every 2nd voxel on each axis, inside the body, -30 < HU < 120: the int16 path reads
    # HU + 29 as uint16, so the range's ends and the int16 extremes must fall right.
    from calcinosis.pipeline import _muscle_histogram

    rng = np.random.default_rng(3)
    hu = rng.integers(-60, 150, (9, 14, 13)).astype(dtype)
    mask = rng.random(hu.shape) > 0.3
    sample, inside = hu[::2, ::2, ::2], mask[::2, ::2, ::2]  # views: written through
    edges = [-32768, -32739, -31, -30, -29, 119, 120, 121, 32738, 32739, 32767]
    where = np.unravel_index(np.arange(3 * len(edges)), sample.shape)
    sample[where] = np.tile(edges, 3)
    inside[where] = True
    values = sample[inside & (sample > -30) & (sample < 120)].astype(np.int64)
    want = np.bincount(values + 29, minlength=149)
    got = _muscle_histogram(hu, mask)
    assert got.shape == (149,) and np.array_equal(got, want) and want.sum() > 100
