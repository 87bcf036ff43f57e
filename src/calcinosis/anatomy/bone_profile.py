"""Parts of the bone's blur-profile split (:func:`calcinosis.anatomy.bone._profile_split`),
computed where they are read.

The split reads the residual above the bone's profile and the in-plane maxima of the
smoothed intensity at the candidate voxels near the bone, and on the small boxes of the
pieces it keeps; a spine's box holds millions of voxels, the candidates some ten thousand.
The values are the same as those of the whole-box arrays, element by element (the same
float32 arithmetic, the same edge rule as ``ndimage.maximum_filter``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from calcinosis.anatomy.ball import open_ball
from calcinosis.anatomy.morphology import distance_inside_mm


class BlurResidual:
    """``smooth_hu - profile[bins]`` with ``bins = min(dist / bin_mm + 1e-4, last)`` (int),
    computed for the voxels indexed (``residual[sub]``), never for the whole box.

    ``profile`` is float32, indexed by bin, ``inf`` where the bone's blur is not modelled.
    """

    def __init__(self, smooth_hu: np.ndarray, dist: np.ndarray, profile: np.ndarray, bin_mm: float,
                 last: int):
        self.smooth_hu, self.dist, self.profile = smooth_hu, dist, profile
        self.bin_mm, self.last = bin_mm, last
        self.shape = smooth_hu.shape

    def bins(self, dist: np.ndarray) -> np.ndarray:
        """Profile bins of distances (mm, float32): a hair above the quotient, see the caller."""
        return np.minimum(dist / self.bin_mm + 1e-4, self.last).astype(np.int32)

    def __getitem__(self, key) -> np.ndarray:
        return self.smooth_hu[key] - self.profile[self.bins(self.dist[key])]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """The whole box (for a reader that needs it all: numpy functions take this)."""
        whole = self[...]
        return whole if dtype is None else whole.astype(dtype)


class InPlanePeak:
    """``smooth_hu >= ndimage.maximum_filter(smooth_hu, size=(1, 3, 3))`` (a voxel at least
    as high as its in-plane neighbours), computed for the voxels indexed: a box is read
    with one more row and column each side (the filter reflects at the array's edge, where
    the neighbour beyond is the voxel itself, so the edge needs no margin)."""

    def __init__(self, smooth_hu: np.ndarray):
        self.smooth_hu = smooth_hu
        self.shape = smooth_hu.shape

    def __getitem__(self, key) -> np.ndarray:
        if not (isinstance(key, tuple) and len(key) == 3 and all(isinstance(s, slice) for s in key)):
            hu = self.smooth_hu
            return (hu >= ndi.maximum_filter(hu, size=(1, 3, 3)))[key]
        inner = [s.indices(n) for s, n in zip(key, self.shape)]
        if any(step != 1 for _, _, step in inner):
            hu = self.smooth_hu
            return (hu >= ndi.maximum_filter(hu, size=(1, 3, 3)))[key]
        grown = [slice(inner[0][0], max(inner[0][1], inner[0][0]))]
        cut = [slice(None)]
        for (a, b, _), n in zip(inner[1:], self.shape[1:]):
            b = max(a, b)
            lo, hi = max(a - 1, 0), min(b + 1, n)
            grown.append(slice(lo, hi))
            cut.append(slice(a - lo, a - lo + (b - a)))
        part = self.smooth_hu[tuple(grown)]
        if part.size == 0:
            return np.zeros(part.shape, bool)[tuple(cut)]
        return (part >= ndi.maximum_filter(part, size=(1, 3, 3)))[tuple(cut)]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """The whole box (for a reader that needs it all: numpy functions take this)."""
        whole = self[...]
        return whole if dtype is None else whole.astype(dtype)

    def at(self, flat: np.ndarray) -> np.ndarray:
        """The same test at the voxels of flat (C-order) indices ``flat``."""
        hu = self.smooth_hu
        nz, ny, nx = hu.shape
        z, y, x = np.unravel_index(flat, hu.shape)
        centre = hu[z, y, x]
        ok = np.ones(flat.shape, bool)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dy == 0 and dx == 0:
                    continue
                yy, xx = y + dy, x + dx
                inside = (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
                ok[inside] &= centre[inside] >= hu[z[inside], yy[inside], xx[inside]]
        return ok


def per_label_max(labels_at: np.ndarray, values_at: np.ndarray, n: int) -> np.ndarray:
    """Per-label maximum of ``values_at`` over voxels labelled ``labels_at`` (1..n): an
    array of length ``n + 1``, ``-inf`` for label 0 and labels without a voxel (as
    :func:`calcinosis.anatomy.morphology.label_maximum`)."""
    out = np.full(n + 1, -np.inf)
    np.maximum.at(out, labels_at, values_at)
    out[0] = -np.inf
    return out


@dataclass(frozen=True, eq=False)
class BlurProfile:
    """The bone's blur profile on a structure's box, before the deposits split off at valleys
    are known: its core (the outline opened with a ball, and all at cortical density), the
    in-plane distance (mm) from the core, the voxels near it (flat indices, within the
    profile's reach) with their residual above the profile, and the residual anywhere."""

    core: np.ndarray
    dist: np.ndarray
    near_at: np.ndarray
    near_residual: np.ndarray
    residual: BlurResidual
    outline: np.ndarray  # the outline opened with the ball (the core less what is dense)


def blur_profile(solid: np.ndarray, smooth_hu: np.ndarray, spacing_zyx, *, ball_mm: float, core_hu: float,
                 reach_mm: float, bin_mm: float) -> BlurProfile | None:
    """:class:`BlurProfile` of ``solid`` (None when its core is empty or all of it): the
    profile is the median smoothed HU per distance bin of ``bin_mm`` over the voxels outside
    the core within ``reach_mm`` of it (in-plane: across thick slices the bone's end is a
    partial-volume cap, not a profile; a slice without core is out of reach)."""
    outline = open_ball(solid, spacing_zyx, ball_mm)
    core = outline | (solid & (smooth_hu >= core_hu))
    if not core.any() or core.all():
        return None
    dist = distance_inside_mm(~core, spacing_zyx, in_plane=True)  # edt, slice by slice
    near_at = np.flatnonzero(~core & (dist <= reach_mm))
    # A hair above the quotient (BlurResidual.bins): distances of whole pixel steps that land
    # on a bin edge stay in the upper bin whichever way float32 rounds them. (A slice without
    # core is at an infinite distance: clipped before the cast.)
    last = int(reach_mm / bin_mm) + 1
    profile = np.full(last + 1, np.inf, np.float32)
    residual = BlurResidual(smooth_hu, dist, profile, bin_mm, last)
    near_hu, near_bin = smooth_hu.ravel()[near_at], residual.bins(dist.ravel()[near_at])
    for b in np.unique(near_bin):
        profile[b] = np.median(near_hu[near_bin == b])
    return BlurProfile(core, dist, near_at, near_hu - profile[near_bin], residual, outline)
