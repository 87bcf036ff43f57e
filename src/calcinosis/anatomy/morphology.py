"""Small morphology helpers in physical units, built on ``edt`` and ``scipy.ndimage``.

All functions take ``spacing_zyx`` in mm (array order) and work on boolean arrays
indexed ``[z, y, x]``. "In-plane" operations treat each axial slice (array axis 0)
on its own, which is what CT anatomy needs: slices may be thick and the table and
the skin are best seen slice by slice.
"""

from __future__ import annotations

import edt
import numpy as np
from scipy import ndimage as ndi

# A distance weight along z that no in-plane distance can reach: makes a 3-D EDT 2-D.
_FAR = 1.0e6


def distance_inside_mm(mask: np.ndarray, spacing_zyx, *, in_plane: bool = False) -> np.ndarray:
    """Euclidean distance (mm, float32) from each voxel of ``mask`` to the nearest voxel outside it.

    Voxels outside ``mask`` get 0. The image border is not treated as outside.
    """
    sz, sy, sx = (float(s) for s in spacing_zyx)
    anis = (_FAR if in_plane else sz, sy, sx)
    return edt.edt(np.ascontiguousarray(mask, dtype=bool), anisotropy=anis, black_border=False,
                   parallel=0).astype(np.float32, copy=False)


def distance_outside_mm(mask: np.ndarray, spacing_zyx, *, in_plane: bool = False) -> np.ndarray:
    """Distance (mm, float32) from each voxel outside ``mask`` to the mask; 0 inside it.

    Where the mask is empty the distance is ``inf``.
    """
    if not mask.any():
        return np.full(mask.shape, np.inf, dtype=np.float32)
    return distance_inside_mm(~mask, spacing_zyx, in_plane=in_plane)


def erode_mm(mask, spacing_zyx, radius_mm, *, in_plane=False):
    return distance_inside_mm(mask, spacing_zyx, in_plane=in_plane) > radius_mm


def dilate_mm(mask, spacing_zyx, radius_mm, *, in_plane=False):
    return distance_outside_mm(mask, spacing_zyx, in_plane=in_plane) <= radius_mm


def open_mm(mask, spacing_zyx, radius_mm, *, in_plane=False):
    """Morphological opening with a ball (disk when ``in_plane``) of ``radius_mm``."""
    return dilate_mm(erode_mm(mask, spacing_zyx, radius_mm, in_plane=in_plane), spacing_zyx,
                     radius_mm, in_plane=in_plane)


def close_mm(mask, spacing_zyx, radius_mm, *, in_plane=False):
    return erode_mm(dilate_mm(mask, spacing_zyx, radius_mm, in_plane=in_plane), spacing_zyx,
                    radius_mm, in_plane=in_plane)


def fill_holes_in_plane(mask: np.ndarray) -> np.ndarray:
    """Fill holes slice by slice (lungs, bowel gas, marrow are holes of the body in a slice)."""
    out = np.empty_like(mask, dtype=bool)
    for z in range(mask.shape[0]):
        out[z] = ndi.binary_fill_holes(mask[z])
    return out


def bbox_of(mask: np.ndarray, margin: tuple[int, int, int] = (0, 0, 0)) -> tuple[slice, ...] | None:
    """Bounding box of ``mask`` as slices, grown by ``margin`` voxels and clipped to the array."""
    if not mask.any():
        return None
    out = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        lo = max(int(hit[0]) - margin[axis], 0)
        hi = min(int(hit[-1]) + 1 + margin[axis], mask.shape[axis])
        out.append(slice(lo, hi))
    return tuple(out)


def margin_voxels(spacing_zyx, margin_mm: float) -> tuple[int, int, int]:
    return tuple(int(np.ceil(margin_mm / float(s))) for s in spacing_zyx)  # type: ignore[return-value]
