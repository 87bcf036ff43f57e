"""The patient's midline (pipeline._midline_x_mm) and the weighted quantile."""

from __future__ import annotations

import numpy as np
import pytest

from calcinosis.anatomy.body import find_body
from calcinosis.phantom import make_ct_phantom
from calcinosis.pipeline import _midline_from_columns, _midline_x_mm, _weighted_quantile
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


@pytest.mark.parametrize("body_part, seed", [("thighs", 0), ("thighs", 44), ("thighs", 46), ("trunk", 36), ("trunk", 47)])
def test_midline_is_the_phantoms(body_part, seed):
    # The phantom's midline is LPS x = 0: the middle of the gap between the thighs (of
    # unequal girth: seed 44's body median lay 11.6 mm off it), the spine's centre on the
    # trunk (the old median of every 4th column was 1.2 mm off it on seed 36).
    ph = make_ct_phantom(body_part, seed=seed, length_mm=20.0, keep_noiseless=False)
    vol = ph.volume
    body = find_body(vol.array, vol.spacing_zyx)
    got = _midline_x_mm(vol, body.mask, body.crop, body.n_parts)
    assert abs(got) < 0.5 * vol.spacing[0]
    # Flipped x: the column order reverses, the midline stays in place (LPS).
    flipped = Volume(np.ascontiguousarray(vol.array[:, :, ::-1]), vol.spacing,
                     vol.index_to_lps(np.array([0, 0, vol.shape[2] - 1]))[[0, 1, 2]],
                     vol.direction @ np.diag([-1.0, 1.0, 1.0]))
    fb = find_body(flipped.array, flipped.spacing_zyx)
    assert _midline_x_mm(flipped, fb.mask, fb.crop, fb.n_parts) == pytest.approx(got, abs=0.05)


def test_midline_from_columns():
    x = np.arange(100) * 6.0  # column centres, 6 mm apart
    trunk = np.zeros(100, int)
    trunk[20:60] = 10  # columns 20..59: x 120..354, the body's extent 117..357
    assert _midline_from_columns(x, trunk, 6.0, 1) == pytest.approx(237.0)  # its middle, not a column
    lopsided = trunk.copy()
    lopsided[59] = 30  # more body at one edge: the median moves within its column
    assert _midline_from_columns(x, lopsided, 6.0, 1) == pytest.approx(243.0)  # 20 of 420 voxels moved: 10 more on the right
    with_arm = trunk.copy()
    with_arm[70:75] = 20  # an arm apart from the trunk, a quarter of its size: left out
    assert _midline_from_columns(x, with_arm, 6.0, 2) == pytest.approx(237.0)
    pair = np.zeros(100, int)
    pair[10:40] = 10
    pair[46:70] = 11  # two limbs of like size: the gap's middle (between columns 39 and 46)
    assert _midline_from_columns(x, pair, 6.0, 2) == pytest.approx((234.0 + 276.0) / 2)
    limb = np.zeros(100, int)
    limb[30:50] = 5  # one limb 120 mm wide on its own: the isocentre
    assert _midline_from_columns(x, limb, 6.0, 1) == 0.0


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
