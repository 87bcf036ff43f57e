"""The body: its mask without the table and objects on the skin, skin depth, noise, midline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cc3d
import numpy as np
from scipy import ndimage as ndi

from calcinosis.anatomy.morphology import (
    bbox_of,
    dilate_mm,
    distance_inside_mm,
    fill_holes_in_plane,
    label_counts,
    label_maximum,
    margin_voxels,
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
    sub = np.ascontiguousarray(not_air[box])
    del not_air
    # The opening's erosion, and the thickness test, both read the in-plane depth of ``sub``.
    # A part's deepest point is deeper than the opening radius, so it survives the opening,
    # and (for depths beyond twice the radius) its depth in the opened part equals its
    # depth in ``sub``: the thickness test reads the depth before the opening, which spares
    # a third distance transform.
    depth = distance_inside_mm(sub, spacing_zyx, in_plane=True)
    opened = dilate_mm(depth > TABLE_OPENING_MM, spacing_zyx, TABLE_OPENING_MM, in_plane=True)
    labels, n = cc3d.connected_components(opened, connectivity=6, return_N=True)
    del opened
    if n == 0:
        return Body(box, np.zeros_like(sub), 0)
    index = np.arange(1, n + 1)
    max_depth = label_maximum(depth, labels, n)[1:]
    del depth
    sizes = label_counts(labels, n)[1:]
    thick = max_depth >= MIN_HALF_THICKNESS_MM
    if not thick.any():
        # A small part (a hand, a child's limb): take the biggest piece rather than nothing.
        thick = sizes == sizes.max()
    keep = thick & (sizes >= 0.02 * sizes[thick].max())
    lut = np.zeros(n + 1, bool)
    lut[index[keep]] = True
    mask = lut[labels]
    del labels
    # The opening's discrete disk can shave a voxel off the skin: give back the tissue
    # voxels next to the kept parts (in-plane 4-neighbours).
    ring = mask.copy()
    ring[:, 1:, :] |= mask[:, :-1, :]
    ring[:, :-1, :] |= mask[:, 1:, :]
    ring[:, :, 1:] |= mask[:, :, :-1]
    ring[:, :, :-1] |= mask[:, :, 1:]
    mask = fill_holes_in_plane(ring & sub)
    del ring
    final = bbox_of(mask, margin_voxels(spacing_zyx, 20.0))
    inner = tuple(slice(f.start, f.stop) for f in final)  # type: ignore[union-attr]
    crop = tuple(slice(b.start + i.start, b.start + i.stop) for b, i in zip(box, inner))
    return Body(crop, np.ascontiguousarray(mask[inner]), int(keep.sum()))  # type: ignore[arg-type]


def estimate_noise_hu(hu: np.ndarray, tissue: np.ndarray, *, max_slices: int = 24,
                      smooth: Callable[[np.ndarray], np.ndarray] | None = None,
                      smooth_reach_slices: int = 8) -> float:
    """Standard deviation (HU) of image noise in homogeneous soft tissue.

    Robust (MAD) spread of the difference between each voxel and the mean of its
    in-plane 5 x 5 neighbourhood, over voxels whose neighbourhood is all ``tissue``,
    on up to ``max_slices`` evenly spaced slices; scaled for the 1/25 self-weight.

    ``smooth``, when given, maps a slab of ``hu`` (``[z, y, x]``) to its smoothed image:
    the noise is then that of the smoothed image. Only the sampled slices are smoothed,
    each with ``smooth_reach_slices`` slices of context on either side (the smoothing
    kernel must reach no farther along z), so the result equals that of smoothing the
    whole volume first, at a fraction of the time and memory.
    """
    nz = hu.shape[0]
    zs = np.unique(np.linspace(0, nz - 1, min(nz, max_slices)).round().astype(int))
    resid = []
    for z in zs:
        ok = ndi.binary_erosion(tissue[z], structure=np.ones((5, 5), bool))
        if ok.sum() < 50:
            continue
        if smooth is None:
            sl = hu[z].astype(np.float32)
        else:
            a, b = max(z - smooth_reach_slices, 0), min(z + smooth_reach_slices + 1, nz)
            sl = np.asarray(smooth(hu[a:b])[z - a], dtype=np.float32)
        local = ndi.uniform_filter(sl, size=(5, 5))
        resid.append((sl - local)[ok])
    if not resid:
        return float("nan")
    r = np.concatenate(resid)
    mad = float(np.median(np.abs(r - np.median(r))))
    # sl - mean5x5 has variance sigma^2 * (1 - 1/25) for white noise.
    return 1.4826 * mad / np.sqrt(1.0 - 1.0 / 25.0)
