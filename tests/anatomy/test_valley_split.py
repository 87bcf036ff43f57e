"""The bone split's valley step (flooding on the structure's own box, int16 h-maxima, peaks and
saddles of small basins only) equals its slow reference: the same algorithm on the whole box,
in float, with every basin's statistics (the code before it was made faster), and the merge of
small basins that noise split written as a plain loop."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from calcinosis.anatomy import valley as B
from calcinosis.anatomy.basins import MERGED_MIN_TISSUE_RATIO
from calcinosis.anatomy.morphology import fill_holes_in_plane, label_counts, label_maximum
from calcinosis.anatomy.own_blur import own_blur
from calcinosis.detect.candidates import smoothed

SP = (1.0, 0.8, 0.8)


def _border_counts_reference(basins, n, img):
    tissue = np.zeros(n + 1, np.int64)
    other = np.zeros(n + 1, np.int64)
    saddle = np.full(n + 1, -np.inf)
    for axis in range(basins.ndim):
        a = np.moveaxis(basins, axis, 0)[:-1].ravel()
        b = np.moveaxis(basins, axis, 0)[1:].ravel()
        va = np.moveaxis(img, axis, 0)[:-1].ravel()
        vb = np.moveaxis(img, axis, 0)[1:].ravel()
        diff = a != b
        a, b, low = a[diff], b[diff], np.minimum(va[diff], vb[diff])
        for x, y in ((a, b), (b, a)):
            inside = x > 0
            tissue += np.bincount(x[inside & (y == 0)], minlength=n + 1)
            pair = inside & (y > 0)
            other += np.bincount(x[pair], minlength=n + 1)
            np.maximum.at(saddle, x[pair], low[pair])
    return tissue, other, saddle


def _merge_reference(basins, n, img, h, max_voxels):
    """Small basins whose peaks differ by less than ``h``, joined by a saddle less than ``h``
    below the lower one's peak, merged one pair at a time, the pair with the highest saddle first, into the basin with the higher
    peak (on a tie the lower label), while the two hold at most ``max_voxels``."""
    original = basins
    basins = basins.copy()
    while True:
        counts = label_counts(basins, n)
        peak = label_maximum(img, basins, n)
        small = (counts > 0) & (counts <= max_voxels)
        small[0] = False
        best = None
        for axis in range(basins.ndim):
            a = np.moveaxis(basins, axis, 0)[:-1].ravel()
            b = np.moveaxis(basins, axis, 0)[1:].ravel()
            low = np.minimum(np.moveaxis(img, axis, 0)[:-1].ravel(), np.moveaxis(img, axis, 0)[1:].ravel())
            for i in np.flatnonzero((a != b) & small[a] & small[b]):
                x, y = sorted((int(a[i]), int(b[i])), key=lambda k: (peak[k], -k))
                if peak[x] - low[i] < h and peak[y] - peak[x] < h and counts[x] + counts[y] <= max_voxels:
                    if best is None or low[i] > best[0]:
                        best = (float(low[i]), x, y)
        if best is None:
            break
        basins[basins == best[1]] = best[2]
    # A merged group that does not face soft tissue on MERGED_MIN_TISSUE_RATIO times more of
    # its border than other basins is split back into its basins.
    tissue, other, _ = _border_counts_reference(basins, n, img)
    for k in np.unique(original[basins != original]):
        group = basins == basins[original == k][0]
        if tissue[basins[original == k][0]] <= MERGED_MIN_TISSUE_RATIO * other[basins[original == k][0]]:
            basins[group] = original[group]
    return basins


def _valley_split_reference(solid, dense, smooth_hu, spacing_zyx, h_hu, max_volume):
    vv = float(np.prod(spacing_zyx))
    img = np.where(solid, smooth_hu, smooth_hu.min()).astype(np.float32)
    h_weak = B.WEAK_H_FRACTION * h_hu
    peaks = B.h_maxima(img, h_weak) & dense
    markers, n = ndi.label(peaks, structure=np.ones((3, 3, 3), bool))
    if n <= 1:
        return []
    basins = watershed(-img, markers, mask=solid)
    basins = _merge_reference(basins, n, img, h_hu, max_volume / vv)
    counts = label_counts(basins, n)
    sizes = counts * vv
    facing_tissue, facing_other, saddle = _border_counts_reference(basins, n, img)
    peak = label_maximum(img, basins, n)
    peak[0] = 0.0
    with np.errstate(invalid="ignore"):  # labels merged away: -inf - -inf
        prominence = peak - saddle
    small = (sizes > 0) & (sizes <= max_volume) & (facing_tissue > B.BUMP_MIN_TISSUE_RATIO * facing_other)
    small[0] = False
    if not small.any():
        return []
    objects = ndi.find_objects(basins)
    subs = {k: tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in objects[k - 1]) for k in np.flatnonzero(small)}
    opened = {k: B.opened_on(solid, sub, spacing_zyx, B.OUTLINE_BALL_MM) for k, sub in subs.items()}
    outside = np.zeros(n + 1)
    for k, sub in subs.items():
        outside[k] = 1.0 - ((basins[sub] == k) & opened[k]).sum() / max(int(counts[k]), 1)
    weak = small & (prominence < h_hu)
    apart = (outside >= 0.5) | (facing_tissue > MERGED_MIN_TISSUE_RATIO * facing_other)  # merge_noise_tops
    accept = small & ((prominence >= h_hu) | (weak & (prominence >= h_weak) & apart))
    taken = accept[basins]
    out = []
    for k in np.flatnonzero(accept):
        sub = subs[k]
        basin = basins[sub] == k
        fringe = ndi.binary_dilation(basin, structure=ndi.generate_binary_structure(3, 1))
        fringe &= solid[sub] & ~opened[k] & ~taken[sub]
        out.append((sub, own_blur(sub, basin | fringe, dense, solid & ~taken, img[sub], basin)))
    return out


def _bone_with_deposits(seed: int, margin: int):
    """A noisy hollow bone shaft along z with deposits beside it at 0.8-2.4 mm gaps and bumps
    on it, blurred, in soft tissue; the box has ``margin`` voxels of tissue round the bone."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:24, :44, :44]
    r = np.hypot((y - 20) * 0.8, (x - 20) * 0.8)
    ideal = np.full(z.shape, 40.0)
    ideal[r <= 9.0] = 900.0
    ideal[r <= 6.0] = 250.0
    for k in range(5):
        angle = rng.uniform(0, 2 * np.pi)
        dist = 9.0 + rng.uniform(0.8, 2.4) + 1.5
        cz, cy, cx = rng.uniform(4, 20), 20 + dist * np.sin(angle) / 0.8, 20 + dist * np.cos(angle) / 0.8
        d = np.sqrt((z - cz) ** 2 + ((y - cy) * 0.8) ** 2 + ((x - cx) * 0.8) ** 2)
        ideal[d <= rng.uniform(1.0, 2.0)] = rng.uniform(500.0, 1500.0)
    hu = ndi.gaussian_filter(ideal, (0.7, 0.9, 0.9)) + rng.normal(0.0, 20.0, ideal.shape)
    hu = np.rint(hu).astype(np.int16)
    labels, _ = ndi.label(hu >= 130, structure=np.ones((3, 3, 3), bool))
    dense = labels == labels[12, 20, 20 + 11]  # the shaft (and what joins it)
    box = tuple(slice(max(int(i.min()) - margin, 0), int(i.max()) + 1 + margin) for i in np.nonzero(dense))
    smooth = smoothed(hu, SP, dtype=np.int16)
    return dense[box], smooth[box]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("margin", [0, 4])
def test_same_deposits_as_the_reference(seed, margin):
    dense, smooth = _bone_with_deposits(seed, margin)
    solid = fill_holes_in_plane(dense)
    found = []
    for h in (60.0, 90.0):
        want = _valley_split_reference(solid, dense, smooth, SP, h, 2500.0)
        got = B.valley_split(solid, dense, smooth, SP, h, 2500.0, merge_noise_tops=True)
        assert [sub for sub, _ in got] == [sub for sub, _ in want]
        assert all(np.array_equal(g, w) for (_, g), (_, w) in zip(got, want))
        found.append(len(got))
    assert max(found) >= 1  # the comparison covers deposits split off, not only empty answers
