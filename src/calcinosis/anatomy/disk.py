"""In-plane erosion and dilation with a small disk, by shifted ANDs/ORs of row spans.

Same results as thresholding an in-plane distance transform
(``erode_mm(mask, spacing, r, in_plane=True)`` and ``dilate_mm(...)`` of
:mod:`calcinosis.anatomy.morphology`), several times faster for disks a few pixels
across, and without a float32 copy of the array.

The disk is the set of in-plane offsets whose distance, *as the ``edt`` package computes
it*, is at most the radius: it is read off ``edt`` run on a single background pixel, so a
pixel exactly on the circle (0.8 mm pixels, 4 mm radius: offsets (0, 5) and (3, 4)) falls
on the same side as in the distance-transform version. The disk is a union of centred
rectangles (one per distinct row half-width); a rectangle is a run along x then along y,
each by doubling (``log2`` shifted copies).

Arrays are boolean, ``[y, x]`` or ``[z, y, x]``; 3-D arrays are worked on in chunks of a
few slices so that each chunk stays in cache. Outside the image counts as inside the mask
for the erosion and outside it for the dilation (``black_border=False`` in ``edt``).
"""

from __future__ import annotations

from functools import lru_cache

import edt
import numpy as np

from calcinosis.threads import n_threads, over_slabs

# Past this radius (pixels) the distance transform is cheaper than the shifted copies.
MAX_RADIUS_PX = 12
# Pixels per chunk of slices (about the size of a core's L2 cache, as booleans).
CHUNK_PIXELS = 1 << 18


@lru_cache(maxsize=64)
def disk_rectangles(sy: float, sx: float, radius_mm: float,
                    inclusive: bool = True) -> tuple[tuple[int, int], ...] | None:
    """The in-plane disk as a union of centred rectangles ``(half_height, half_width)`` in
    pixels, or None when it is too large (over ``MAX_RADIUS_PX``) or not such a union.

    The disk holds the offsets at distance ``<= radius_mm`` (``< radius_mm`` when not
    ``inclusive``), distances as ``edt.edt`` gives them with ``anisotropy=(sy, sx)``.
    """
    ry, rx = int(radius_mm / sy) + 1, int(radius_mm / sx) + 1
    if max(ry, rx) > MAX_RADIUS_PX + 1:
        return None
    point = np.ones((2 * ry + 1, 2 * rx + 1), bool)
    point[ry, rx] = False
    dist = edt.edt(point, anisotropy=(sy, sx), black_border=False)
    # The same comparison (float32 array against the caller's number) as the callers of edt.
    disk = dist <= radius_mm if inclusive else dist < radius_mm
    if disk[2 * ry].any() or disk[:, 0].any():
        return None  # the probe image was too small (cannot happen for a disk)
    return centred_rectangles(disk)


def centred_rectangles(disk: np.ndarray) -> tuple[tuple[int, int], ...] | None:
    """A symmetric 2-D shape (odd sides, centred) as a union of centred rectangles
    ``(half_height, half_width)`` in pixels: each row a centred run no wider than the row
    nearer the centre. None when it is not such a union."""
    if not np.array_equal(disk, disk[::-1]) or not np.array_equal(disk, disk[:, ::-1]):
        return None
    ry, rx = disk.shape[0] // 2, disk.shape[1] // 2
    half_widths: list[int] = []
    for dy in range(ry + 1):
        row = np.flatnonzero(disk[ry + dy])
        if row.size == 0:
            break
        w = int(row[-1]) - rx
        if row.size != 2 * w + 1 or (half_widths and w > half_widths[-1]):
            return None
        half_widths.append(w)
    return tuple((max(dy for dy, v in enumerate(half_widths) if v >= w), w) for w in sorted(set(half_widths)))


def _run(m: np.ndarray, k: int, axis: int, erode: bool) -> np.ndarray:
    """AND (``erode``) or OR of ``m`` over ``[p - k, p + k]`` along ``axis`` (a new array);
    what lies past the ends is left out."""
    out = m.copy()
    if k == 0:
        return out
    op = np.logical_and if erode else np.logical_or
    idx = [slice(None)] * m.ndim

    def at(a, b):
        idx[axis] = slice(a, b)
        return tuple(idx)

    # Forward run: ahead[p] = op m[p .. p + k]; behind[p] = op m[p - k .. p]; by doubling.
    ahead = m.copy()
    cover = 1
    while cover < k + 1:
        step = min(cover, k + 1 - cover)
        op(ahead[at(None, -step)], ahead[at(step, None)], out=ahead[at(None, -step)])
        cover += step
    behind = np.empty_like(ahead)
    behind[at(k, None)] = ahead[at(None, -k)]
    # The first k positions: op m[0 .. p], a running prefix.
    behind[at(0, 1)] = m[at(0, 1)]
    for p in range(1, min(k, m.shape[axis])):
        op(behind[at(p - 1, p)], m[at(p, p + 1)], out=behind[at(p, p + 1)])
    op(ahead, behind, out=out)
    return out


