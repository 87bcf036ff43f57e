"""Watershed basins of a bone's smoothed intensity: merging the basins that noise split, the
saddle between two pieces, and the rule that a deposit faces soft tissue more than the bone.

Used by :mod:`calcinosis.anatomy.valley`, :mod:`calcinosis.anatomy.bone` and
:mod:`calcinosis.anatomy.shoulder`.
"""

from __future__ import annotations

import numpy as np
from skimage.segmentation import watershed

from calcinosis.anatomy.morphology import grow

# A deposit touches the bone over a small part of its surface; a knob of the bone itself
# (an epicondyle, a process) joins it broadly: faces to soft tissue / faces to the bone.
BUMP_MIN_TISSUE_RATIO = 1.6
# Basins of one deposit that noise split, merged, face soft tissue on this many times more of
# their border than the bone; knobs of a bone's end, merged, do not. On the phantoms: deposit
# groups 10-60, a merged pair of the elbow bone's knobs 2.0 (elbow s2, 20 HU, 1.5 mm).
MERGED_MIN_TISSUE_RATIO = 4.0


def face_pairs(basins: np.ndarray, img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of face neighbours with different labels in ``basins`` (0: outside the
    structure): their labels ``a`` and ``b`` (each pair once) and the lower of their two
    values in ``img``."""
    # On the flat arrays: a face pair along an axis is (i, i + stride), the stride of the
    # axis; pairs that would wrap round the end of a row or slice are left out. (Only pairs
    # across a border are read out, by index: one pass over the grid per axis.)
    flat = np.ascontiguousarray(basins).ravel()
    values = np.ascontiguousarray(img).ravel()
    size = flat.size
    diff_full = np.zeros(size, bool)
    firsts, seconds, lows = [], [], []
    for axis in range(basins.ndim):
        stride = int(np.prod(basins.shape[axis + 1:], dtype=np.int64))
        if basins.shape[axis] < 2:
            continue
        diff = diff_full[:size - stride]
        np.not_equal(flat[:-stride], flat[stride:], out=diff)
        diff_full[size - stride:] = False
        # Pairs from the last position along the axis wrap to the next row: not faces.
        diff_full.reshape(basins.shape)[(slice(None),) * axis + (-1,)] = False
        at = np.flatnonzero(diff)
        firsts.append(flat[at])
        seconds.append(flat[at + stride])
        lows.append(np.minimum(values[at], values[at + stride]))
    if not firsts:
        empty = np.zeros(0, flat.dtype)
        return empty, empty, np.zeros(0, values.dtype)
    return np.concatenate(firsts), np.concatenate(seconds), np.concatenate(lows)


def shell(piece: np.ndarray) -> np.ndarray:
    """The face neighbours of ``piece`` outside it."""
    return grow(piece) & ~piece


def faces_tissue(piece_shell: np.ndarray, solid: np.ndarray, bone: np.ndarray) -> bool:
    """Whether a piece whose face neighbours are ``piece_shell`` faces soft tissue (outside the
    structure ``solid``) on more than ``BUMP_MIN_TISSUE_RATIO`` times as many of them as it
    faces ``bone``: a deposit touches the bone over a small part of its surface."""
    return int((piece_shell & ~solid).sum()) > BUMP_MIN_TISSUE_RATIO * int((piece_shell & bone).sum())


def piece_from_core(core: np.ndarray, bone: np.ndarray, img: np.ndarray, mask: np.ndarray, solid: np.ndarray,
                    clearance: int, max_voxels: float) -> np.ndarray | None:
    """A deposit's piece on a window round its core: ``mask`` flooded on ``img`` (highest
    first) from ``core`` and from the voxels of ``bone`` at least ``clearance`` face steps
    from it; None when it holds more than ``max_voxels`` or does not face soft tissue
    (outside ``solid``) more than the rest of ``solid`` (:func:`faces_tissue`)."""
    near_core = grow(core, clearance)
    bone_marker = mask & bone & ~near_core
    if not bone_marker.any():
        return None
    markers = np.zeros(mask.shape, np.int32)
    markers[bone_marker] = 2
    markers[core] = 1
    piece = watershed(-img.astype(np.float32), markers, mask=mask) == 1
    if piece.sum() > max_voxels or not faces_tissue(shell(piece), solid, solid):
        return None
    return piece


def saddle_between(first: np.ndarray, second: np.ndarray, img: np.ndarray) -> float:
    """The highest value along the border of two disjoint masks (on one grid): over the
    face-neighbour pairs of a ``first`` voxel and a ``second`` voxel, the larger of their
    lower values in ``img`` (-inf when they do not touch)."""
    a, b, low = face_pairs(first.view(np.uint8) + 2 * second.view(np.uint8), img)
    between = a.astype(np.int16) * b == 2  # a first voxel (1) and a second voxel (2)
    return float(low[between].max()) if between.any() else -np.inf


def merge_shallow_basins(basins: np.ndarray, counts: np.ndarray, img: np.ndarray, h: float,
                         max_voxels: float, faces: tuple[np.ndarray, np.ndarray, np.ndarray],
                         ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
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

    ``counts``: voxels per label 0..n; ``faces``: :func:`face_pairs` of ``basins`` and
    ``img``. Returns the basins, each merged one labelled as the highest basin of its group
    (the other labels are then unused), their counts, and their face pairs (those of the
    merged labels, less the pairs inside a group).
    """
    n = counts.size - 1
    small = (counts > 0) & (counts <= max_voxels)
    small[0] = False
    if np.count_nonzero(small) < 2:
        return basins, counts, faces
    in_small = small[basins]
    fa, fb, flow = faces
    tissue = np.zeros(n + 1, np.int64)
    other = np.zeros(n + 1, np.int64)
    for x, y in ((fa, fb), (fb, fa)):
        side = small[x]
        xs, ys = x[side], y[side]
        tissue += np.bincount(xs[ys == 0], minlength=n + 1)
        other += np.bincount(xs[ys > 0], minlength=n + 1)
    pair = small[fa] & small[fb]
    if not pair.any():
        return basins, counts, faces
    a, b = fa[pair], fb[pair]
    key = np.minimum(a, b).astype(np.int64) * (n + 1) + np.maximum(a, b)
    keys, inverse = np.unique(key, return_inverse=True)
    saddle = np.full(keys.size, -np.inf)
    np.maximum.at(saddle, inverse, flow[pair])
    n_faces = np.bincount(inverse, minlength=keys.size)
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
        return basins, counts, faces
    roots = np.array([root(k) for k in range(n + 1)], dtype=basins.dtype)
    # Each group's faces: its members' faces less those between two of its members.
    group_tissue = np.bincount(roots, weights=tissue, minlength=n + 1)
    group_other = np.bincount(roots, weights=other, minlength=n + 1)
    a_root, b_root = roots[keys // (n + 1)], roots[keys % (n + 1)]
    inner = a_root == b_root
    group_other -= 2 * np.bincount(a_root[inner], weights=n_faces[inner], minlength=n + 1)
    broad = group_tissue <= MERGED_MIN_TISSUE_RATIO * group_other
    undo = broad[roots]
    roots[undo] = np.arange(n + 1, dtype=basins.dtype)[undo]
    size = np.where(undo, counts, size)
    if np.all(roots == np.arange(n + 1)):
        return basins, counts, faces
    basins = basins.copy()
    basins[in_small] = roots[basins[in_small]]
    fa, fb = roots[fa], roots[fb]
    apart = fa != fb  # faces inside a group are no border any more
    return basins, np.where(roots == np.arange(n + 1), size, 0), (fa[apart], fb[apart], flow[apart])
