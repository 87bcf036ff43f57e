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
enclosed hole stays outside, so the skin there keeps its depth.
"""

from __future__ import annotations

import cc3d
import numpy as np

from calcinosis.anatomy.morphology import bbox_of, dilate_mm, erode_mm, fill_holes_in_plane

# Half the width (mm) of the widest mouth of a cavity that is plugged: a nostril or a
# parted lip (under about 15 mm) is; the gap between two limbs held apart is not.
MOUTH_RADIUS_MM = 7.0


def add_internal_air(mask: np.ndarray, spacing_zyx, *, mouth_radius_mm: float = MOUTH_RADIUS_MM) -> np.ndarray:
    """The body mask with the air of cavities that open through a narrow mouth added.

    Parameters
    ----------
    mask : bool array, ``[z, y, x]``
        The body (holes of each slice already filled). Not modified.
    spacing_zyx : sequence of float
        Voxel spacing (mm) in array order.
    mouth_radius_mm : float
        Radius (mm) of the in-plane disk that closes the mouth of a cavity.

    Returns
    -------
    bool array
        ``mask`` plus the enclosed air, on the same grid. Equal to ``mask`` when no cavity
        opens to the outside through a mouth narrower than twice ``mouth_radius_mm``.
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return mask.copy()
    # Work on the body's box with room for the closing's dilation.
    pad_vox = [0] + [int(np.ceil(mouth_radius_mm / float(s))) + 1 for s in spacing_zyx[1:]]
    box = bbox_of(mask)
    assert box is not None
    padded = np.pad(mask[box], [(p, p) for p in pad_vox])
    closed = erode_mm(dilate_mm(padded, spacing_zyx, mouth_radius_mm, in_plane=True), spacing_zyx,
                      mouth_radius_mm, in_plane=True) | padded
    filled = fill_holes_in_plane(closed)
    enclosed = filled & ~closed
    if not enclosed.any():
        return mask.copy()
    # Air the closing or the filling took in, in pieces joined in 3-D (a cavity runs over
    # many slices; on some of them it is a hole, on others only plugged).
    gained = filled & ~padded
    labels, n = cc3d.connected_components(gained, connectivity=6, return_N=True)
    keep = np.zeros(n + 1, bool)
    keep[np.unique(labels[enclosed])] = True
    keep[0] = False
    grown = padded | keep[labels]
    inner = tuple(slice(p, p + (b.stop - b.start)) for p, b in zip(pad_vox, box))
    out = mask.copy()
    out[box] = grown[inner]
    return out
