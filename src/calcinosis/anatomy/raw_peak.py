"""A small dense deposit on the bone whose valley the smoothing filled: its peak in the raw HU.

The valley split (:mod:`calcinosis.anatomy.valley`) floods the smoothed intensity. A
deposit of 2-3 mm lying on the cortex on thick slices is a peak of a few voxels: the
smoothing (0.6 mm in-plane) lowers it and fills the narrow gap beside the bone, and in
the smoothed image it is a shoulder of the bone with no maximum of its own (a 2.9 mm 1210
HU deposit 0.3 mm from the femur on 3 mm slices: raw peak ~920 HU over a ~530 HU gap,
smoothed peak 749 over a 729 HU saddle). In the raw HU the gap is still a valley.

Maxima of the raw HU that rise ``h`` above every path to a higher one, with ``h`` several
times the raw noise (noise alone almost never makes such a peak, and not on the steep
surface of the cortex), that lie within 2 mm of soft tissue and in no piece split off
before, are looked at one by one, highest first. Soft tissue is what lies below the
threshold, the holes the bone's solid fills included: a deposit in the spinal canal at the
laminae (a 2.4 mm 863 HU deposit 1.2 mm from them, 0.8 mm slices) faces the canal. Going
down from the peak, the part above each level that holds the peak grows until it joins a
higher voxel (the bone) or spreads faster than a blob grows, or reaches the threshold; the
part just above that level is the deposit's core. A window round the core is flooded on the raw HU from the
core and from the bone (the joined part away from the core, the window's edge, pieces
taken before); the piece must be a deposit's size and face soft tissue more than bone
(:func:`calcinosis.anatomy.basins.faces_tissue`), as in the other steps.

Cost: an exact h-maxima of the raw HU on a spine's box (ITK's reconstruction) took 0.3 s of
CPU on the 400-slice trunk phantom. Instead, the local maxima near soft tissue are screened
on a small window each (:func:`_peak_candidates`: a spine's ~4500 noise tops on its
surface come down to a few), and the exact test runs on those: ~0.1 s.
"""

from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np
from scipy import ndimage as ndi

from calcinosis.anatomy.basins import piece_from_core
from calcinosis.anatomy.disk import erode_disk
from calcinosis.anatomy.morphology import grow_box, inner_faces
from calcinosis.anatomy.shoulder import part_above

# A raw peak stands this many times the raw noise above its valley.
RAW_PEAK_SIGMA = 6.0
# ... and lies within this distance (mm, in-plane; one slice across) of soft tissue.
RAW_PEAK_NEAR_TISSUE_MM = 2.0
# The screen of candidate peaks reads a window this wide (mm) each side in-plane, and one
# slice each side: a small deposit's part above ``peak - h`` lies within it, a bone's
# surface (a plateau of cortex with noise tops) spreads to its edge.
WINDOW_MM = 2.5
# Levels are stepped down by this share of ``h``.
RAW_PEAK_STEP_H = 0.25
# The bone's marker keeps this many voxels (face steps) away from the core.
CORE_CLEARANCE_VOXELS = 1
# How far (voxels) beyond the core's box the piece may reach.
PIECE_REACH_VOXELS = 3


Piece = tuple[tuple[slice, ...], np.ndarray]


@dataclass(frozen=True, eq=False)
class RawPeakStart:
    """What :func:`raw_peak_pieces` reads before it knows the pieces taken: the structure's
    box grown by one voxel (``crop``), ``dense`` and the raw HU (clipped, ``-1024`` outside
    ``dense``) on it, and the screened candidate peaks (:func:`_peak_candidates`) as if no
    piece were taken. ``crop`` is None when ``dense`` is empty."""

    crop: tuple[slice, ...] | None
    dense_c: np.ndarray | None = None
    img: np.ndarray | None = None
    candidates: tuple[tuple[int, int, int], ...] = ()


