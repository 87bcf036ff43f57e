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

from calcinosis.anatomy.morphology import fill_holes_in_plane, open_mm

# A deposit flush on bone may sit behind a valley this fraction of ``h`` deep, if it stands
# outside the bone's outline smoothed by an opening with this ball (mm).
WEAK_H_FRACTION = 0.4
# A deposit touches the bone over a small part of its surface; a knob of the bone itself
# (an epicondyle, a process) joins it broadly: faces to soft tissue / faces to the bone.
BUMP_MIN_TISSUE_RATIO = 1.6
OUTLINE_BALL_MM = 3.0

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
    """Basins of the smoothed intensity that are deposits: small, facing soft tissue, and
    either separated from the rest by a valley deeper than ``h_hu``, or by a shallower
    valley (``WEAK_H_FRACTION * h_hu``) while standing outside the bone's smooth outline."""
    vv = float(np.prod(spacing_zyx))
    img = np.where(solid, smooth_hu, smooth_hu.min()).astype(np.float32)
    h_weak = WEAK_H_FRACTION * h_hu
    peaks = h_maxima(img, h_weak) & dense
    markers, n = ndi.label(peaks, structure=np.ones((3, 3, 3), bool))
    if n <= 1:
        return []
    basins = watershed(-img, markers, mask=solid)
    sizes = np.bincount(basins.ravel(), minlength=n + 1) * vv
    facing_tissue, facing_other, saddle = _border_counts(basins, n, img)
    peak = ndi.maximum(img, basins, np.arange(n + 1))
    prominence = peak - saddle
    small = (sizes > 0) & (sizes <= max_volume) & (facing_tissue > BUMP_MIN_TISSUE_RATIO * facing_other)
    small[0] = False
    if not small.any():
        return []
    # Share of each basin outside the bone's outline smoothed by an opening.
    opened = open_mm(solid, spacing_zyx, OUTLINE_BALL_MM)
    in_outline = np.bincount(basins[opened].ravel(), minlength=n + 1)
    outside = 1.0 - in_outline / np.maximum(np.bincount(basins.ravel(), minlength=n + 1), 1)
    weak = small & (prominence < h_hu)
    accept = small & ((prominence >= h_hu) | (weak & (prominence >= h_weak) & (outside >= 0.5)))
    objects = ndi.find_objects(basins)
    taken = np.isin(basins, np.flatnonzero(accept))
    out = []
    for k in np.flatnonzero(accept):
        sub = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in objects[k - 1])
        basin = basins[sub] == k
        # The watershed line runs along the valley: the deposit's own blur on the bone side
        # of it, outside the bone's outline, still belongs to the deposit.
        fringe = ndi.binary_dilation(basin, structure=ndi.generate_binary_structure(3, 1))
        fringe &= solid[sub] & ~opened[sub] & ~taken[sub]
        out.append((sub, basin | fringe))
    return out


def _border_counts(basins: np.ndarray, n: int, img: np.ndarray):
    """Per basin: face-neighbours outside the structure (tissue), face-neighbours in another
    basin, and the saddle: the highest value along its border with another basin (the
    lower of the two voxels of each face pair)."""
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
