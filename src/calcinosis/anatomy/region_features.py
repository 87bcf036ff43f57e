"""What the body regions are read from: the image and body mask turned to a canonical
orientation (superior, posterior, patient-left) and averaged over blocks of about
``BLOCK_MM``, in chunks of slabs so that no whole-volume temporary is made.

:func:`region_features` holds the part of :func:`calcinosis.anatomy.regions.body_regions`'
work that needs no bone mask, so that the analysis can run it while detection (which
gives the bone) is still running: the block grid's shares and maxima, and each block
slice's body parts with what they show without the bone
(:func:`calcinosis.anatomy.region_rules.slice_parts`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calcinosis.anatomy.region_rules import slice_parts
from calcinosis.errors import InputError

BLOCK_MM = 3.0  # working resolution of the cues
AIR_HU = -500.0
DENSE_HU = 300.0  # skull shell
# Voxels per chunk of slabs the block features are computed from (a few MB of temporaries).
_CHUNK_VOXELS = 1 << 22


@dataclass(frozen=True, eq=False)
class RegionFeatures:
    """What :func:`~calcinosis.anatomy.regions.body_regions` reads from the image and the
    body mask alone (not from the bone): the canonical orientation and the block grid, and
    per block the shares of body and of air inside the body and the highest HU. Made by :func:`region_features`, which
    the analysis runs while it waits for detection (which gives the bone); and each block
    slice's body parts with what they show without the bone."""

    shape_zyx: tuple[int, int, int]
    spacing_zyx: tuple[float, float, float]
    direction: np.ndarray
    perm: tuple[int, int, int]
    flip: tuple[bool, bool, bool]
    block: tuple[int, int, int]
    body_share: np.ndarray  # float32, canonical block grid
    air_share: np.ndarray
    hu_max: np.ndarray
    parts: tuple  # per block slice: region_rules.slice_parts (labels, the parts' bone-free features)

    def fits(self, shape_zyx, spacing_zyx, direction) -> bool:
        """Whether these are the features of an image of this grid."""
        return (tuple(int(n) for n in shape_zyx) == self.shape_zyx
                and tuple(float(v) for v in spacing_zyx) == self.spacing_zyx
                and np.array_equal(np.asarray(direction, float), self.direction))


def region_features(hu: np.ndarray, body: np.ndarray, spacing_zyx, direction: np.ndarray) -> RegionFeatures:
    """The part of :func:`~calcinosis.anatomy.regions.body_regions`' work that needs no bone mask (parameters as there)."""
    hu = np.asarray(hu)
    if hu.ndim != 3 or np.shape(body) != hu.shape:
        raise InputError(f"hu and body must be 3-D arrays of one shape, got {hu.shape}, {np.shape(body)}")
    sp = _checked_spacing(spacing_zyx)
    direction = np.array(direction, float)
    perm, flip = _orientation(direction)
    chu, cbody = (_to_canonical(np.asarray(a), perm, flip) for a in (hu, body))
    block = _block(sp, perm)
    body_f, _, air_f, hu_max = _block_features(chu, cbody, None, block)
    body_b = body_f >= 0.5
    air_b = (air_f >= 0.5) & body_b
    dense_b = hu_max >= DENSE_HU
    bsp = block_size_mm(sp, perm, block)
    parts = tuple(slice_parts(body_b[z], air_b[z], dense_b[z], bsp) for z in range(body_b.shape[0]))
    return RegionFeatures(tuple(int(n) for n in hu.shape), tuple(float(v) for v in sp),  # type: ignore[arg-type]
                          direction, perm, flip, block, body_f, air_f, hu_max, parts)


def block_size_mm(sp: np.ndarray, perm, block) -> np.ndarray:
    """A block's size (mm) along the canonical axes."""
    sp_c = tuple(float(sp[perm[c]]) for c in range(3))
    return np.array(block, float) * sp_c


def _checked_spacing(spacing_zyx) -> np.ndarray:
    sp = np.asarray(spacing_zyx, float)
    if sp.shape != (3,) or not np.all(np.isfinite(sp)) or sp.min() <= 0:
        raise InputError(f"spacing_zyx must be three positive numbers (mm), got {spacing_zyx}")
    return sp


def _block(sp: np.ndarray, perm) -> tuple[int, int, int]:
    """Voxels per block along the canonical axes (about ``BLOCK_MM``)."""
    return tuple(max(1, int(round(BLOCK_MM / float(sp[perm[c]])))) for c in range(3))  # type: ignore[return-value]