def raw_peak_start(dense: np.ndarray, raw_hu: np.ndarray, spacing_zyx, h_hu: float,
                   floor_hu: float) -> RawPeakStart:
    """:class:`RawPeakStart` of a structure (same arguments as :func:`raw_peak_pieces`):
    made in a second thread while the pieces are still being split off (a spine's).

    The candidates screened with no piece taken are a superset of those screened with
    the pieces taken: the screen judges each voxel on the raw HU alone, and the voxels it
    keeps are ordered by value, then raster order, in both. :func:`raw_peak_pieces` skips
    the candidates that lie in a taken piece, so the pieces found are the same."""
    box = ndi.find_objects(dense.view(np.uint8))
    if not box:
        return RawPeakStart(None)
    crop = grow_box(box[0], (1,) * dense.ndim, dense.shape)
    dense_c = dense[crop]
    img = np.where(dense_c, np.clip(raw_hu[crop], -1024, 4000), -1024).astype(np.int16)
    return RawPeakStart(crop, dense_c, img, tuple(_peak_candidates(img, dense_c, dense_c, spacing_zyx, h_hu,
                                                                   floor_hu)))


def raw_peak_pieces(dense: np.ndarray, raw_hu: np.ndarray, taken: np.ndarray,
                    spacing_zyx, h_hu: float, floor_hu: float, max_voxels: float, *,
                    start: RawPeakStart | None = None) -> list[Piece]:
    """Deposits found at raw peaks of a bone structure (see the module), as (box, piece).

    ``dense``: the structure's voxels at the threshold (soft tissue is what lies outside
    them, its holes included: a deposit in the spinal canal, which the bone's solid fills,
    faces the canal);
    ``raw_hu``: raw HU on the same box; ``taken``: voxels of pieces split off before;
    ``h_hu``: the raw peak's least rise; ``floor_hu``: the threshold; ``start``, when
    given, :func:`raw_peak_start` of the same arguments (made beforehand).
    """
    if start is None:
        box = ndi.find_objects(dense.view(np.uint8))
        if not box:
            return []
        crop = grow_box(box[0], (1,) * dense.ndim, dense.shape)
        dense_c = dense[crop]
        img = np.where(dense_c, np.clip(raw_hu[crop], -1024, 4000), -1024).astype(np.int16)
    else:
        if start.crop is None:
            return []
        crop, dense_c, img = start.crop, start.dense_c, start.img
    free = dense_c & ~taken[crop]
    max_span_mm = 2.0 * (3.0 * max_voxels * float(np.prod(spacing_zyx)) / (4.0 * np.pi)) ** (1.0 / 3.0)
    out: list[Piece] = []
    tops = (_peak_candidates(img, dense_c, free, spacing_zyx, h_hu, floor_hu) if start is None
            else start.candidates)
    for top in tops:
        if not free[top]:
            continue  # in a piece found at a higher peak (or before: ``start``'s candidates)
        piece = _piece_at(top, img, free, dense_c, h_hu, floor_hu, max_voxels, max_span_mm, spacing_zyx)
        if piece is None:
            continue
        sub_c, piece = piece
        piece &= free[sub_c]
        if not piece.any():
            continue
        free[sub_c] &= ~piece
        sub = tuple(slice(s.start + c.start, s.stop + c.start) for s, c in zip(sub_c, crop))
        taken[sub] |= piece
        out.append((sub, piece))
    return out


