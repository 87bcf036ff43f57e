"""Deposits joined at the threshold to an object lying on the skin.

A bead of a necklace, an ECG button or a snap fastener lying on the skin is excluded as an
external object (:func:`calcinosis.detect.candidates.detect_lesions`). A calcified nodule in
the skin right under it joins it at the threshold through the object's blur (a 2.2 mm 1114
HU deposit 3 mm from a chain of 3000 HU beads) and went out with it; so does one in the
skin where the body lies on the table. Such a deposit is a basin of the smoothed intensity
of its own, behind the valley between it and the object
(:func:`calcinosis.anatomy.valley.valley_split`, as for a deposit beside a bone): a basin
inside the body (``BODY_SHARE`` of it at least: pressed on the table it may take in a voxel
or two of it), whose peak stays below the level of metal, is a deposit (its part in the body).
"""

from __future__ import annotations

import numpy as np

from calcinosis.anatomy.valley import valley_split
from calcinosis.detect.hollow import fill_holes_in_plane_box

# Metal from this share of the metal level on: an object partly outside the body (on the
# skin) whose peak reaches it is metal, the slices' partial volume lowering a small object's
# peak (a 3.2 mm bead of 3000 HU on 3 mm slices peaks at 2329 HU); a piece split off such an
# object with a voxel at it is the object's (its core or its blur). The densest deposits stay
# below it.
PARTIAL_METAL_SHARE = 0.8


# A basin of the object is a deposit only when at least this share of it lies in the body.
BODY_SHARE = 0.9


def deposits_beside_object(hu: np.ndarray, smooth_hu: np.ndarray, mask: np.ndarray, body: np.ndarray,
                           spacing_zyx, *, threshold_hu: float, h_hu: float, metal_hu: float,
                           max_deposit_volume_mm3: float) -> list[np.ndarray]:
    """Masks (on the object's box) of deposits joined to an external object.

    ``hu``, ``smooth_hu``, ``body``: raw HU, smoothed HU and the body mask on a box round the
    object; ``mask``: the object's voxels at the threshold (with what joins it there).
    """
    out: list[np.ndarray] = []
    solid = fill_holes_in_plane_box(mask)
    for sub, basin in valley_split(solid, mask, smooth_hu, spacing_zyx, h_hu, max_deposit_volume_mm3,
                                   threshold_hu=threshold_hu):
        piece = basin & mask[sub]
        in_body = body[sub][piece]
        if not piece.any() or in_body.mean() < BODY_SHARE:
            continue  # on the skin or outside: the object's own
        # A deposit pressed on the object (a table the body lies on) may take in a voxel or
        # two of it below their saddle: the deposit is its part in the body.
        piece &= body[sub]
        if float(hu[sub][piece].max()) >= PARTIAL_METAL_SHARE * metal_hu:
            continue
        full = np.zeros(mask.shape, bool)
        full[sub] = piece
        out.append(full)
    return out
