"""The body: its mask without the table, clothing and objects on the skin.

The image noise is measured in :mod:`calcinosis.anatomy.noise`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cc3d
import numpy as np
from scipy import ndimage as ndi

from calcinosis.anatomy.bitrows import disk_op_packed, grow_packed, pack_rows, popcount, unpack_rows
from calcinosis.anatomy.disk import dilate_disk, disk_rectangles, erode_disk
from calcinosis.anatomy.table import TableCut, apply_coarse, cut_slice, find_table, joined_slices
from calcinosis.anatomy.morphology import (
    box_2d,
    fill_holes_2d,
    grow_one,
    label_counts,
    label_maximum,
    margin_voxels,
    runs_are_single,
)
from calcinosis.sparse_zeros import sparse_zeros
from calcinosis.threads import n_threads, over_slabs

AIR_HU = -500.0
# A disk of this radius no longer fits in a CT table top, cable or sheet, but fits in any limb.
TABLE_OPENING_MM = 4.0
# A body part is at least this thick (half-thickness, mm); the table top and cables are thinner.
MIN_HALF_THICKNESS_MM = 12.0
# When no part is that thick, a small body part (a finger is 15-20 mm across, a child's
# little finger 10 mm) is at least this thick (half-thickness, mm); a CT table top is not.
SMALL_PART_HALF_THICKNESS_MM = 5.0


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
    # No part is a limb's thickness: the parts are pieces of one small body part scanned
    # alone (the fingers of a hand, each a part).
    small_part: bool = False


def find_body(hu: np.ndarray, spacing_zyx) -> Body:
    """Segment the body in a CT volume (HU, ``[z, y, x]``).

    Air is below -500 HU. The table and thin objects are removed by an in-plane opening
    (disk of 4 mm); of what is left, connected parts at least 24 mm thick are body parts
    (two thighs are two parts). Holes inside a slice (lungs, bowel gas) are filled.

    Which parts are body is decided in 3-D on an in-plane grid of about 2.4 mm (the
    opening and the thickness test need no finer detail there); the skin is then drawn at
    full resolution, slice by slice (:func:`_full_resolution_mask`), exactly where anything
    lies on it.
    """
    sz, sy, sx = (float(s) for s in spacing_zyx)
    f = max(1, int(COARSE_MM / max(sy, sx) + 1e-6))
    # The box round everything not air, from the coarse samples (a coarse pixel of margin).
    cbox = _sampled_box(hu, f)
    if cbox is None:
        return Body((slice(0, 0),) * 3, np.zeros((0, 0, 0), bool), 0)
    mz, my, mx = margin_voxels(spacing_zyx, 5.0)
    box = (slice(max(cbox[0].start - mz, 0), min(cbox[0].stop + mz, hu.shape[0])),
           slice(max(cbox[1].start * f - my, 0), min(cbox[1].stop * f + my, hu.shape[1])),
           slice(max(cbox[2].start * f - mx, 0), min(cbox[2].stop * f + mx, hu.shape[2])))
    sub_hu = hu[box]
    coarse = _coarse_tissue(sub_hu, f)
    sp_c = (sy * f, sx * f)
    # A table top the body lies on with no air between is cut off (anatomy/table.py).
    table = find_table(coarse, sp_c)
    joined = None
    if table is not None and table.spans:
        joined = joined_slices(coarse, table)
        apply_coarse(coarse, table)
    # The opening (disk of 4 mm) by shifted copies: the same as thresholding the in-plane
    # depth, without its distance transforms. A part's deepest point is deeper than the
    # opening radius, so it survives the opening, and (for depths beyond twice the radius)
    # its depth in the opened part equals its depth before: the thickness test reads the
    # depth before the opening (the voxels at least 12 mm deep, an erosion of its own).
    opened = dilate_disk(erode_disk(coarse, sp_c, TABLE_OPENING_MM), sp_c, TABLE_OPENING_MM)
    labels, n = cc3d.connected_components(opened, connectivity=6, return_N=True)
    del opened
    if n == 0:
        return Body(box, np.zeros(sub_hu.shape, bool), 0)
    index = np.arange(1, n + 1)
    deep = erode_disk(coarse, sp_c, MIN_HALF_THICKNESS_MM, strict=True)
    thick, sizes = _thick_and_sizes(labels, n, deep)
    # A thick part with no bone deep in it is a positioning pad (gel, foam and gel) or a bag,
    # not the patient: fingers laid on a 20 mm gel pad were dropped as objects beside it (the
    # pad and the fingers touching it are thicker than 24 mm) and no deposit was found. Deep:
    # a table top under the pad, joined to it, is dense but lies at its surface.
    if thick.any():
        thick &= _holds_bone(labels, n, sub_hu, f, deep)
    del deep
    small_part = not thick.any()
    if small_part:
        # No part is 24 mm thick: a small body part alone in the scan (the fingers, a child's
        # hand). Its pieces are those at least SMALL_PART_HALF_THICKNESS_MM thick, compact
        # across (:func:`_compact`) and mostly soft tissue (:func:`_soft_tissue`): each finger
        # of a scan of the fingers is a piece of its own. The biggest piece alone was kept
        # before: the table top under the fingers, the fingers' bones reported as objects
        # outside the body and no deposit found. (A curved table top breaks into finger-sized
        # pieces on the coarse grid: it is told by its density.) None such: the biggest
        # compact piece, or the biggest, rather than nothing.
        body_like = _compact(labels, n, sp_c) & _soft_tissue(labels, n, sub_hu, f)
        deep = erode_disk(coarse, sp_c, SMALL_PART_HALF_THICKNESS_MM, strict=True)
        thick, _ = _thick_and_sizes(labels, n, deep)
        thick &= body_like & _holds_bone(labels, n, sub_hu, f, deep)
        del deep
        if not thick.any():
            thick = sizes == (sizes * body_like).max() if body_like.any() else sizes == sizes.max()
    del coarse
    keep = thick & (sizes >= 0.02 * sizes[thick].max())
    lut = np.zeros(n + 1, bool)
    lut[index[keep]] = True
    inner, mask = _full_resolution_mask(sub_hu, labels, lut, f, spacing_zyx, margin_voxels(spacing_zyx, 20.0),
                                        table, joined)
    del labels
    if inner is None:
        return Body(box, mask, 0)
    crop = tuple(slice(b.start + i.start, b.start + i.stop) for b, i in zip(box, inner))
    return Body(crop, mask, int(keep.sum()), small_part)  # type: ignore[arg-type]


# In-plane grid (mm) on which body parts are told from the table and objects.
COARSE_MM = 2.4
# Up to this many coarse parts, each is counted by a comparison with its label (a few
# passes over the small coarse grid beat a labelled statistics pass).
_FEW_PARTS = 8


def _thick_and_sizes(labels: np.ndarray, n: int, deep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per part 1..n of ``labels``: whether it holds a ``deep`` voxel, and its voxel count."""
    if n > _FEW_PARTS:
        return (label_maximum(deep.view(np.uint8), labels, n)[1:] >= 1,
                label_counts(labels, n)[1:])
    thick = np.zeros(n, bool)
    sizes = np.zeros(n, np.int64)
    part = np.empty(labels.shape, bool)
    for k in range(1, n + 1):
        np.equal(labels, k, out=part)
        sizes[k - 1] = np.count_nonzero(part)
        np.logical_and(part, deep, out=part)
        thick[k - 1] = part.any()
    return thick, sizes