def _peak_candidates(img: np.ndarray, dense: np.ndarray, free: np.ndarray, spacing_zyx, h_hu: float,
                     floor_hu: float) -> list[tuple[int, int, int]]:
    """Voxels (highest first) of ``free`` near soft tissue that may be raw peaks rising
    ``h_hu`` above their valley: at least ``floor_hu + h_hu``, as high as their 26
    neighbours, and with no higher voxel in the part of a small window round them above
    ``peak - h_hu`` that holds them (a path to a higher voxel that stays above
    ``peak - h_hu`` would deny the rise), a part that does not reach the window's sides
    in-plane. The exact test is :func:`_piece_at`'s; this screen keeps a spine's few
    thousand noise tops on its surface from reaching it."""
    near = dense & ~erode_disk(dense, spacing_zyx[1:], RAW_PEAK_NEAR_TISSUE_MM, strict=False)
    near[1:] |= dense[1:] & ~dense[:-1]
    near[:-1] |= dense[:-1] & ~dense[1:]
    cand = near & free & (img >= floor_hu + h_hu)
    if not cand.any():
        return []
    r = max(2, int(np.ceil(WINDOW_MM / min(float(spacing_zyx[1]), float(spacing_zyx[2])))))
    pad = ((1, 1), (r, r), (r, r))
    padded = np.pad(img, pad, constant_values=-1024)
    flat = padded.ravel()
    sy, sx = padded.shape[1] * padded.shape[2], padded.shape[2]
    zz, yy, xx = np.nonzero(cand)
    idx = (zz + 1) * sy + (yy + r) * sx + (xx + r)
    value = flat[idx]
    keep = np.ones(len(idx), bool)
    for dz in (-1, 0, 1):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dz or dy or dx:
                    keep[keep] = flat[idx[keep] + dz * sy + dy * sx + dx] <= value[keep]
    idx, value, zz, yy, xx = idx[keep], value[keep], zz[keep], yy[keep], xx[keep]
    if not len(idx):
        return []
    dz, dy, dx = np.mgrid[-1:2, -r:r + 1, -r:r + 1]
    offsets = (dz * sy + dy * sx + dx).ravel()
    window = flat[idx[:, None] + offsets[None, :]].reshape((len(idx),) + dz.shape)
    above = window > (value.astype(np.float32) - np.float32(h_hu))[:, None, None, None]
    seed = np.zeros(above.shape, bool)
    seed[:, 1, r, r] = True
    part = ndi.binary_propagation(seed, structure=np.ones((1, 3, 3, 3), bool), mask=above)
    higher = (part & (window > value[:, None, None, None])).any(axis=(1, 2, 3))
    rim = np.ones(dz.shape, bool)
    rim[:, 1:-1, 1:-1] = False
    higher |= (part & rim).any(axis=(1, 2, 3))  # spreads beyond a small deposit's core
    order = np.argsort(-value[~higher], kind="stable")
    return [(int(z), int(y), int(x)) for z, y, x in zip(zz[~higher][order], yy[~higher][order], xx[~higher][order])]


def _piece_at(top, img, free, dense, h_hu, floor_hu, max_voxels, max_span_mm, spacing_zyx):
    """The deposit whose raw peak is ``top`` (on the structure's box), flooded on a window
    round its core; or None."""
    peak = int(img[top])
    step = max(RAW_PEAK_STEP_H * h_hu, 1.0)
    # The first level holds the voxels above ``peak - h``: the peak rises ``h`` above its
    # valley when their part that holds it has no higher voxel (read on a box a deposit's
    # span each side: reaching its edge, the part is no deposit's).
    level = float(np.floor(peak - h_hu)) + 1.0
    reach = [int(np.ceil(max_span_mm / float(d))) + 1 for d in spacing_zyx]
    first = grow_box(tuple(slice(i, i + 1) for i in top), reach, img.shape)
    core = None
    box = None
    while level > floor_hu:
        big = first if box is None else grow_box(box, (2,) * img.ndim, img.shape)
        n_vox, part_box, part, edge = part_above(free, img, level, top, big)
        if (img[big][part] > peak).any():
            break  # joined a higher peak: the bone
        span = max((p.stop - p.start) * float(d) for p, d in zip(part_box, spacing_zyx))
        if edge:
            break  # spread beyond a blob's growth: it joins the rest here
        if n_vox > max_voxels or span > max_span_mm:
            return None
        core = (part, big, part_box)
        box = part_box
        level -= step
    else:
        # No join above the floor: the peak is the structure's highest, joined to the rest
        # only through voxels just above the threshold (the gap's blur, noise).
        level = floor_hu
    if core is None:
        return None
    part_c, big_c, core_box = core
    win = grow_box(core_box, (PIECE_REACH_VOXELS,) * img.ndim, img.shape)
    core_w = np.zeros(tuple(w.stop - w.start for w in win), bool)
    inner = tuple(slice(c.start - b.start, c.stop - b.start) for c, b in zip(core_box, big_c))
    core_w[tuple(slice(c.start - w.start, c.stop - w.start) for c, w in zip(core_box, win))] = part_c[inner]
    free_w, img_w = free[win], img[win]
    lab = cc3d.connected_components(free_w & (img_w >= level), connectivity=26)
    joined = lab == lab[tuple(i - w.start for i, w in zip(top, win))]
    bone_w = joined | inner_faces(win, img.shape) | ~free_w
    piece_w = piece_from_core(core_w, bone_w, img_w, dense[win], dense[win], CORE_CLEARANCE_VOXELS, max_voxels)
    return None if piece_w is None else (win, piece_w)
