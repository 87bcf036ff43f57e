"""Bone: large dense structures, and the deposits that touch them split off.

A dense (>= threshold) connected structure larger than any deposit (by volume or
extent) is bone. Deposits lying on it are split off in two ways:

1. A deposit a little away from the bone joins it at the threshold through the
   partial-volume blur of the gap, but the gap stays a valley of the smoothed
   intensity. The structure is flooded (watershed) from its intensity maxima that
   stand out of the valleys around them by more than ``h``; a basin that is small
   and whose border mostly faces soft tissue is a deposit.
2. Not yet: a deposit lying flush on the bone has no valley. Shaving bumps off the
   bone's outline with an opening finds them, but also the caps of vertebral
   processes (tried, many false deposits on the trunk phantom); such deposits stay
   in the bone for now.

Everything else is bone; bone pieces with a marrow space are rejected as deposits
later (:func:`calcinosis.detect.candidates.is_hollow`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

from calcinosis.anatomy.morphology import fill_holes_in_plane

Piece = tuple[tuple[slice, ...], np.ndarray]


@dataclass(frozen=True, eq=False)
class BoneSplit:
    """Result of splitting one dense structure: its bone voxels and attached deposits.

    Masks are on the structure's bounding-box grid.
    """

    bone: np.ndarray  # bone solid (cortex, marrow filled)
    # Attached deposits: (slices into the box, voxel mask >= threshold on those slices).
    deposits: tuple[Piece, ...]


def split_bone(
    dense: np.ndarray,
    smooth_hu: np.ndarray,
    spacing_zyx,
    *,
    h_hu: float,
    max_deposit_volume_mm3: float,
) -> BoneSplit:
    """Split one connected dense structure into bone and attached deposits.

    Parameters
    ----------
    dense : bool array
        The structure's voxels at or above the threshold, on a bounding box with a margin.
    smooth_hu : float array
        Smoothed HU on the same box.
    h_hu : float
        How far (HU) a maximum must rise above the valley that separates it from a
        higher one to count as an object of its own.
    max_deposit_volume_mm3 : float
        Pieces larger than this are bone.
    """
    solid = fill_holes_in_plane(dense)
    deposits: list[Piece] = []
    bone = solid.copy()
    for sub, basin in _valley_split(solid, dense, smooth_hu, spacing_zyx, h_hu, max_deposit_volume_mm3):
        deposits.append((sub, basin & dense[sub]))
        bone[sub] &= ~basin
    return BoneSplit(bone, tuple(deposits))


def _valley_split(solid, dense, smooth_hu, spacing_zyx, h_hu, max_volume) -> list[Piece]:
    vv = float(np.prod(spacing_zyx))
    img = np.where(solid, smooth_hu, smooth_hu.min()).astype(np.float32)
    peaks = h_maxima(img, h_hu) & dense
    markers, n = ndi.label(peaks, structure=np.ones((3, 3, 3), bool))
    if n <= 1:
        return []
    basins = watershed(-img, markers, mask=solid)
    sizes = np.bincount(basins.ravel(), minlength=n + 1) * vv
    facing_tissue, facing_other = _border_counts(basins, n)
    objects = ndi.find_objects(basins)
    out = []
    for k in range(1, n + 1):
        if sizes[k] == 0 or sizes[k] > max_volume or facing_tissue[k] <= facing_other[k]:
            continue  # bone, or a piece inside the bone's outline rather than a bump on it
        sub = objects[k - 1]
        out.append((sub, basins[sub] == k))
    return out


def _border_counts(basins: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """For each basin, how many of its face-neighbours lie outside the structure (tissue)
    and how many in another basin of it."""
    tissue = np.zeros(n + 1, np.int64)
    other = np.zeros(n + 1, np.int64)
    for axis in range(basins.ndim):
        a = np.moveaxis(basins, axis, 0)[:-1].ravel()
        b = np.moveaxis(basins, axis, 0)[1:].ravel()
        diff = a != b
        a, b = a[diff], b[diff]
        for x, y in ((a, b), (b, a)):
            inside = x > 0
            tissue += np.bincount(x[inside & (y == 0)], minlength=n + 1)
            other += np.bincount(x[inside & (y > 0)], minlength=n + 1)
    return tissue, other