# A body piece is compact across: the square of its in-plane extent is at most this many
# times its largest cross-section (a finger 19 mm wide: 1.5 times; a 10 mm table top 400 mm
# wide: 40 times; a child's palm 60 x 18 mm: 4 times).
COMPACT_MAX_EXTENT2_PER_AREA = 8.0


def _compact(labels: np.ndarray, n: int, spacing_yx) -> np.ndarray:
    """Per part 1..n of ``labels`` (coarse in-plane grid): whether it is compact across
    (``COMPACT_MAX_EXTENT2_PER_AREA``): its in-plane extent (the longer side of its box, mm)
    squared against its largest slice's area (mm2). A table top, a sheet or a cable is long
    and thin across; a finger, a limb or a trunk is not."""
    sy, sx = (float(v) for v in spacing_yx)
    out = np.zeros(n, bool)
    for k, box in enumerate(_part_boxes(labels, n)):
        if box is None:
            continue
        part = labels[box] == k + 1
        area = float(part.sum(axis=(1, 2)).max()) * sy * sx
        extent = max((box[1].stop - box[1].start) * sy, (box[2].stop - box[2].start) * sx)
        out[k] = extent * extent <= COMPACT_MAX_EXTENT2_PER_AREA * area
    return out


# A body piece is mostly fat, skin and muscle: the median of its HU lies in this range (a
# table top of carbon fibre or plastic is denser; foam is air).
SOFT_TISSUE_MEDIAN_HU = (-200.0, 120.0)


