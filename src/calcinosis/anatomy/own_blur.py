"""A deposit split from bone keeps its own blur, not the bone's.

Where a deposit lies near bone, the voxels between them hold the blur of both. The
split (:mod:`calcinosis.anatomy.bone`) cuts at the valley of the smoothed intensity and
adds the deposit's fringe on the bone side of it; on thick slices, or where the valley
is shallow, that takes in voxels that only the bone lifts above the threshold: the
bone's own partial volume on the slice under a deposit that lies on it across the
slices, or the bone's edge joined to the deposit through one noisy voxel. Measured with
the deposit, they add volume, mass and a centroid shift that are the bone's.

The deposit's own share of such a voxel is judged from its other side: its blur is
taken as symmetric about the middle of its densest part (voxels above half its height),
so a voxel next to the bone is its own when the voxel mirrored through that middle, on
the side that faces soft tissue, is at or above the threshold too. On a slice where the
deposit does not show, its voxels next to the bone are the bone's partial volume only when
the bone shows beside them on that slice; with soft tissue round them there, they are the
deposit's own partial volume on the slice between it and a bone that ends on the slice
beyond (dropping them lost 18 % of a 6.6 mm deposit 2.8 mm from a rib on 3 mm slices).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from calcinosis.anatomy.morphology import grow

# A deposit shows on a slice when a voxel of it away from the bone rises this fraction of
# its height above its lowest voxel (a noise speck at the threshold does not, after smoothing).
SHOWS_FRACTION = 0.15

_CUBE = np.ones((3, 3, 3), bool)
# The bone's own partial volume on a slice spreads beside a deposit's footprint there: at
# least this share of the in-plane ring round the footprint is dense bone.
BONE_BESIDE_FRACTION = 0.25


def own_blur(sub: tuple[slice, ...], piece: np.ndarray, dense: np.ndarray, bone: np.ndarray,
             height: np.ndarray, own: np.ndarray) -> np.ndarray:
    """A deposit's mask less the voxels that the bone's blur, not its own, lifts above the
    threshold.

    The deposit's densest part is the 26-connected set of its voxels above half its height
    (between its lowest voxel and its maximum) that holds the maximum; the layer of voxels
    round it is always its own (the threshold's surface lies outside the half-height surface
    by about the blur's width). Its voxels next to the bone (26-neighbours of a ``bone``
    voxel outside the piece), beyond that layer, are judged so:

    - on a slice where the deposit does not show (no voxel of its densest part, and none
      away from the bone that rises ``SHOWS_FRACTION`` of its height above its lowest
      voxel) they hold its blur across slices at most, and are the bone's when the bone
      shows beside them on that slice (:func:`_bone_beside`): on thick slices, the bone's
      own partial volume under a deposit that lies on it. With soft tissue round them
      there, they are the deposit's own partial volume on the slice between it and a bone
      that ends on the slice beyond;
    - elsewhere they are kept when the in-plane point mirrored through the middle of the
      densest part (its voxels' mean index, not its intensity-weighted centroid, which on
      thick slices is drawn to the densest slice) falls on or between voxels of which at
      least one is at or above the threshold (``dense``), or outside the box.

    What is left is the part 26-connected to the maximum.

    Parameters
    ----------
    sub : tuple of slices
        The piece's box within the structure's box (``dense``, ``bone``).
    piece : bool array on ``sub``
        The deposit's voxels; only those also in ``dense`` are judged.
    dense, bone : bool arrays on the structure's box
        Voxels at or above the threshold, and the bone's (the piece's own are ignored).
    height : float array on ``sub``
        The deposit's height: smoothed HU, or smoothed HU above the bone's blur profile.
    own : bool array on ``sub``
        Where the deposit's maximum is sought (its basin, not the fringe added on the
        bone's side of the valley, which may rise towards the bone).

    Returns
    -------
    bool array on ``sub``
        ``piece`` less the voxels explained by the bone; ``piece`` itself when nothing
        is next to the bone.
    """
    mask = piece & dense[sub]
    vals = np.where(mask & own, height, -np.inf).astype(np.float32)
    if mask.sum() < 2 or not np.isfinite(vals).any():
        return piece
    sm = height.astype(np.float32)
    top = np.unravel_index(int(np.argmax(vals)), mask.shape)
    low = float(sm[mask].min())
    rise = float(sm[top]) - low
    cores, _ = ndi.label(mask & (sm >= low + 0.5 * rise), structure=_CUBE)
    densest = cores == cores[top]
    next_to_bone = mask & ~densest & grow(bone[sub] & ~piece, corners=True)
    if not next_to_bone.any():
        return piece
    shows = (mask & ~next_to_bone & (sm >= low + SHOWS_FRACTION * rise)) | densest
    shows_on_slice = shows.any(axis=(1, 2))[:, None, None]
    drop = next_to_bone & ~shows_on_slice & _bone_beside(mask, bone[sub] & dense[sub] & ~piece)
    contested = next_to_bone & shows_on_slice & ~grow(densest, corners=True)
    idx = np.argwhere(contested)
    centre = np.argwhere(densest).mean(axis=0)
    point = 2.0 * centre[1:] - idx[:, 1:] + np.array([s.start for s in sub[1:]])
    z = idx[:, 0] + sub[0].start
    keep = np.zeros(len(idx), bool)
    for corner in np.ndindex(2, 2):  # the (up to 4) voxels round the mirrored point
        at = np.where(np.array(corner) == 1, np.ceil(point), np.floor(point)).astype(np.int64)
        inside = np.all((at >= 0) & (at < np.array(dense.shape[1:])), axis=1)
        keep |= ~inside
        keep[inside] |= dense[z[inside], at[inside, 0], at[inside, 1]]
    drop[tuple(idx[~keep].T)] = True
    parts, _ = ndi.label(mask & ~drop, structure=_CUBE)
    return piece & ((parts == parts[top]) | ~mask)


def _bone_beside(mask: np.ndarray, bone: np.ndarray) -> np.ndarray:
    """Per slice (broadcast over the slice): whether the bone shows beside ``mask``'s
    footprint there, in at least ``BONE_BESIDE_FRACTION`` of the in-plane ring round it.

    The bone's partial volume on a slice where the deposit does not show is a sheet that
    goes on beyond the deposit; the deposit's own partial volume on a slice between it and
    the bone (the bone on the slice beyond) is a footprint with soft tissue round it."""
    ring = grow(mask, corners=True, axes=(1, 2)) & ~mask
    n_ring = ring.sum(axis=(1, 2))
    n_bone = (ring & bone).sum(axis=(1, 2))
    return (n_bone >= BONE_BESIDE_FRACTION * np.maximum(n_ring, 1))[:, None, None]
