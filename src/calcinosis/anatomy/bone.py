"""Bone: large dense structures, and the deposits that touch them split off.

A dense (>= threshold) connected structure larger than any deposit (by volume or
extent) is bone. A deposit lying within a few mm of bone joins it at the threshold
through the partial-volume blur of the gap, but the gap stays a valley of the
smoothed intensity. The structure is flooded (watershed) from its intensity maxima
that stand out of the valleys around them by more than ``h``; a basin that is
small, and whose border mostly faces soft tissue rather than the rest of the
structure, is a deposit. Everything else is bone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

from calcinosis.anatomy.morphology import fill_holes_in_plane


@dataclass(frozen=True, eq=False)
class BoneSplit:
    """Result of splitting one dense structure: its bone voxels and attached deposits.

    Masks are on the structure's bounding-box grid.
    """

    bone: np.ndarray  # bone solid (cortex, marrow filled)
    # Attached deposits: (slices into the box, voxel mask >= threshold on those slices).
    deposits: tuple[tuple[tuple[slice, ...], np.ndarray], ...]


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
        higher one to count as an object of its own; a few noise SDs, and at least
        the contrast of a real gap.
    max_deposit_volume_mm3 : float
        Basins larger than this are bone.
    """
    vv = float(np.prod(spacing_zyx))
    solid = fill_holes_in_plane(dense)
    img = np.where(solid, smooth_hu, smooth_hu.min()).astype(np.float32)
    peaks = h_maxima(img, h_hu) & dense
    markers, n = ndi.label(peaks, structure=np.ones((3, 3, 3), bool))
    if n <= 1:
        return BoneSplit(solid, ())
    basins = watershed(-img, markers, mask=solid)
    sizes = np.bincount(basins.ravel(), minlength=n + 1) * vv
    facing_tissue, facing_solid = _border_counts(basins, n)
    deposits = []
    bone = solid.copy()
    objects = ndi.find_objects(basins)
    for k in range(1, n + 1):
        if sizes[k] == 0 or sizes[k] > max_deposit_volume_mm3:
            continue
        if facing_tissue[k] <= facing_solid[k]:
            continue  # a piece inside the bone's outline, not a bump on it
        sub = objects[k - 1]
        basin = basins[sub] == k
        dep = basin & dense[sub]
        if dep.any():
            deposits.append((sub, dep))
            bone[sub] &= ~basin
    return BoneSplit(bone, tuple(deposits))


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
