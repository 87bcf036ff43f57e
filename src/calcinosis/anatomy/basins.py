"""Watershed basins of a bone's smoothed intensity: merging the basins that noise split.

Used by :func:`calcinosis.anatomy.valley.valley_split`.
"""

from __future__ import annotations

import numpy as np

# Basins of one deposit that noise split, merged, face soft tissue on this many times more of
# their border than the bone; knobs of a bone's end, merged, do not. On the phantoms: deposit
# groups 10-60, a merged pair of the elbow bone's knobs 2.0 (elbow s2, 20 HU, 1.5 mm).
MERGED_MIN_TISSUE_RATIO = 4.0


def merge_shallow_basins(basins: np.ndarray, counts: np.ndarray, img: np.ndarray, h: float,
                          max_voxels: float) -> tuple[np.ndarray, np.ndarray]:
    """Basins 1..n with the small ones that noise split merged back: two small basins (at
    most ``max_voxels`` together) whose peaks differ by less than ``h`` and that are joined
    by a saddle less than ``h`` below the lower peak are one object. A dense deposit's top
    holds several maxima: noise, its lobes, and equal (whole-HU) tops that h-maxima keeps
    apart however shallow the saddle between them; each basin alone is less than ``h``
    prominent against the other, and both were lost. Merged by falling saddle, the lower
    peak into the higher (the merge tree of the dynamics). A faint deposit is not merged
    into a denser knob of the bone (peaks ``h`` apart), nor anything into a large basin
    (the bone): the weak-valley rule of :func:`calcinosis.anatomy.valley.valley_split`
    reads those. A merged group is kept only when it faces soft tissue on
    ``MERGED_MIN_TISSUE_RATIO`` times more of its border than other basins: a deposit
    touches the bone at a small contact, while knobs of a bone's end, merged, still join the
    rest broadly (and would stand out of it as one).

    ``counts``: voxels per label 0..n. Returns the basins, each merged one labelled as the
    highest basin of its group (the other labels are then unused), and their counts.
    """
    n = counts.size - 1
    small = (counts > 0) & (counts <= max_voxels)
    small[0] = False
    if np.count_nonzero(small) < 2:
        return basins, counts
    in_small = small[basins]
    tissue = np.zeros(n + 1, np.int64)
    other = np.zeros(n + 1, np.int64)
    firsts, seconds, lows = [], [], []
    for axis in range(basins.ndim):
        first = (slice(None),) * axis + (slice(None, -1),)
        second = (slice(None),) * axis + (slice(1, None),)
        a, b = basins[first], basins[second]
        diff = a != b
        side_a = in_small[first] & diff
        side_b = in_small[second] & diff
        for x, y, side in ((a, b, side_a), (b, a, side_b)):
            xs, ys = x[side], y[side]
            tissue += np.bincount(xs[ys == 0], minlength=n + 1)
            other += np.bincount(xs[ys > 0], minlength=n + 1)
        pair = side_a & side_b
        if pair.any():
            firsts.append(a[pair])
            seconds.append(b[pair])
            lows.append(np.minimum(img[first][pair], img[second][pair]))
    if not firsts:
        return basins, counts
    a, b = np.concatenate(firsts), np.concatenate(seconds)
    key = np.minimum(a, b).astype(np.int64) * (n + 1) + np.maximum(a, b)
    keys, inverse = np.unique(key, return_inverse=True)
    saddle = np.full(keys.size, -np.inf)
    np.maximum.at(saddle, inverse, np.concatenate(lows))
    faces = np.bincount(inverse, minlength=keys.size)
    peak = np.full(n + 1, -np.inf)
    np.maximum.at(peak, basins[in_small], img[in_small])
    parent = np.arange(n + 1)
    size = counts.astype(np.int64)

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = int(parent[k])
        return k

    merged = False
    for e in np.argsort(-saddle, kind="stable"):
        ra, rb = root(int(keys[e] // (n + 1))), root(int(keys[e] % (n + 1)))
        if ra == rb:
            continue
        low, high = (ra, rb) if (peak[ra], -ra) < (peak[rb], -rb) else (rb, ra)
        if peak[low] - saddle[e] >= h or peak[high] - peak[low] >= h or size[ra] + size[rb] > max_voxels:
            continue  # two objects; or a deposit beside a knob of the bone, far denser
        parent[low] = high
        size[high] += size[low]
        merged = True
    if not merged:
        return basins, counts
    roots = np.array([root(k) for k in range(n + 1)], dtype=basins.dtype)
    # Each group's faces: its members' faces less those between two of its members.
    group_tissue = np.bincount(roots, weights=tissue, minlength=n + 1)
    group_other = np.bincount(roots, weights=other, minlength=n + 1)
    a_root, b_root = roots[keys // (n + 1)], roots[keys % (n + 1)]
    inner = a_root == b_root
    group_other -= 2 * np.bincount(a_root[inner], weights=faces[inner], minlength=n + 1)
    broad = group_tissue <= MERGED_MIN_TISSUE_RATIO * group_other
    undo = broad[roots]
    roots[undo] = np.arange(n + 1, dtype=basins.dtype)[undo]
    size = np.where(undo, counts, size)
    if np.all(roots == np.arange(n + 1)):
        return basins, counts
    basins = basins.copy()
    basins[in_small] = roots[basins[in_small]]
    return basins, np.where(roots == np.arange(n + 1), size, 0)
