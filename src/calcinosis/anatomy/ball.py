"""Opening with a small ball, by shifted ANDs/ORs of in-plane disks.

Same result as :func:`calcinosis.anatomy.morphology.open_mm` (thresholds of ``edt``
distance transforms), two to three times faster for a ball a few voxels across, and
without float32 distance maps of the array.

The ball is the set of offsets whose distance, *as the ``edt`` package computes it* with
the array's anisotropy, is at most the radius: it is read off ``edt`` run on a single
background voxel, so an offset exactly on the sphere falls on the same side as in the
distance-transform version. Each of its planes (a fixed z offset) is an in-plane disk, a
union of centred rectangles (:func:`calcinosis.anatomy.disk.rectangle_op`); the erosion
is the AND over the planes of the disk erosions shifted by their z offset, the dilation
the OR. As in ``edt`` with ``black_border=False``, outside the array counts as inside the
mask for the erosion and outside it for the dilation.
"""

from __future__ import annotations

from functools import lru_cache

import edt
import numpy as np

from calcinosis.anatomy.disk import MAX_RADIUS_PX, centred_rectangles, rectangle_op
from calcinosis.anatomy.morphology import open_mm

Rectangles = tuple[tuple[int, int], ...]


@lru_cache(maxsize=32)
def ball_planes(sz: float, sy: float, sx: float, radius_mm: float) -> tuple[Rectangles, ...] | None:
    """The ball's planes z offset 0, 1, 2, ... (mirrored below), each as a union of centred
    rectangles ``(half_height, half_width)`` in pixels; None when the ball is too large for
    shifted copies (over ``MAX_RADIUS_PX``) or a plane is not such a union.

    Distances as ``edt.edt`` gives them with ``anisotropy=(sz, sy, sx)``, compared ``<=``
    with the radius as the callers of ``edt`` do (float32 against the caller's number).
    """
    rz, ry, rx = int(radius_mm / sz) + 1, int(radius_mm / sy) + 1, int(radius_mm / sx) + 1
    if max(ry, rx) > MAX_RADIUS_PX + 1 or rz > MAX_RADIUS_PX + 1:
        return None
    point = np.ones((2 * rz + 1, 2 * ry + 1, 2 * rx + 1), bool)
    point[rz, ry, rx] = False
    ball = edt.edt(point, anisotropy=(sz, sy, sx), black_border=False) <= radius_mm
    if ball[0].any() or ball[:, 0].any() or ball[:, :, 0].any():
        return None  # the probe was too small (cannot happen for a ball)
    planes = []
    for dz in range(rz + 1):
        disk = ball[rz + dz]
        if not disk.any():
            break
        rects = centred_rectangles(disk) if np.array_equal(disk, ball[rz - dz]) else None
        if rects is None:
            return None
        planes.append(rects)
    return tuple(planes)


def _ball_op(mask: np.ndarray, planes: tuple[Rectangles, ...], erode: bool) -> np.ndarray:
    """Erode (AND) or dilate (OR) ``mask`` ``[z, y, x]`` with the ball of ``planes``."""
    op = np.logical_and if erode else np.logical_or
    out = rectangle_op(mask, planes[0], erode=erode)
    for dz, rects in enumerate(planes[1:], start=1):
        if dz >= mask.shape[0]:
            break  # the plane lies wholly outside the array: no constraint, no reach
        flat = rectangle_op(mask, rects, erode=erode)
        op(out[dz:], flat[:-dz], out=out[dz:])
        op(out[:-dz], flat[dz:], out=out[:-dz])
    return out


def open_ball(mask: np.ndarray, spacing_zyx, radius_mm: float) -> np.ndarray:
    """Morphological opening of ``mask`` ``[z, y, x]`` with a ball of ``radius_mm`` (mm).

    Equal to ``open_mm(mask, spacing_zyx, radius_mm)``; falls back to it for balls too
    large for shifted copies.
    """
    mask = np.ascontiguousarray(mask, dtype=bool)
    planes = ball_planes(*(float(s) for s in spacing_zyx), float(radius_mm))
    if planes is None or mask.ndim != 3:
        return open_mm(mask, spacing_zyx, radius_mm)
    eroded = _ball_op(mask, planes, erode=True)
    if not eroded.any():
        return eroded
    return _ball_op(eroded, planes, erode=False)
