"""Deposits joined at the threshold to a small piece of bone.

A rib or a process cut across by the slices is a small dense object with a marrow
space: hollow (:func:`calcinosis.detect.candidates.is_hollow`), so bone. A deposit
a millimetre from it joins it at the threshold through the partial-volume blur of
the gap (on thick slices, through the next slice) and would be rejected with it.

Such a deposit is a basin of the smoothed intensity of its own, split from the bone
piece at a valley (:func:`calcinosis.anatomy.bone.valley_split`). The cortex of the
bone piece splits into basins too (its noise and partial volume make shallow
valleys along it); those are arcs of one shell at the bone's density. A deposit is
taken only when its piece is solid (not hollow), what is left of the object is
still a hollow bone piece, and the deposit's peak rises above everything left by
more than ``h_hu``: it is denser than the bone it touches, so not a part of it.
"""

from __future__ import annotations

import numpy as np

from calcinosis.anatomy.bone import valley_split
from calcinosis.anatomy.morphology import fill_holes_in_plane


def deposits_on_bone_piece(
    hu: np.ndarray,
    smooth_hu: np.ndarray,
    mask: np.ndarray,
    spacing_zyx,
    *,
    threshold_hu: float,
    h_hu: float,
    max_deposit_volume_mm3: float,
    is_hollow,
) -> list[np.ndarray]:
    """Masks (on the object's box) of deposits joined to a hollow bone piece.

    Parameters
    ----------
    hu, smooth_hu : arrays
        Raw and smoothed HU on a box round the object.
    mask : bool array
        The object's voxels (>= ``threshold_hu``), known to be hollow.
    h_hu : float
        Depth (HU) of a valley that separates two objects (from the noise model), and
        how far a deposit's peak must rise above the bone piece.
    max_deposit_volume_mm3 : float
        Larger basins are bone.
    is_hollow : callable
        ``is_hollow(hu, mask, spacing_zyx, threshold_hu) -> bool``.

    Returns
    -------
    list of bool arrays
        One mask per deposit, on the box; empty when there is none.
    """
    solid = fill_holes_in_plane(mask)
    out: list[np.ndarray] = []
    for sub, basin in valley_split(solid, mask, smooth_hu, spacing_zyx, h_hu, max_deposit_volume_mm3):
        piece = basin & mask[sub]
        if not piece.any() or is_hollow(hu[sub], piece, spacing_zyx, threshold_hu):
            continue
        full = np.zeros(mask.shape, bool)
        full[sub] = piece
        rest = mask & ~full
        if not rest.any() or float(smooth_hu[full].max()) < float(smooth_hu[rest].max()) + h_hu:
            continue  # an arc of the cortex, at the bone's own density
        if is_hollow(hu, rest, spacing_zyx, threshold_hu):
            out.append(full)
    return out