def _soft_tissue(labels: np.ndarray, n: int, hu: np.ndarray, f: int) -> np.ndarray:
    """Per part 1..n of ``labels`` (coarse grid of ``f`` x ``f`` blocks of ``hu``): whether
    the median HU of its blocks' centre voxels lies in ``SOFT_TISSUE_MEDIAN_HU``."""
    centres, lab = _block_centres(labels, hu, f)
    out = np.zeros(n, bool)
    lo, hi = SOFT_TISSUE_MEDIAN_HU
    for k in range(1, n + 1):
        values = centres[lab == k]
        out[k - 1] = values.size > 0 and lo <= float(np.median(values)) <= hi
    return out


# A body part holds bone: at least this share of its samples are above BONE_SAMPLE_HU (a
# thigh's femur is 4 % of its cross-section, a finger's phalanx a quarter). A gel pad of
# 0-50 HU reaches 300 HU only by noise more than 5 SDs of 50 HU out.
BONE_SAMPLE_HU = 300.0
BONE_MIN_SHARE = 0.005


def _holds_bone(labels: np.ndarray, n: int, hu: np.ndarray, f: int, where: np.ndarray | None = None) -> np.ndarray:
    """Per part 1..n of ``labels`` (coarse grid of ``f`` x ``f`` blocks of ``hu``): whether
    at least ``BONE_MIN_SHARE`` of its blocks' centre voxels (those in ``where``, if given)
    are above ``BONE_SAMPLE_HU``."""
    centres, lab = _block_centres(labels, hu, f)
    if where is not None:
        lab = np.where(where[:, :lab.shape[1], :lab.shape[2]], lab, 0)
    total = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    dense = np.bincount(lab[centres > BONE_SAMPLE_HU], minlength=n + 1)[1:]
    return dense >= BONE_MIN_SHARE * np.maximum(total, 1)


