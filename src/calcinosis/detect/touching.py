"""Deposits that touch each other at the threshold: one component, several lesions.

Two deposits a millimetre apart join at the threshold through the blur of the gap, as a
deposit joins a bone (:mod:`calcinosis.anatomy.valley`), and were one lesion: its
centroid between the two, its volume and mass theirs together. The gap stays a valley of
the smoothed intensity. The component is flooded (watershed) from its maxima that stand
``h`` out of their valleys; basins joined above half their height are lobes of one
deposit and are merged back (the rule :func:`calcinosis.anatomy.bone.merge_touching`
applies to pieces split off a bone); what is left apart are separate deposits.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from calcinosis.anatomy.bone import merge_touching
from calcinosis.anatomy.valley import h_maxima, label_26

# A component of fewer voxels is not looked at: two deposits that each stand h out of
# their valley hold more.
MIN_VOXELS = 8


def split_touching(piece: np.ndarray, smooth_hu: np.ndarray, h_hu: float, floor_hu: float) -> list[np.ndarray]:
    """The deposits in one connected component ``piece`` (a mask on its box) with the
    smoothed HU ``smooth_hu`` on the same box: masks on that box, in the order of their
    first voxel (one, ``piece`` itself, when nothing parts it). ``floor_hu`` is the
    detection threshold, ``h_hu`` the valley depth that parts two objects."""
    if int(piece.sum()) < MIN_VOXELS:
        return [piece]
    smooth = np.asarray(smooth_hu, np.float32)
    low = float(smooth[piece].min())
    img = np.where(piece, smooth, low)
    # Most components hold one maximum (a plateau of equal voxels counts once): nothing to part.
    if label_26((img == ndi.maximum_filter(img, size=3)) & piece)[1] < 2:
        return [piece]
    markers, n = label_26(h_maxima(img, h_hu) & piece)
    if n < 2:
        return [piece]
    basins = watershed(-img, markers, mask=piece)
    whole = tuple(slice(0, s) for s in piece.shape)
    parts = [(whole, basins == k) for k in range(1, n + 1)]
    merged = merge_touching(parts, max_voxels=float(piece.size), image=smooth, floor=floor_hu)
    if len(merged) < 2:
        return [piece]
    masks = [mask for _, mask in merged]
    first = [int(np.flatnonzero(mask.ravel())[0]) for mask in masks]
    return [masks[i] for i in np.argsort(first)]

