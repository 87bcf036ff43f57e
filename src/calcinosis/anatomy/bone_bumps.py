"""Deposits pressed against a bone, told from the bone's own partial volume.

A deposit within a millimetre of the cortex has no in-plane maximum of its own: its
intensity rises into the bone in every slice. It still stands above the bone's blur
profile (:func:`calcinosis.anatomy.bone._profile_split`), but so do two parts of the bone:

- its ends along z: a slice that cuts the bone's end (or a widening of it) holds the
  bone's partial volume across the slice, which the in-plane profile does not model
  (:func:`bone_end_caps`);
- a straight stretch of its edge whose blur is wider than the profile's median (an edge
  along the pixel grid, a flat face): a strip that rises above the profile all along.

A deposit is local: it rises above the voxels beside it at the same distance from the
bone's core (:func:`local_rise`); the bone's edge does not.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from calcinosis.anatomy.bone_profile import per_label_max
from calcinosis.anatomy.morphology import grow, grow_box

# The neighbourhood a deposit's rise is measured against (mm beyond its box, each way):
# wider than the blur, so that the bone's edge beside the deposit is in it.
LOCAL_REACH_MM = 3.0
# A pressed deposit rises this many times the valley depth ``h`` above the bone's profile,
# and as much above its neighbours at the same distance from the core.
PRESSED_RISE_H = 1.5
# A deposit hidden in the bone's blur (no maximum of its own) is small, a few millimetres:
# its box spans at most this (mm) along each axis, its blur into the next slices included.
# A stretch of the bone's edge raised along z by noise runs much further.
PRESSED_MAX_EXTENT_MM = 8.0
# At least this share of it lies away from the bone's ends (beyond their blur): on the sweeps'
# phantoms the bone's ends joined to a rise kept at most 0.17 away, deposits at least 0.43.
AWAY_FROM_ENDS_SHARE = 0.4

_CUBE = np.ones((3, 3, 3), bool)


def bone_end_caps(outline: np.ndarray) -> np.ndarray:
    """Voxels outside ``outline`` (a bone's smooth outline, ``[z, y, x]``) that lie over it
    in the slice before or after: where the bone ends or widens along z.

    A slice cuts such a voxel through the bone's end: its intensity is the bone's partial
    volume across the slice, which rises above the in-plane blur profile like a deposit.
    A deposit on the bone's flank lies outside the outline in its neighbouring slices too.
    """
    return over_next_slice(outline) & ~outline


def over_next_slice(mask: np.ndarray) -> np.ndarray:
    """Voxels (``[z, y, x]``) that have ``mask`` right above or below them, in the slice
    before or after."""
    over = np.zeros(mask.shape, bool)
    over[1:] |= mask[:-1]
    over[:-1] |= mask[1:]
    return over


def near_caps(caps: np.ndarray) -> np.ndarray:
    """``caps`` grown by one voxel in-plane: the blur of the bone's end reaches that far
    beyond the outline of the next slice."""
    return grow(caps, corners=True, axes=(1, 2))


def local_rise(residual, dist: np.ndarray, bins_of, core: np.ndarray, piece: np.ndarray,
               box: tuple[slice, ...], spacing_zyx, ends: np.ndarray) -> float:
    """How far (HU) a candidate rises above its neighbours at the same distance from the
    bone's core: the largest over its voxels of ``residual`` less the median residual of the
    voxels in the same distance bin round it (``box`` grown by ``LOCAL_REACH_MM``, outside
    the core and the candidate). A bin without such voxels counts from zero (the profile).

    Parameters
    ----------
    residual : float array, or an object that gives one for a box (``residual[box]``)
        Smoothed HU above the bone's blur profile (``-inf`` or NaN in the core).
    dist : float array
        In-plane distance (mm) from the core.
    bins_of : callable
        The profile's distance bins of distances (``bins_of(dist[box])``).
    core : bool array
        The bone's core.
    piece : bool array on ``box``
        The candidate's voxels.
    ends : bool array
        Near the bone's ends (:func:`near_caps`): a candidate's voxels there do not count
        (the blur of the bone's end, beside a deposit or not).
    box : tuple of slices
        The candidate's box in the arrays.
    spacing_zyx : sequence of float
        Voxel spacing (mm).
    """
    reach = [int(np.ceil(LOCAL_REACH_MM / float(s))) for s in spacing_zyx]
    big = grow_box(box, reach, residual.shape)
    inner = tuple(slice(b.start - g.start, b.stop - g.start) for b, g in zip(box, big))
    own = np.zeros(tuple(s.stop - s.start for s in big), bool)
    own[inner] = piece
    res, bn = residual[big], bins_of(dist[big])
    # Beyond the candidate's own blur (one voxel in-plane): its neighbours, not its fringe.
    around = ~core[big] & ~grow(own, corners=True, axes=(1, 2)) & np.isfinite(res)
    best = -np.inf
    top = own & ~ends[big]
    for b in np.unique(bn[top]):
        same = around & (bn == b)
        base = float(np.median(res[same])) if same.any() else 0.0
        best = max(best, float(res[top & (bn == b)].max()) - base)
    return best


def pressed_candidates(cand: np.ndarray, outline: np.ndarray, core: np.ndarray, residual, dist: np.ndarray,
                       bins_of, h_hu: float, spacing_zyx, *, min_dist_mm: float,
                       max_volume_mm3: float) -> tuple[np.ndarray, int, np.ndarray]:
    """Candidates for deposits pressed against a bone: ``cand`` (voxels above the bone's blur
    profile) less the bone's ends (:func:`bone_end_caps` of ``outline``), labelled
    (26-connected); and per label whether it is one: it spans at most
    ``PRESSED_MAX_EXTENT_MM``, rises ``PRESSED_RISE_H * h_hu`` above the profile and above its
    neighbours (:func:`local_rise`), with at least ``AWAY_FROM_ENDS_SHARE`` of it beyond the
    blur of the bone's ends.

    Returns
    -------
    labels : int array
        The candidates, 1..n.
    n : int
    pressed : bool array, length n
        Which are deposits (before the shape rules of the caller): those also reaching
        ``min_dist_mm`` from the core (in-plane) and of ``max_volume_mm3`` at most.
    """
    caps = bone_end_caps(outline)
    labels, n = ndi.label(cand & ~caps, structure=_CUBE)
    pressed = np.zeros(n, bool)
    if n == 0:
        return labels, n, pressed
    rise = PRESSED_RISE_H * h_hu
    at = np.flatnonzero(labels)
    lab_at = labels.ravel()[at]
    strong = per_label_max(lab_at, residual[np.unravel_index(at, labels.shape)], n)[1:]
    # The caller's rules on size and distance from the core first: they are cheap.
    far = per_label_max(lab_at, dist.ravel()[at], n)[1:] >= min_dist_mm
    small = np.bincount(lab_at, minlength=n + 1)[1:] * float(np.prod(spacing_zyx)) <= max_volume_mm3
    ends = None
    objects = ndi.find_objects(labels)
    for k in np.flatnonzero((strong >= rise) & far & small):
        box = objects[k]
        if max((b.stop - b.start) * float(sp) for b, sp in zip(box, spacing_zyx)) > PRESSED_MAX_EXTENT_MM:
            continue
        ends = near_caps(caps) if ends is None else ends
        piece = labels[box] == k + 1
        if (piece & ~ends[box]).sum() < AWAY_FROM_ENDS_SHARE * piece.sum():
            continue
        pressed[k] = local_rise(residual, dist, bins_of, core, piece, box, spacing_zyx, ends) >= rise
    return labels, n, pressed