def _orientation(direction: np.ndarray) -> tuple[tuple[int, int, int], tuple[bool, bool, bool]]:
    """Which array axis runs superior, posterior, left (canonical axes 0, 1, 2), and whether reversed."""
    if direction.shape != (3, 3) or not np.all(np.isfinite(direction)):
        raise InputError(f"direction must be a finite 3 x 3 matrix, got shape {direction.shape}")
    perm, flip = [], []
    for lps in (2, 1, 0):  # S, P, L components
        weights = [abs(direction[lps, 2 - a]) for a in range(3)]
        a = int(np.argmax(weights))
        perm.append(a)
        flip.append(bool(direction[lps, 2 - a] < 0))
    if sorted(perm) != [0, 1, 2]:
        raise InputError("the volume's direction matrix is too oblique to tell its superior, posterior and left "
                         "axes apart; resample it to an axis-aligned grid")
    return (perm[0], perm[1], perm[2]), (flip[0], flip[1], flip[2])


def _to_canonical(a: np.ndarray, perm, flip) -> np.ndarray:
    out = np.transpose(a, perm)
    for c in range(3):
        if flip[c]:
            out = np.flip(out, axis=c)
    return out


def _block_features(hu: np.ndarray | None, body: np.ndarray | None, bone: np.ndarray | None, block):
    """Per block of ``block`` voxels: the shares of body, bone and air inside the body, and
    the highest HU (float32 arrays on the block grid). Without ``bone``, its share is None;
    without ``hu`` and ``body``, the others are.

    A ragged last block is taken as it is: a share still divides by the full block in-plane
    (as if padded with False), and along z by the slices its slab has. Worked through in
    chunks of slabs of a few million voxels, so that no whole-volume temporary is made."""
    bz, by, bx = block
    nz, ny, nx = (hu if hu is not None else bone).shape  # type: ignore[union-attr]
    oz, oy, ox = -(-nz // bz), -(-ny // by), -(-nx // bx)
    shares: list = [np.empty((oz, oy, ox), np.float32) if a is not None else None for a in (body, bone, body)]
    hu_max = np.empty((oz, oy, ox), np.float32) if hu is not None else None
    per_chunk = max(1, _CHUNK_VOXELS // (bz * ny * nx))
    # A block's count fits a byte for blocks up to 255 voxels (3 x 4 x 4 at 1 x 0.8 x 0.8 mm):
    # half the memory traffic of 16-bit counts, the same quotients.
    count_dtype = np.uint8 if bz * by * bx <= 255 else np.uint16
    for k0 in range(0, oz, per_chunk):
        k1 = min(oz, k0 + per_chunk)
        zs = slice(k0 * bz, min(k1 * bz, nz))
        # Voxels per block: the slab's slices (fewer in a short last slab) times a full block in-plane.
        size = np.minimum(bz, nz - np.arange(k0, k1) * bz)[:, None, None] * float(by * bx)
        if bone is not None:
            shares[1][k0:k1] = _block_reduce(bone[zs].view(np.uint8), block, np.add, count_dtype) / size
        if hu is None or body is None:
            continue
        h, b = hu[zs], body[zs]
        for out, part in ((shares[0], b), (shares[2], b & (h < int(AIR_HU)))):
            out[k0:k1] = _block_reduce(part.view(np.uint8), block, np.add, count_dtype) / size
        hu_max[k0:k1] = _block_reduce(h, block, np.maximum, h.dtype)
    return (*shares, hu_max)


def _block_reduce(a: np.ndarray, block, op, dtype) -> np.ndarray:
    """Reduce ``a`` with ``op`` (``np.add``, ``np.maximum``) over blocks of ``block`` elements,
    a ragged last block as it is: axis by axis, combining the strided views of the block's
    members (the fast way for numpy; ``reduceat`` over small blocks is not)."""
    for axis, k in enumerate(block):
        first = [slice(None)] * a.ndim
        first[axis] = slice(0, None, k)
        out = a[tuple(first)].astype(dtype)
        for j in range(1, k):
            take = [slice(None)] * a.ndim
            take[axis] = slice(j, None, k)
            part = a[tuple(take)]
            put = [slice(None)] * a.ndim
            put[axis] = slice(0, part.shape[axis])
            view = out[tuple(put)]
            op(view, part, out=view)
        a = out
    return a