def _disk_op(m: np.ndarray, rects, erode: bool) -> np.ndarray:
    """Erode or dilate ``m`` (2-D or a chunk of slices) with the union of ``rects``."""
    yaxis, xaxis = m.ndim - 2, m.ndim - 1
    out = None
    along_x = m
    done_w = 0
    for hy, w in rects:  # half-widths ascending: each x run grows the last one
        along_x = _run(along_x, w - done_w, xaxis, erode)
        done_w = w
        piece = _run(along_x, hy, yaxis, erode)
        if out is None:
            out = piece
        elif erode:
            np.logical_and(out, piece, out=out)
        else:
            np.logical_or(out, piece, out=out)
    return out


def _by_chunks(mask: np.ndarray, rects, erode: bool) -> np.ndarray:
    mask = np.ascontiguousarray(mask, dtype=bool)
    if mask.ndim == 2:
        return _disk_op(mask, rects, erode)
    out = np.empty_like(mask)
    per = max(1, CHUNK_PIXELS // max(1, mask.shape[1] * mask.shape[2]))

    def slab(z0: int, z1: int) -> None:
        for a in range(z0, z1, per):
            b = min(a + per, z1)
            out[a:b] = _disk_op(mask[a:b], rects, erode)

    over_slabs(slab, mask.shape[0], n_threads(), mask.size)
    return out


def erode_disk(mask: np.ndarray, spacing_yx, radius_mm: float, *, strict: bool = False) -> np.ndarray:
    """In-plane erosion: voxels of ``mask`` whose in-plane distance (mm) to the nearest voxel
    outside it is ``> radius_mm`` (``>= radius_mm`` when ``strict``).

    Equal to ``distance_inside_mm(mask, spacing, in_plane=True) > radius_mm`` (or ``>=``).
    ``spacing_yx`` is the in-plane pixel size (mm, rows then columns). Falls back to the
    distance transform for disks too large for shifted copies.
    """
    sy, sx = (float(s) for s in spacing_yx)
    rects = disk_rectangles(sy, sx, radius_mm, not strict)
    if rects is None:
        return _edt_threshold(mask, sy, sx, radius_mm, inside=True, strict=strict)
    return _by_chunks(mask, rects, erode=True)


def dilate_disk(mask: np.ndarray, spacing_yx, radius_mm: float) -> np.ndarray:
    """In-plane dilation: voxels whose in-plane distance (mm) to ``mask`` is ``<= radius_mm``.

    Equal to ``dilate_mm(mask, spacing, radius_mm, in_plane=True)``; ``spacing_yx`` as for
    :func:`erode_disk`.
    """
    sy, sx = (float(s) for s in spacing_yx)
    rects = disk_rectangles(sy, sx, radius_mm, True)
    if rects is None:
        return _edt_threshold(mask, sy, sx, radius_mm, inside=False, strict=False)
    return _by_chunks(mask, rects, erode=False)


def _edt_threshold(mask, sy, sx, radius_mm, *, inside: bool, strict: bool) -> np.ndarray:
    """The distance-transform version, slice by slice (large disks)."""
    mask = np.ascontiguousarray(mask, dtype=bool)
    stack = mask[None] if mask.ndim == 2 else mask
    out = np.empty(stack.shape, bool)
    for z in range(stack.shape[0]):
        if inside:
            d = edt.edt(stack[z].view(np.uint8), anisotropy=(sy, sx), black_border=False)  # uint8: faster
            out[z] = d >= radius_mm if strict else d > radius_mm
        elif not stack[z].any():
            out[z] = False
        else:
            out[z] = edt.edt((~stack[z]).view(np.uint8), anisotropy=(sy, sx), black_border=False) <= radius_mm
    return out[0] if mask.ndim == 2 else out


def rectangle_op(mask: np.ndarray, rects, *, erode: bool) -> np.ndarray:
    """In-plane erosion (``erode``: AND) or dilation (OR) of ``mask`` (``[y, x]`` or
    ``[z, y, x]``) with the union of centred rectangles ``rects`` (``(half_height,
    half_width)`` in pixels, half-widths ascending, as :func:`disk_rectangles` gives
    them), slice by slice; the edges as in :func:`erode_disk` and :func:`dilate_disk`."""
    return _by_chunks(mask, tuple(rects), erode)


def core_in_plane(solid: np.ndarray, spacing_zyx, depth_mm: float) -> np.ndarray:
    """Voxels of ``solid`` at least ``depth_mm`` in-plane from the nearest voxel outside it,
    the box's edge outside: ``distance_inside_mm(pad(solid), in_plane=True) >= depth_mm``
    (padded by one voxel in-plane), by :func:`erode_disk`
    (the same threshold of the same distances, without a distance map)."""
    padded = np.pad(np.asarray(solid, bool), ((0, 0), (1, 1), (1, 1)))
    sp = (float(spacing_zyx[1]), float(spacing_zyx[2]))
    return erode_disk(padded, sp, depth_mm, strict=True)[:, 1:-1, 1:-1]
