"""The body: its mask without the table and objects on the skin, skin depth, noise, midline."""

from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np
from scipy import ndimage as ndi

from calcinosis.anatomy.morphology import (
    bbox_of,
    distance_inside_mm,
    fill_holes_in_plane,
    margin_voxels,
    open_mm,
)

AIR_HU = -500.0
# A disk of this radius no longer fits in a CT table top, cable or sheet, but fits in any limb.
TABLE_OPENING_MM = 4.0
# A body part is at least this thick (half-thickness, mm); the table top and cables are thinner.
MIN_HALF_THICKNESS_MM = 12.0


@dataclass(frozen=True, eq=False)
class Body:
    """The patient's body on a cropped grid.

    ``crop`` are the slices of the full array that hold the body (plus a margin);
    ``mask`` is on that cropped grid. The table, clothing lying apart from the skin,
    and thin or small objects on the skin (beads, ECG buttons) are outside the mask.
    """

    crop: tuple[slice, slice, slice]
    mask: np.ndarray
    n_parts: int


def find_body(hu: np.ndarray, spacing_zyx) -> Body:
    """Segment the body in a CT volume (HU, ``[z, y, x]``).

    Air is below -500 HU. The table and thin objects are removed by an in-plane opening
    (disk of 4 mm); of what is left, connected parts at least 24 mm thick are body parts
    (two thighs are two parts). Holes inside a slice (lungs, bowel gas) are filled.
    """
    not_air = hu > AIR_HU
    box = bbox_of(not_air, margin_voxels(spacing_zyx, 5.0))
    if box is None:
        return Body((slice(0, 0),) * 3, np.zeros((0, 0, 0), bool), 0)
    sub = not_air[box]
    opened = open_mm(sub, spacing_zyx, TABLE_OPENING_MM, in_plane=True)
    labels, n = cc3d.connected_components(opened, connectivity=6, return_N=True)
    if n == 0:
        return Body(box, np.zeros_like(sub), 0)
    depth = distance_inside_mm(opened, spacing_zyx, in_plane=True)
    index = np.arange(1, n + 1)
    max_depth = ndi.maximum(depth, labels, index)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    thick = max_depth >= MIN_HALF_THICKNESS_MM
    if not thick.any():
        # A small part (a hand, a child's limb): take the biggest piece rather than nothing.
        thick = sizes == sizes.max()
    keep = thick & (sizes >= 0.02 * sizes[thick].max())
    mask = np.isin(labels, index[keep])
    # The opening's discrete disk can shave a voxel off the skin: give back the tissue
    # voxels next to the kept parts.
    ring = ndi.binary_dilation(mask, structure=np.array([[[0, 1, 0], [1, 1, 1], [0, 1, 0]]], bool))
    mask = fill_holes_in_plane(mask | (ring & sub))
    final = bbox_of(mask, margin_voxels(spacing_zyx, 20.0))
    inner = tuple(slice(f.start, f.stop) for f in final)  # type: ignore[union-attr]
    crop = tuple(slice(b.start + i.start, b.start + i.stop) for b, i in zip(box, inner))
    return Body(crop, np.ascontiguousarray(mask[inner]), int(keep.sum()))  # type: ignore[arg-type]


def estimate_noise_hu(hu: np.ndarray, tissue: np.ndarray, *, max_slices: int = 24) -> float:
    """Standard deviation (HU) of image noise in homogeneous soft tissue.

    Robust (MAD) spread of the difference between each voxel and the mean of its
    in-plane 5 x 5 neighbourhood, over voxels whose neighbourhood is all ``tissue``,
    on up to ``max_slices`` evenly spaced slices; scaled for the 1/25 self-weight.
    """
    nz = hu.shape[0]
    zs = np.unique(np.linspace(0, nz - 1, min(nz, max_slices)).round().astype(int))
    resid = []
    for z in zs:
        sl = hu[z].astype(np.float32)
        ok = ndi.binary_erosion(tissue[z], structure=np.ones((5, 5), bool))
        if ok.sum() < 50:
            continue
        local = ndi.uniform_filter(sl, size=(5, 5))
        resid.append((sl - local)[ok])
    if not resid:
        return float("nan")
    r = np.concatenate(resid)
    mad = float(np.median(np.abs(r - np.median(r))))
    # sl - mean5x5 has variance sigma^2 * (1 - 1/25) for white noise.
    return 1.4826 * mad / np.sqrt(1.0 - 1.0 / 25.0)
