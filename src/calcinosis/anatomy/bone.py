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
    deposits: tuple[np.ndarray, ...]  # voxel masks (>= threshold) of attached deposits


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
    deposits = []
    bone = solid.copy()
    for k in range(1, n + 1):
        if sizes[k] == 0 or sizes[k] > max_deposit_volume_mm3:
            continue
        basin = basins == k
        border = ndi.binary_dilation(basin, structure=np.ones((3, 3, 3), bool)) & ~basin
        facing_tissue = (border & ~solid).sum()
        if facing_tissue <= 0.5 * border.sum():
            continue  # a piece inside the bone's outline, not a bump on it
        dep = basin & dense
        if dep.any():
            deposits.append(dep)
            bone &= ~basin
    return BoneSplit(bone, tuple(deposits))
