"""Tissue layers inside the body: the deep envelope under the subcutaneous fat."""

from __future__ import annotations

import cc3d
import numpy as np
from scipy import ndimage as ndi

from calcinosis.anatomy.morphology import fill_holes_in_plane, open_mm

FAT_MAX_HU = -30.0
# Fat septa and small deposits vanish under this opening; muscle bellies do not.
ENVELOPE_OPENING_MM = 3.0


def deep_envelope(
    hu: np.ndarray, body: np.ndarray, bone: np.ndarray, depth_mm: np.ndarray, spacing_zyx,
    *, skin_mm: float = 3.0,
) -> np.ndarray:
    """Everything under the deep fascia: muscle, bone, body cavities, intermuscular fat.

    Non-fat tissue deeper than the skin, opened in-plane to drop fat septa and small
    dense objects, kept where it forms large parts, with holes filled slice by slice.
    A lesion outside this envelope and deeper than the skin is subcutaneous.
    """
    smooth = ndi.uniform_filter(hu.astype(np.float32), size=(1, 3, 3))
    deep = body & (smooth > FAT_MAX_HU) & (depth_mm > skin_mm)
    deep = open_mm(deep, spacing_zyx, ENVELOPE_OPENING_MM, in_plane=True)
    labels, n = cc3d.connected_components(deep, connectivity=6, return_N=True)
    if n:
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        sizes[0] = 0
        keep = np.flatnonzero(sizes >= 0.05 * sizes.max())
        deep = np.isin(labels, keep)
    return fill_holes_in_plane(deep | bone) & body