def _block_centres(labels: np.ndarray, hu: np.ndarray, f: int) -> tuple[np.ndarray, np.ndarray]:
    """The centre voxel of each ``f`` x ``f`` block of ``hu`` and the coarse ``labels`` on the
    same blocks (both cut to the blocks they share)."""
    centres = hu[:, f // 2::f, f // 2::f][:, :labels.shape[1], :labels.shape[2]]
    return centres, labels[:, :centres.shape[1], :centres.shape[2]]


def _part_boxes(labels: np.ndarray, n: int) -> list:
    """The bounding boxes of labels 1..n (None for a label not present)."""
    boxes = ndi.find_objects(labels, max_label=n)
    return list(boxes) + [None] * (n - len(boxes))


def _coarse_tissue(hu: np.ndarray, f: int) -> np.ndarray:
    """In-plane blocks of f x f voxels that hold no air (the ragged edge dropped).

    All, not any: a narrow gap between two thighs, or between the back and the table
    pad, stays open on the coarse grid (sampling one voxel a block could skip it)."""
    nz = hu.shape[0]
    cy, cx = hu.shape[1] // f, hu.shape[2] // f
    out = np.empty((nz, cy, cx), bool)

    # Slice by slice, in threads: the strided passes then read a slice in cache. The rows
    # of a block first (whole rows, contiguous), then its columns on a third of the data.
    def slab(z0: int, z1: int) -> None:
        for z in range(z0, z1):
            rows = hu[z, 0:cy * f:f, :cx * f].copy()
            for i in range(1, f):
                np.minimum(rows, hu[z, i:cy * f:f, :cx * f], out=rows)
            low = rows[:, 0::f].copy()
            for j in range(1, f):
                np.minimum(low, rows[:, j::f], out=low)
            _above_air(low, out=out[z])

    over_slabs(slab, nz, n_threads(), hu.size)
    return out


def _full_resolution_mask(hu: np.ndarray, labels: np.ndarray, lut: np.ndarray, f: int, spacing_zyx,
                          margin: tuple[int, int, int],
                          table: TableCut | None = None, joined: np.ndarray | None = None,
                          ) -> tuple[tuple[slice, ...] | None, np.ndarray]:
    """The body at full resolution from the kept coarse blocks of f x f voxels (the blocks
    whose coarse part ``labels`` is kept by ``lut``), slice by slice so that each slice's
    work stays in cache.

    The kept blocks are all tissue and lie within a block of the skin: the body is the
    tissue they reach in ``f`` 8-neighbour steps. Where tissue goes on past that (an
    object lying on the skin, a fold the blocks missed), the slice is opened with the 4 mm
    disk at full resolution instead (:func:`_open_slice`), which draws the skin exactly and
    cuts off what lies on it. Then holes are filled.

    Returns the box of the mask grown by ``margin`` voxels (clipped to ``hu``; ``None``
    when the mask is empty) and the mask on that box (all of ``hu``'s grid when empty).
    Each slice's piece is kept until the box is known, so the mask is written once, on
    its own box (no mask of ``hu``'s size and no copy of its box)."""
    nz, ny, nx = hu.shape
    sy, sx = (float(s) for s in spacing_zyx[1:])
    cy, cx = labels.shape[1:]
    # The coarse grid is f * f times smaller: one look-up for all slices (a comparison when
    # every part is kept, the usual case).
    kept_all = labels != 0 if lut[1:].all() else lut[labels]
    kept_rows, kept_cols = kept_all.any(axis=2), kept_all.any(axis=1)
    rows = np.minimum(np.arange(ny) // f, cy - 1)
    cols = np.minimum(np.arange(nx) // f, cx - 1)
    pieces: list[tuple[int, int, np.ndarray] | None] = [None] * nz
    rows_hit = np.zeros((nz, ny), bool)
    cols_hit = np.zeros((nz, nx), bool)

    # The growth reaches f pixels past the kept blocks and its check one more: each slice's
    # work runs on the box of its kept blocks grown by f + 2 pixels, whose edge is then
    # outside air joined to the outside (so filling holes there is filling them in the slice).
    reach = f + 2

    def slab(z0: int, z1: int) -> None:
        for z in range(z0, z1):
            k_rows = np.flatnonzero(kept_rows[z])
            if k_rows.size == 0:
                continue
            k_cols = np.flatnonzero(kept_cols[z])
            y0 = max(int(k_rows[0]) * f - reach, 0)
            y1 = ny if k_rows[-1] == cy - 1 else min((int(k_rows[-1]) + 1) * f + reach, ny)
            x0 = max(int(k_cols[0]) * f - reach, 0)
            x1 = nx if k_cols[-1] == cx - 1 else min((int(k_cols[-1]) + 1) * f + reach, nx)
            free = None  # the slice's tissue with the table cut off, where it joins the body
            if joined is not None and joined[z]:
                free = _above_air(hu[z])
                cut_slice(free, hu[z], table, True, f, (sy, sx))
                tissue = free[y0:y1, x0:x1]
            else:
                tissue = _above_air(hu[z, y0:y1, x0:x1])
            # The blocks' pixels: columns then rows picked from the small coarse slice.
            base = np.take(np.take(kept_all[z], cols[x0:x1], axis=1), rows[y0:y1], axis=0)
            base &= tissue
            packed, spills = _grow_within_packed(base, tissue, f)
            if spills:
                # The opening is not local: on the whole slice, where a table may join the
                # body by a gap thinner than the coarse blocks see (anatomy/table.py).
                if free is None:
                    free = _above_air(hu[z])
                    if table is not None:
                        cut_slice(free, hu[z], table, False, f, (sy, sx))
                tissue = free
                whole = np.zeros((ny, nx), bool)
                whole[y0:y1, x0:x1] = base
                m = _open_slice(tissue, whole, sy, sx)
                y0, y1, x0, x1 = box_2d(m, 1)
                m = m[y0:y1, x0:x1]
                # Most slices of limbs, abdomen and pelvis have no hole: skip the labelling there.
                filled = m if runs_are_single(m) else fill_holes_2d(m)
                in_rows, in_cols = filled.any(axis=1), filled.any(axis=0)
            else:
                # Rows and columns hit, and whether each row's (column's) pixels are one run,
                # read on the packed words (an eighth of the bytes). A hole lies between
                # pixels of its row and of its column: filling it adds no row or column hit.
                in_rows = packed.any(axis=1)
                in_cols = unpack_rows(np.bitwise_or.reduce(packed, axis=0)[None], tissue.shape[1])[0]
                m = unpack_rows(packed, tissue.shape[1])
                filled = m if _packed_runs_are_single(packed, in_rows, in_cols) else fill_holes_2d(m)
            pieces[z] = (y0, x0, filled)
            rows_hit[z, y0:y1] = in_rows
            cols_hit[z, x0:x1] = in_cols

    # In this thread: each slice's work is many small numpy steps that hold the GIL, and two
    # threads contending for it took 0.05 s longer on the 400-slice benchmark (0.35 against 0.30 s
    # for the whole body mask).
    over_slabs(slab, nz, 1)
    final = _bbox_from_extent((rows_hit, cols_hit), margin)
    if final is None:
        return None, np.zeros(hu.shape, bool)
    fz, fy, fx = final
    # On ordinary pages: numpy asks for huge pages for large arrays, and on a busy machine
    # the kernel then stalls the first writes while it compacts memory (0.02-0.25 s for a
    # 60 MB mask here, against a steady 0.03-0.06 s on ordinary pages).
    out = sparse_zeros((fz.stop - fz.start, fy.stop - fy.start, fx.stop - fx.start), bool)

    def place(k0: int, k1: int) -> None:
        for z in range(fz.start + k0, fz.start + k1):
            piece = pieces[z]
            if piece is None:
                continue
            y0, x0, filled = piece
            pieces[z] = None
            # The piece's box may reach past the final box, but only with background.
            a0, a1 = max(y0, fy.start), min(y0 + filled.shape[0], fy.stop)
            b0, b1 = max(x0, fx.start), min(x0 + filled.shape[1], fx.stop)
            out[z - fz.start, a0 - fy.start:a1 - fy.start, b0 - fx.start:b1 - fx.start] = \
                filled[a0 - y0:a1 - y0, b0 - x0:b1 - x0]

    over_slabs(place, out.shape[0], n_threads(), out.size)
    return final, out


def _sampled_box(hu: np.ndarray, f: int) -> tuple[slice, ...] | None:
    """``bbox_of(_above_air(hu[:, f // 2::f, f // 2::f]), (0, 1, 1))``: the box (on the
    samples' grid, a sample of margin in-plane) round the samples above air, None when
    there is none.

    Found from the edges inwards, a slice, row or a few columns of samples at a time: each
    side's search stops at its first sample above air, so only the air round the body is
    read (all of the samples only when there is nothing but air)."""
    sample = hu[:, f // 2::f, f // 2::f]  # a view: nothing is read yet
    nz, ny, nx = sample.shape

    def first(n: int, hits_in, last: bool, step: int = 1) -> int | None:
        """The first (``last``: the last) index along an axis of n whose samples hold a
        hit; ``hits_in(lo, hi)`` says which of the indices lo..hi-1 do (``step`` at a time)."""
        starts = range(n - step, -step, -step) if last else range(0, n, step)
        for lo in starts:
            lo, hi = max(lo, 0), min(lo + step, n)
            where = np.flatnonzero(hits_in(lo, hi))
            if where.size:
                return lo + int(where[-1] if last else where[0])
        return None

    z0 = first(nz, lambda lo, hi: _above_air(sample[lo:hi]).any(axis=(1, 2)), False)
    if z0 is None:
        return None
    z1 = first(nz, lambda lo, hi: _above_air(sample[lo:hi]).any(axis=(1, 2)), True)
    zs = slice(z0, z1 + 1)
    y0 = first(ny, lambda lo, hi: _above_air(sample[zs, lo:hi]).any(axis=(0, 2)), False)
    y1 = first(ny, lambda lo, hi: _above_air(sample[zs, lo:hi]).any(axis=(0, 2)), True)
    ys = slice(y0, y1 + 1)
    # Columns a few at a time: one sample of a column costs a cache line, as do 8 of them.
    x0 = first(nx, lambda lo, hi: _above_air(sample[zs, ys, lo:hi]).any(axis=(0, 1)), False, 8)
    x1 = first(nx, lambda lo, hi: _above_air(sample[zs, ys, lo:hi]).any(axis=(0, 1)), True, 8)
    return (slice(z0, z1 + 1), slice(max(y0 - 1, 0), min(y1 + 2, ny)),  # type: ignore[operator]
            slice(max(x0 - 1, 0), min(x1 + 2, nx)))  # type: ignore[operator]


def _above_air(hu: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``hu > AIR_HU``; for integer HU against the integer threshold (the same voxels:
    an integer is above -500.0 when it is above the floor of -500.0), which spares numpy
    a float64 copy of each value."""
    if np.issubdtype(hu.dtype, np.integer):
        return np.greater(hu, math.floor(AIR_HU), out=out)
    return np.greater(hu, AIR_HU, out=out)


def _packed_runs_are_single(packed: np.ndarray, rows_any: np.ndarray, cols_any: np.ndarray) -> bool:
    """:func:`~calcinosis.anatomy.morphology.runs_are_single` of the mask packed by
    :func:`~calcinosis.anatomy.bitrows.pack_rows` (its bits past the last column 0), given
    the mask's non-empty rows ``rows_any`` and columns ``cols_any``: the runs' starts
    counted by bits."""
    one, top = np.uint64(1), np.uint64(63)
    left = packed << one  # pixel x takes x - 1 (pixel 0 takes 0: a set pixel 0 starts a run)
    left[:, 1:] |= packed[:, :-1] >> top
    if popcount(packed & ~left) == np.count_nonzero(rows_any):
        return True
    return popcount(packed[1:] & ~packed[:-1]) + popcount(packed[0]) == np.count_nonzero(cols_any)


def _grow_within(m: np.ndarray, tissue: np.ndarray, steps: int) -> tuple[np.ndarray, bool]:
    """``m`` grown ``steps`` times into its 8 neighbours within ``tissue`` (``m`` inside
    ``tissue``), and whether one more step would still grow it (tissue goes on).

    Each step is :func:`grow_one` with corners, and ``tissue``; a step that adds nothing
    ends the growth early (no later step can add anything either). The steps run on the
    rows packed 64 pixels to a word (:func:`~calcinosis.anatomy.bitrows.pack_rows`): a
    step is a dozen operations on an eighth of the bytes, the same pixels as on the
    boolean slice."""
    packed, spills = _grow_within_packed(m, tissue, steps)
    return unpack_rows(packed, m.shape[1]), spills


def _grow_within_packed(m: np.ndarray, tissue: np.ndarray, steps: int) -> tuple[np.ndarray, bool]:
    """:func:`_grow_within` with the grown mask left packed (rows of 64-pixel words)."""
    packed, inside = pack_rows(m), pack_rows(tissue)
    for step in range(steps + 1):
        grown = grow_packed(packed)
        grown &= inside
        if np.array_equal(grown, packed):  # packed lies inside grown: equal words, equal masks
            return packed, False
        if step == steps:  # the check's step grew it
            return packed, True
        packed = grown
    raise AssertionError("unreachable")


def _bbox_from_extent(extent: tuple[np.ndarray, np.ndarray],
                      margin: tuple[int, int, int]) -> tuple[slice, ...] | None:
    """:func:`bbox_of` of the mask whose rows and columns hit per slice are ``extent``."""
    rows_hit, cols_hit = extent
    z_hit = rows_hit.any(axis=1)
    if not z_hit.any():
        return None
    out = []
    for hit, m, size in ((z_hit, margin[0], rows_hit.shape[0]), (rows_hit.any(axis=0), margin[1], rows_hit.shape[1]),
                         (cols_hit.any(axis=0), margin[2], cols_hit.shape[1])):
        where = np.flatnonzero(hit)
        out.append(slice(max(int(where[0]) - m, 0), min(int(where[-1]) + 1 + m, size)))
    return tuple(out)


def _open_slice(tissue: np.ndarray, base: np.ndarray, sy: float, sx: float) -> np.ndarray:
    """One slice's body by the full-resolution opening: the tissue opened with the 4 mm
    disk (:mod:`calcinosis.anatomy.disk`, equal to two in-plane distance transforms; on
    packed rows, :mod:`calcinosis.anatomy.bitrows`), its 4-connected pieces that overlap ``base``
    (the kept coarse blocks), and, as the disk's discrete edge can shave a voxel off the
    skin, the tissue voxels next to them (4-neighbours)."""
    rects = disk_rectangles(sy, sx, TABLE_OPENING_MM, True)  # erode_disk's and dilate_disk's disk
    if rects is None:
        deep = erode_disk(tissue, (sy, sx), TABLE_OPENING_MM)
        if not deep.any():
            return base.copy()
        opened = dilate_disk(deep, (sy, sx), TABLE_OPENING_MM)
    else:
        # The same pixels on rows packed 64 to a word (an eighth of the bytes per pass).
        width = tissue.shape[1]
        deep = disk_op_packed(pack_rows(tissue), width, rects, erode=True)
        if not deep.any():  # its padding is 0
            return base.copy()
        opened = unpack_rows(disk_op_packed(deep, width, rects, erode=False), width)
    pieces, n = cc3d.connected_components(opened, connectivity=4, return_N=True)
    if n <= _FEW_PIECES:
        # A comparison per piece: cheaper than gathering the labels under base and a look-up.
        body = np.zeros(opened.shape, bool)
        for k in range(1, n + 1):
            piece = pieces == k
            if np.logical_and(piece, base).any():  # piece is inside opened: base & opened
                body |= piece
    else:
        lut = np.zeros(n + 1, bool)
        lut[pieces[base & opened]] = True
        lut[0] = False
        body = lut[pieces]
    return (grow_one(body) & tissue) | base


# Up to this many pieces in an opened slice, each is compared with base on its own.
_FEW_PIECES = 4
