"""A CT table top the body lies on, cut from the body where the two touch.

The body mask (:mod:`calcinosis.anatomy.body`) opens the non-air voxels of each slice
with a 4 mm disk and keeps the thick parts: a table top thicker than 8 mm survives the
opening, and where the air between the back and the table is under a pixel its partial
volume is not air (-300 to -450 HU for a 0.6-0.8 mm gap), so the table joined the body
and the whole table top (rails included) was taken for skin; its noise above 130 HU then
gave "cutaneous" findings.

The table is told here by its shape, read along the image's columns (the vertical axis
of an axial slice). In the columns beside the body, the run of non-air voxels nearest the
table's side is the table top alone: a plate of one thickness under 24 mm (thinner than
any body part, :data:`~calcinosis.anatomy.body.MIN_HALF_THICKNESS_MM`) whose far face is
a smooth curve (a quadratic fits a flat or a curved top). Under the body the same run is
longer (body and table in one) and ends on that curve. Where such joined columns have
the plate on both sides, the table is cut off there, from the gap's row (on the full
grid: the darkest voxel round it, the partial-volume air) through the plate.

On the coarse blocks the plate is found once for the volume, on the voxels that are
tissue in every slice (the table runs through the whole scan; the body and what lies on
it vary), and its joins on the voxels that are tissue in any slice. On the full grid
each slice that needs it is read again in the plate's band of rows, which gives the
faces to a voxel. A table above the body (an image stored upside down) is found the same
way from the other end of the columns. A body with no table, or a table apart from the
body, has no joined columns: nothing is cut. A table that moves from slice to slice (a
tilted gantry) is not found.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from calcinosis.anatomy.morphology import fill_holes_2d

# The table top is a plate thinner than a body part (2 x MIN_HALF_THICKNESS_MM).
PLATE_MAX_MM = 24.0
# The plate beside the body spans at least this much on each side of the joined columns.
PLATE_SIDE_MM = 20.0
# Columns of the plate agree with its fitted far face within this (and 1.5 rows), and
# with its thickness within this (and a row): a curved plate is thicker at its sides.
FIT_TOLERANCE_MM = 2.0
THICKNESS_TOLERANCE_MM = 1.5


@dataclass(frozen=True)
class TableCut:
    """A table top on a grid of rows and columns: its far face ``far(x)`` (a quadratic in
    the column), its thickness ``rows``, the side it lies on (``down``: at higher rows
    than the body), the columns it spans (``first``, ``last``; ``columns`` of them read
    as plate) and the columns ``spans`` (first, last) where body and table are one run
    (none when the table lies apart)."""

    spans: tuple[tuple[int, int], ...]
    coef: tuple[float, float, float]
    rows: int
    down: bool
    first: int
    last: int
    columns: int

    def far(self, x) -> np.ndarray:
        return np.polyval(self.coef, x)

    def near(self, x) -> np.ndarray:
        """The row of the gap between body and plate (just past the plate's near face)."""
        return self.far(x) - self.rows if self.down else self.far(x) + self.rows


def find_table(tissue: np.ndarray, spacing_yx) -> TableCut | None:
    """The table top of ``tissue`` (coarse non-air blocks, ``[z, y, x]``): found on the
    blocks that are tissue in at least half the slices (a table that ends inside the
    scan is still found), its joins with the body on those that are tissue in any; None
    when there is no plate (``spans`` empty when it lies apart from the body)."""
    nz = tissue.shape[0]
    most = np.count_nonzero(tissue, axis=0) * 2 >= nz
    some = tissue.any(axis=0)
    sy, sx = (float(s) for s in spacing_yx)
    # Both ways up see the plate beside the body; the way that has the joins, else the one
    # whose plate runs on under the body (more columns), is the table's side.
    outside = ~fill_holes_2d(most)  # the air joined to the border: not a lung or bowel
    found = [c for c in (_plate(most, some, sy, sx, down, outside=outside) for down in (True, False))
             if c is not None]
    return max(found, key=lambda c: (bool(c.spans), c.columns)) if found else None


def joined_slices(tissue: np.ndarray, table: TableCut) -> np.ndarray:
    """Per slice of ``tissue`` (the coarse blocks, before :func:`apply_coarse`): whether the
    body joins the table there (a block of tissue on the gap's row of a joined column)."""
    out = np.zeros(tissue.shape[0], bool)
    for a, b in table.spans:
        xs = np.arange(a, b + 1)
        gap = np.clip(np.round(table.near(xs)).astype(int), 0, tissue.shape[1] - 1)
        out |= tissue[:, gap, xs].any(axis=1)
    return out


def apply_coarse(tissue: np.ndarray, table: TableCut) -> None:
    """Cut the table from the coarse blocks ``tissue`` (in place, every slice): in the
    joined columns and one more on each side, from the gap's row through the plate."""
    ny, nx = tissue.shape[1:]
    region = np.zeros((ny, nx), bool)
    rows = np.arange(ny)[:, None]
    for a, b in table.spans:
        xs = np.arange(max(a - 1, 0), min(b + 2, nx))
        near, far = np.round(table.near(xs)), np.round(table.far(xs))
        lo, hi = (near, far) if table.down else (far, near)
        region[:, xs] = (rows >= lo[None, :]) & (rows <= hi[None, :])
    tissue &= ~region[None]


def band(table: TableCut, f: int, ny: int) -> tuple[int, int]:
    """The rows of the full grid (blocks of ``f`` x ``f``, ``ny`` rows) that
    hold the plate of ``table`` (found on the blocks) with two blocks to spare."""
    xs = np.arange(table.first, table.last + 1)
    ends = np.concatenate([table.near(xs), table.far(xs)])
    return max(int(np.floor(ends.min())) * f - 2 * f, 0), min(int(np.ceil(ends.max()) + 1) * f + 2 * f, ny)


def cut_slice(tissue: np.ndarray, hu: np.ndarray, table: TableCut, joined: bool, f: int, spacing_yx) -> None:
    """Cut the table from one slice's non-air voxels ``tissue`` (in place; ``hu`` the
    slice). The plate's band of rows is read on the full grid (its faces to a voxel);
    where that finds no join but the blocks did (``joined``), the cut follows the
    blocks' plate ``table``."""
    r0, r1 = band(table, f, hu.shape[0])
    sy, sx = (float(s) for s in spacing_yx)
    sub = tissue[r0:r1]
    fine = _plate(sub, sub, sy, sx, table.down, need_join=True)
    if fine is not None:
        # The same plate as the blocks' (its far face within a block and a voxel).
        xs = np.arange(fine.first, fine.last + 1)
        blocks_far = (table.far((xs + 0.5) / f - 0.5) + 0.5) * f - 0.5 - r0
        if np.abs(fine.far(xs) - blocks_far).max() > f + 1:
            fine = None
    if fine is not None:
        apply_full(sub, hu[r0:r1], fine, 1)
    elif joined:
        apply_full(tissue, hu, table, f)


def apply_full(tissue: np.ndarray, hu: np.ndarray, cut: TableCut, f: int) -> None:
    """Cut a table from one slice's ``tissue`` (in place; ``hu`` the slice), ``cut`` found
    on blocks of ``f`` x ``f`` voxels (1: on the slice itself).

    The joined columns, widened by a block and a voxel on each side (blocks miss partial
    joins at their ends), are cut from the darkest voxel near the gap's row (the
    partial-volume air between body and table; within a voxel of it, or a block and a
    voxel on blocks) to a block past the plate's far face."""
    ny, nx = hu.shape
    rows = np.arange(ny)[:, None]
    for a, b in cut.spans:
        x_lo, x_hi = max(a * f - f - 1, 0), min((b + 1) * f + f + 1, nx)
        xs = np.arange(x_lo, x_hi)
        centre = (xs + 0.5) / f - 0.5  # the full grid's columns on the blocks' grid
        gap = np.round((cut.near(centre) + 0.5) * f - 0.5).astype(int)  # the gap row's centre
        # The gap row is known to a voxel on the full grid, to a block and a voxel on blocks.
        half = f + 1 if f > 1 else 1
        window = np.clip(gap[:, None] + np.arange(-half, half + 1)[None, :], 0, ny - 1)
        trough = window[np.arange(xs.size), np.argmin(hu[window, xs[:, None]], axis=1)]
        far = np.round((cut.far(centre) + 0.5) * f - 0.5).astype(int)
        if cut.down:
            drop = (rows >= trough[None, :]) & (rows <= far[None, :] + f)
        else:
            drop = (rows <= trough[None, :]) & (rows >= far[None, :] - f)
        tissue[:, x_lo:x_hi] &= ~drop


def _plate(fit_on: np.ndarray, join_on: np.ndarray, sy: float, sx: float, down: bool,
           need_join: bool = False, outside: np.ndarray | None = None) -> TableCut | None:
    """The plate among the columns of the slice ``fit_on`` and its joins with the body in
    the slice ``join_on`` (rows counted from the table side's end: ``down``), or None (also
    when ``need_join`` and there is no join).

    A plate column's run ends before the slice's last row (a run cut by the field of view
    has no far face) and, where ``outside`` (the air outside the body) is given, has that
    air on its near side: the body's wall under a lung is not a table."""
    flip = (lambda a: a) if down else (lambda a: a[::-1])
    ny = fit_on.shape[0]
    start, end, has = _last_runs(flip(fit_on))
    usable = has & (end < ny - 1) & (start > 0)
    if outside is not None:
        usable &= flip(outside)[np.maximum(start - 1, 0), np.arange(start.size)]
    fit = _plate_fit(start, end, usable, sy, sx)
    if fit is None:
        return None
    coef, rows, plate, thick_tol, fit_tol = fit
    if join_on is not fit_on:
        start, end, has = _last_runs(flip(join_on))
    length = end - start + 1
    joined = has & (end < ny - 1) & (np.abs(end - np.polyval(coef, np.arange(end.size))) <= fit_tol)
    joined &= length > rows + 2 * thick_tol
    spans = _joined_spans(joined, plate, sx)
    if need_join and not spans:
        return None
    if not down:  # rows were counted from the other end: back to the image's rows
        coef = np.array([-coef[0], -coef[1], ny - 1 - coef[2]])
    cols = np.flatnonzero(plate)
    return TableCut(spans, tuple(float(c) for c in coef), rows, down,  # type: ignore[arg-type]
                    int(cols[0]), int(cols[-1]), int(cols.size))


def _plate_fit(start, end, has, sy: float, sx: float):
    """The plate among the columns' last runs: its far face's quadratic, thickness (rows),
    its columns, and the tolerances of thickness and face in rows; None when there is none."""
    length = end - start + 1
    thin = has & (length * sy < PLATE_MAX_MM)
    side = int(np.ceil(PLATE_SIDE_MM / sx))
    if np.count_nonzero(thin) < 2 * side:
        return None
    rows = int(np.median(length[thin]))
    fit_tol = max(1.5, FIT_TOLERANCE_MM / sy)
    thick_tol = max(1.0, THICKNESS_TOLERANCE_MM / sy)
    plate = thin & (np.abs(length - rows) <= thick_tol)
    xs = np.flatnonzero(plate)
    if xs.size < 2 * side:
        return None
    coef = _fit(xs, end[xs])
    good = np.abs(end[xs] - np.polyval(coef, xs)) <= fit_tol
    if np.count_nonzero(good) < 2 * side:
        return None
    coef = _fit(xs[good], end[xs[good]])
    plate &= np.abs(end - np.polyval(coef, np.arange(end.size))) <= fit_tol
    return coef, rows, plate, thick_tol, fit_tol


def _fit(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """A parabola through (xs, ys) by least squares; a plate of few columns (coarse pixels)
    is fitted as well as it can be, without numpy's warning on the terminal."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.RankWarning)
        return np.polyfit(xs, ys, 2)


def _joined_spans(joined: np.ndarray, plate: np.ndarray, sx: float) -> tuple[tuple[int, int], ...]:
    """The runs of joined columns with at least PLATE_SIDE_MM of plate on each side."""
    if not joined.any():
        return ()
    side = int(np.ceil(PLATE_SIDE_MM / sx))
    before = np.cumsum(plate)
    after = before[-1] - before
    return _spans(joined & (before >= side) & (after >= side))


def _last_runs(t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of a 2-D slice: the first and last row of its last run of True, and
    whether the column has any."""
    ny = t.shape[0]
    has = t.any(axis=0)
    end = ny - 1 - np.argmax(t[::-1], axis=0)
    gaps = ~t
    gaps &= np.arange(ny)[:, None] < end[None, :]
    start = np.where(gaps.any(axis=0), ny - np.argmax(gaps[::-1], axis=0), 0)
    return start, end, has


def _spans(mask: np.ndarray) -> tuple[tuple[int, int], ...]:
    """The runs of True in a 1-D mask as (first, last) pairs."""
    edges = np.diff(np.concatenate(([0], mask.view(np.int8), [0])))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return tuple(zip(starts.tolist(), stops.tolist()))
