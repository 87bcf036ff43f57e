"""Air inside the body that opens to the outside through a narrow mouth: nose, sinuses, mouth.

The body mask (:func:`calcinosis.anatomy.body.find_body`) fills the holes of each slice,
which takes in the lungs and bowel gas. The nasal cavity, the sinuses that drain into it,
the mouth and the ear canals are not holes on the slices that cut their opening (the
nostrils, the lips): their air is joined to the air round the patient and is left outside
the body. The bone and mucosa round them would then lie on the "skin" (depth about 0 mm)
and any dense piece there reads as cutaneous.

Such a cavity is wide inside and narrow at its mouth. Closing the body mask in the plane
with a disk of ``MOUTH_RADIUS_MM`` plugs the mouth; the air then enclosed in the slice is
a hole of the closed mask. That air, with the air of the plug joined to it, is taken
into the body. The closing also fills the notches of the outline (the crease between
touching thighs, under the chin): air filled by the closing that is not joined to an
enclosed hole stays outside, so the skin there keeps its depth. So does the air of a
cavity narrower than the disk throughout (an ear canal): the closing alone fills it, and
it cannot be told from a notch.
"""

from __future__ import annotations

import cc3d
import numpy as np

from calcinosis.anatomy.disk import dilate_disk, erode_disk
from calcinosis.anatomy.morphology import bbox_of, fill_holes_in_plane, has_hole_2d, runs_are_single
from calcinosis.threads import n_threads, over_slabs

# Half the width (mm) of the widest mouth of a cavity that is plugged: a nostril or a
# parted lip (under about 15 mm) is; the gap between two limbs held apart is not.
MOUTH_RADIUS_MM = 7.0
# Pixel size (mm) of the grid the closing runs on (finer scans are subsampled to it).
COARSE_PIXEL_MM = 2.0


def add_internal_air(mask: np.ndarray, spacing_zyx, *, mouth_radius_mm: float = MOUTH_RADIUS_MM,
                     coarse_pixel_mm: float = COARSE_PIXEL_MM, copy: bool = True) -> np.ndarray:
    """The body mask with the air of cavities that open through a narrow mouth added.

    Parameters
    ----------
    mask : bool array, ``[z, y, x]``
        The body (holes of each slice already filled). Not modified.
    spacing_zyx : sequence of float
        Voxel spacing (mm) in array order.
    mouth_radius_mm : float
        Radius (mm) of the in-plane disk that closes the mouth of a cavity.
    coarse_pixel_mm : float
        The closing runs on the in-plane grid subsampled to pixels of about this size (mm).
    copy : bool
        With False, ``mask`` itself is returned when no air is added (no copy of a mask
        the caller does not keep apart); ``mask`` is never modified either way.

    Returns
    -------
    bool array
        ``mask`` plus the enclosed air, on the same grid. Equal to ``mask`` when no cavity
        opens to the outside through a mouth narrower than twice ``mouth_radius_mm``.
    """
    mask = np.asarray(mask, dtype=bool)

    def unchanged() -> np.ndarray:
        return mask.copy() if copy else mask

    if not mask.any():
        return unchanged()
    box = bbox_of(mask)
    assert box is not None
    sub = mask[box]
    # The mouth is several mm wide: the closing runs on a coarser grid.
    stride = [1] + [max(1, int(coarse_pixel_mm // float(s))) for s in spacing_zyx[1:]]
    coarse_sp = [float(s) * k for s, k in zip(spacing_zyx, stride)]
    coarse = sub[:, ::stride[1], ::stride[2]]
    pad = [(0, 0)] + [(int(np.ceil(mouth_radius_mm / s)) + 1,) * 2 for s in coarse_sp[1:]]
    padded = np.pad(coarse, pad)
    plane = coarse_sp[1:]
    dilated = dilate_disk(padded, plane, mouth_radius_mm)
    # Air enclosed by the closing is (within a disk of) air enclosed by the dilation alone:
    # without a hole in any slice of the dilated mask there is no cavity, and the erosion
    # and the rest are not needed (the body of a trunk or limbs).
    if not _has_hole_in_plane(dilated):
        return unchanged()
    closed = erode_disk(dilated, plane, mouth_radius_mm) | padded
    del dilated
    filled = fill_holes_in_plane(closed)
    enclosed = filled & ~closed
    if not enclosed.any():
        return unchanged()
    # Air the closing or the filling took in, in pieces joined in 3-D (a cavity runs over
    # many slices; on some of them it is a hole, on others only plugged).
    gained = filled & ~padded
    labels, n = cc3d.connected_components(gained, connectivity=6, return_N=True)
    keep = np.zeros(n + 1, bool)
    keep[np.unique(labels[enclosed])] = True
    keep[0] = False
    cavity = keep[labels][:, pad[1][0]:pad[1][0] + coarse.shape[1], pad[2][0]:pad[2][0] + coarse.shape[2]]
    if not cavity.any():
        return unchanged()
    # Back on the full grid; the coarse cells along the cavity's walls leave slivers of air
    # between the cavity and the tissue, which are then holes of the slice.
    cavity = np.repeat(np.repeat(cavity, stride[1], axis=1), stride[2], axis=2)[:, :sub.shape[1], :sub.shape[2]]
    out = mask.copy()
    out[box] = fill_holes_in_plane(sub | cavity)
    return out


def _has_hole_in_plane(mask: np.ndarray) -> bool:
    """Whether any slice of ``mask`` has a hole: background (4-connected) that does not
    reach the slice's border.

    Why it suffices: a voxel enclosed by the closing (dilation then erosion with the disk)
    has, within the disk, a voxel outside the dilation; the straight digital path between
    them lies outside the closing, so that voxel is enclosed as well, by the dilation.
    """
    found = np.zeros(mask.shape[0], bool)

    def slab(z0: int, z1: int) -> None:
        for z in range(z0, z1):
            if found[z0:z1].any():
                return
            if runs_are_single(mask[z]):  # a few passes prove most slices hole-free
                continue
            found[z] = has_hole_2d(mask[z])

    over_slabs(slab, mask.shape[0], n_threads(), mask.size)
    return bool(found.any())
