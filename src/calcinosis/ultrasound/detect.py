"""Find calcified deposits on one B-mode frame: hyperechoic foci that cast an acoustic shadow.

The steps, on one B-mode region at a time (rows = depth, the beam runs down the columns):

1. Light smoothing against speckle; the local echo level (a wide normalised Gaussian mean
   over valid pixels) and the speckle spread (robust SD of the residual).
2. The skin line: in each column the first strong echo below the transducer face, smoothed
   across columns.
3. Hyperechoic pixels: clearly above the local level and among the brightest of the region.
   A grey-level-independent opening of about 0.8 mm removes thin bright lines (skin line,
   fascia, fat septa, muscle fibres) before the foci are labelled.
4. Each focus is re-outlined at half its peak over the local level (so width and thickness
   do not depend on the detection threshold) and measured.
5. Bright linear interfaces are rejected by shape (wider than any deposit, or much longer
   than thick); speckle and interfaces without a shadow are rejected by the shadow test:
   the mean grey level in a band beneath the focus divided by that beside it, at the same
   depths, on both sides (the darker side counts, so a shadow must be darker than both), or
   the two's difference in grey levels (a shadow's decibels on the log display).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from calcinosis.ultrasound.config import UltrasoundConfig

__all__ = ["Focus", "MIN_VALID_PIXELS", "detect_foci", "skin_line_rows"]


@dataclass(frozen=True)
class Focus:
    """A deposit found on one region of one frame, in that region's pixel coordinates.

    ``row``/``col`` are the intensity-weighted centroid; ``top_row`` is the superficial edge
    at the centre; ``mask_rows``/``mask_cols`` are the outline's visible pixels; lengths are in
    mm (or pixels where the region has no physical scale: then ``row_mm == col_mm == 1``) and
    include the part under thin marks, whose share of the outline is ``hidden_share``.
    """

    row: float
    col: float
    top_row: float
    skin_row: float
    depth_mm: float
    width_mm: float
    thickness_mm: float
    shadow_ratio: float
    contrast: float
    confidence: float
    bbox: tuple[int, int, int, int]  # r0, c0, r1, c1 inclusive
    mask_rows: np.ndarray
    mask_cols: np.ndarray
    hidden_share: float = 0.0


#: Fewest analysable pixels in a region for a search: fewer leave no speckle statistics (and
#: are fewer than one 1 mm deposit with its shadow holds at 0.1 mm pixels).
MIN_VALID_PIXELS = 100
#: Largest share of a deposit's outline that may lie under thin marks: caliper crosses on both
#: edges of the phantom's deposits hide 7-9 % of a 4.5-6 mm one, 28 % of a 3 mm one; an echo
#: along a Doppler box's line (52 % on the real US1_UNCR image, loose settings) is unseen.
MAX_HIDDEN_SHARE = 0.4


def _px(mm: float, pixel_mm: float, minimum: float = 1.0) -> float:
    return max(mm / pixel_mm, minimum)


def _ellipse(ry: float, rx: float) -> np.ndarray:
    ry, rx = max(ry, 1.0), max(rx, 1.0)
    y, x = np.mgrid[-int(ry):int(ry) + 1, -int(rx):int(rx) + 1]
    return (y / ry) ** 2 + (x / rx) ** 2 <= 1.0


#: Thickest coupling layer (gel, stand-off pad) searched through for the skin: pads are 5-20 mm.
MAX_STANDOFF_MM = 25.0
#: A coupling layer is darker than this fraction of the region's 60th percentile (the skin
#: search's level): gel and pads are anechoic; the phantom's fat, the darkest tissue above the
#: fascia, has a median of 0.64-0.68 of it. Only a column whose skin lies deeper than
#: ``skin_search_mm`` below the face is read differently: the layer above it is searched through.
COUPLING_FRACTION = 0.5


def skin_line_rows(smooth: np.ndarray, valid: np.ndarray, row_mm: float, col_mm: float,
                   config: UltrasoundConfig) -> np.ndarray:
    """Row of the skin line (its superficial edge) in every column, as float.

    The skin line is the first echo in the column brighter than the region's 60th percentile
    (coupling gel is anechoic) within ``config.skin_search_mm`` of the top of the echo field,
    or of the end of a dark coupling layer (a gel stand-off pad) that tops the column;
    columns where none is found take the top of the field.
    """
    values = smooth[valid]
    rows, cols = smooth.shape
    if values.size == 0:
        return np.zeros(cols)
    level = np.percentile(values, 60)
    first_valid = np.where(valid.any(axis=0), valid.argmax(axis=0), 0).astype(float)
    # The skin lies just under the transducer face or under a stand-off pad: search only the
    # first few mm below the dark coupling layer that tops the column (gel, pad), and fall back
    # on the face itself. A pad of faint echoes (grey 15) was taken for tissue when its top
    # was the search's start: under an 8 mm pad every depth read 8.7 mm deep.
    rows_idx = np.arange(rows)[:, None]
    below_face = (rows_idx >= first_valid[None, :]) & valid
    standoff = rows_idx <= first_valid[None, :] + MAX_STANDOFF_MM / row_mm
    echoing = below_face & standoff & (smooth >= COUPLING_FRACTION * level)
    start = np.where(echoing.any(axis=0), echoing.argmax(axis=0), first_valid).astype(float)
    near = (rows_idx >= first_valid[None, :]) & (rows_idx <= start[None, :] + config.skin_search_mm / row_mm)
    strong = (smooth > level) & valid & near
    found = strong.any(axis=0)
    first = np.where(found, strong.argmax(axis=0), first_valid).astype(float)
    if not found.any():
        return first_valid
    width = int(round(_px(config.skin_smoothing_mm, col_mm, 3))) | 1
    return ndi.median_filter(first, size=width, mode="nearest")


def detect_foci(grey: np.ndarray, valid: np.ndarray, row_mm: float, col_mm: float,
                config: UltrasoundConfig, border: np.ndarray | None = None) -> tuple[list[Focus], np.ndarray]:
    """Deposits on one B-mode region.

    Parameters
    ----------
    grey : ndarray, float [rows, cols]
        Grey levels 0-255 of the region (rows = depth).
    valid : ndarray, bool [rows, cols]
        Pixels that may be analysed (no annotation, inside the echo area).
    row_mm, col_mm : float
        Pixel size along depth and across, in mm (the nominal size when the image has none).
    config : UltrasoundConfig
    border : ndarray, bool [rows, cols], optional
        Pixels a deposit may not touch, for what lies beyond them is unseen (outside the echo
        field, colour boxes); by default every pixel that is not ``valid``. Thin marks drawn
        over the echoes (calipers) are not valid but are no border: a deposit touching them
        is kept.

    Returns
    -------
    foci : list of Focus
    skin_rows : ndarray, float [cols]
    """
    grey = grey.astype(np.float32)
    if valid.sum() < MIN_VALID_PIXELS:
        return [], np.zeros(grey.shape[1])
    fill = float(np.median(grey[valid]))
    g = np.where(valid, grey, fill)
    # Pixels under a thin mark (a caliper on a deposit's edge, its dotted line across it) are
    # interpolated across the mark, so that the deposit's outline runs on beneath it: cut at the
    # mark, the phantom's deposits measured 0.5-0.8 of their width.
    seen = valid if border is None else valid | ~border
    marks = seen & ~valid
    if marks.any():
        g = _fill_marks(g, valid, marks)
    smooth = ndi.gaussian_filter(g, (_px(0.15, row_mm, 0.5), _px(0.25, col_mm, 0.5)))
    w = valid.astype(np.float32)
    sig_bg = (_px(2.0, row_mm, 3), _px(3.0, col_mm, 3))
    local = ndi.gaussian_filter(smooth * w, sig_bg) / np.maximum(ndi.gaussian_filter(w, sig_bg), 1e-3)
    resid = (smooth - local)[valid]
    spread = max(1.4826 * float(np.median(np.abs(resid - np.median(resid)))), 2.0)
    bright_level = float(np.percentile(smooth[valid], config.bright_percentile))
    peak_level = float(np.percentile(smooth[valid], config.peak_percentile))
    skin = skin_line_rows(smooth, valid, row_mm, col_mm, config)

    bright = (smooth - local > config.contrast_sd * spread) & (smooth >= bright_level) & valid
    opened = ndi.binary_opening(bright, structure=_ellipse(_px(config.min_thickness_mm / 2, row_mm),
                                                           _px(config.min_thickness_mm / 2, col_mm)))
    # Speckle can split one deposit into nearby cores; cores within ~0.5 mm are one focus.
    groups, _ = ndi.label(ndi.binary_dilation(opened, structure=_ellipse(_px(0.5, row_mm), _px(0.5, col_mm))))
    labels = np.where(opened, groups, 0)
    # Touching the border of the analysable area: the focus and its surroundings are cut off.
    edge = ~ndi.binary_erosion(seen, iterations=1)
    foci: list[Focus] = []
    for k, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        if smooth[sl][labels[sl] == k].max() < peak_level:
            continue  # a calcification is among the brightest echoes of the image
        focus = _assess(k, labels, sl, smooth, local, valid, seen, edge, skin, spread, row_mm, col_mm, config, peak_level)
        if focus is not None:
            foci.append(focus)
    return foci, skin


def _across(grey: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Along each row: every pixel's value interpolated linearly between the nearest valid
    pixels left and right of it (the one there is, at an end), and the gap between the two."""
    rows, cols = grey.shape
    idx = np.broadcast_to(np.arange(cols), (rows, cols))
    left = np.maximum.accumulate(np.where(valid, idx, -1), axis=1)
    right = np.minimum.accumulate(np.where(valid, idx, cols)[:, ::-1], axis=1)[:, ::-1]
    has_l, has_r = left >= 0, right < cols
    rr = np.arange(rows)[:, None]
    gl = grey[rr, np.clip(left, 0, cols - 1)]
    gr = grey[rr, np.clip(right, 0, cols - 1)]
    t = np.where(has_l & has_r, (idx - left) / np.maximum(right - left, 1), 0.0)
    value = np.where(has_l & has_r, gl + t * (gr - gl), np.where(has_l, gl, gr))
    gap = np.where(has_l & has_r, right - left, 2 * cols)
    return value, gap


def _fill_marks(grey: np.ndarray, valid: np.ndarray, marks: np.ndarray) -> np.ndarray:
    """``grey`` with the pixels of ``marks`` interpolated from the valid echoes across the mark,
    along its row or its column, whichever crosses less of it: a caliper's dotted line, filled
    along its rows, took the dark tissue either side of the deposit it crossed and split it."""
    along_rows, gap_rows = _across(grey, valid)
    along_cols, gap_cols = _across(grey.T, valid.T)
    filled = np.where(gap_rows <= gap_cols.T, along_rows, along_cols.T)
    return np.where(marks, filled, grey).astype(grey.dtype)


def _outline(k, labels, sl, smooth, local, seen, row_mm, col_mm, config):
    """Half-maximum outline of focus ``k`` in a window around it (window offset, mask); it may
    run under thin marks (``seen``), whose pixels hold the echoes interpolated across them."""
    pad_r, pad_c = int(_px(2.0, row_mm, 3)), int(_px(2.0, col_mm, 3))
    r0, r1 = max(sl[0].start - pad_r, 0), min(sl[0].stop + pad_r, smooth.shape[0])
    c0, c1 = max(sl[1].start - pad_c, 0), min(sl[1].stop + pad_c, smooth.shape[1])
    r_open = max(config.min_thickness_mm, config.outline_opening_mm) / 2
    element = _ellipse(_px(r_open, row_mm), _px(r_open, col_mm))
    core = labels[r0:r1, c0:c1] == k
    # The detection core may include a stretch of a thin interface the deposit touches;
    # the thick part alone seeds the outline.
    thick_core = ndi.binary_opening(core, structure=element)
    if thick_core.any():
        core = thick_core
    win = smooth[r0:r1, c0:c1]
    peak = float(np.percentile(win[core], 90))
    base = float(np.median(local[r0:r1, c0:c1][core]))
    half = (win >= base + 0.55 * (peak - base)) & seen[r0:r1, c0:c1]
    half |= core
    lab, _ = ndi.label(half)
    keep = np.unique(lab[core])
    mask = np.isin(lab, keep[keep > 0])
    # The outline must not run along a fascia or septum the deposit touches: walking out
    # from the core, the outline ends at the first column thinner than a deposit can be.
    counts = mask.sum(axis=0)
    core_cols = np.nonzero(core.any(axis=0))[0]
    thin = counts < _px(config.min_thickness_mm, row_mm)
    left, right = int(core_cols.min()), int(core_cols.max())
    while left > 0 and not thin[left - 1]:
        left -= 1
    while right < mask.shape[1] - 1 and not thin[right + 1]:
        right += 1
    mask[:, :left] = False
    mask[:, right + 1:] = False
    lab, _ = ndi.label(mask)
    keep = np.unique(lab[core & mask])
    mask = np.isin(lab, keep[keep > 0])
    return (r0, c0), mask, peak, base


def _assess(k, labels, sl, smooth, local, valid, seen, edge, skin, spread, row_mm, col_mm, config,
            peak_level: float) -> Focus | None:
    (r0, c0), mask, peak, base = _outline(k, labels, sl, smooth, local, seen, row_mm, col_mm, config)
    rr, cc = np.nonzero(mask)
    rr, cc = rr + r0, cc + c0
    if rr.size == 0:
        return None
    if edge[rr, cc].any():
        return None
    # A deposit in the dermis joins the skin's entry echo above it, and its outline then starts
    # on the skin line. The part within ``skin_margin_mm`` of the skin line is the skin's echo:
    # cut it off and judge what stays, which must itself hold one of the image's brightest
    # echoes (the skin's echo and the dermis under it leave a rest too thin or too dim). Without
    # the cut every such deposit was taken for the skin (phantom: 8 of 18 deposits 0.5-1.2 mm
    # under the skin missed).
    in_skin = rr < skin[cc] + config.skin_margin_mm / row_mm
    if in_skin.any():
        rr, cc = rr[~in_skin], cc[~in_skin]
        if rr.size == 0 or smooth[rr, cc].max() < peak_level:
            return None
    hidden = ~valid[rr, cc]
    hidden_share = float(hidden.mean())
    if hidden_share > MAX_HIDDEN_SHARE:
        return None  # mostly under burned-in graphics: not seen
    cmin, cmax, rmin, rmax = int(cc.min()), int(cc.max()), int(rr.min()), int(rr.max())
    width_mm = (cmax - cmin + 1) * col_mm
    per_col = np.bincount(cc - cmin)
    thickness_mm = float(np.percentile(per_col[per_col > 0], 90)) * row_mm
    if in_skin.any() and thickness_mm < config.min_thickness_mm:
        return None  # the skin's own entry echo
    if width_mm < config.min_width_mm or width_mm > config.max_width_mm:
        return None
    if width_mm / max(thickness_mm, 1e-6) > config.max_elongation:
        return None  # a bright linear interface (fascia, cortex, septum), not a deposit
    shadow = _shadow(smooth, valid, rmax, cmin, cmax, row_mm, col_mm, config)
    if shadow is None:
        return None
    ratio, drop = shadow
    # On a log-compressed display a shadow takes a fixed number of decibels, i.e. a fixed drop
    # in grey levels, off whatever lies beneath: the ratio alone asks a deeper shadow of a deposit
    # in bright muscle than in dark fat (phantom: 5-7 mm deposits whose shadows remove 45-49 %
    # of the echo read 0.80-0.84 in muscle and were missed). Either measure suffices.
    if ratio > config.max_shadow_ratio and drop < config.min_shadow_drop:
        return None
    wts = np.maximum(smooth[rr, cc] - base, 1e-3)
    row, col = float(np.average(rr, weights=wts)), float(np.average(cc, weights=wts))
    centre = (cc >= cmin + 0.3 * (cmax - cmin)) & (cc <= cmax - 0.3 * (cmax - cmin))
    tops = [rr[centre & (cc == c)].min() for c in np.unique(cc[centre])]
    top_row = float(np.median(tops))
    skin_row = float(skin[int(round(col))])
    if (top_row - skin_row) * row_mm < config.skin_margin_mm:
        return None  # starts on the skin line: the skin's entry echo, not a deposit beneath it
    contrast = (peak - base) / spread
    shadow_score = np.clip((config.max_shadow_ratio - ratio) / max(config.max_shadow_ratio - 0.3, 1e-3), 0, 1)
    contrast_score = np.clip((contrast - config.contrast_sd) / (3 * config.contrast_sd), 0, 1)
    size_score = np.clip((width_mm - config.min_width_mm) / 2.0, 0, 1)
    confidence = float(np.round(0.5 * shadow_score + 0.3 * contrast_score + 0.2 * size_score, 3))
    return Focus(row=row, col=col, top_row=top_row, skin_row=skin_row,
                 depth_mm=float((top_row - skin_row) * row_mm), width_mm=float(width_mm),
                 thickness_mm=thickness_mm, shadow_ratio=float(ratio), contrast=float(contrast),
                 confidence=confidence, bbox=(rmin, cmin, rmax, cmax),
                 mask_rows=rr[~hidden].astype(np.int32), mask_cols=cc[~hidden].astype(np.int32),
                 hidden_share=round(hidden_share, 3))


def _band_mean(smooth, valid, r0, r1, c0, c1) -> float | None:
    r0, r1 = max(r0, 0), min(r1, smooth.shape[0])
    c0, c1 = max(c0, 0), min(c1, smooth.shape[1])
    if r1 <= r0 or c1 <= c0:
        return None
    v = valid[r0:r1, c0:c1]
    if v.mean() < 0.5:
        return None
    return float(smooth[r0:r1, c0:c1][v].mean())


def _shadow(smooth, valid, rmax, cmin, cmax, row_mm, col_mm, config) -> tuple[float, float] | None:
    """Mean grey beneath the focus over the mean beside it (darker side), same depths, and the
    difference of the two in grey levels; None where a shadow cannot be judged."""
    gap_r, gap_c = int(_px(0.5, row_mm)), int(_px(0.5, col_mm))
    top = rmax + 1 + gap_r
    bottom = top + int(_px(config.shadow_length_mm, row_mm, 4))
    w = cmax - cmin + 1
    below = _band_mean(smooth, valid, top, bottom, cmin + int(0.2 * w), cmax + 1 - int(0.2 * w))
    side_w = int(np.clip(w, _px(1.5, col_mm, 3), _px(4.0, col_mm, 3)))
    left = _band_mean(smooth, valid, top, bottom, cmin - gap_c - side_w, cmin - gap_c)
    right = _band_mean(smooth, valid, top, bottom, cmax + 1 + gap_c, cmax + 1 + gap_c + side_w)
    sides = [s for s in (left, right) if s is not None]
    if below is None or not sides:
        return None
    beside = min(sides)  # darker than both sides: the edge of a bone or fluid shadow is not one
    if beside < config.min_beside_level:
        return None  # beside is itself dark (fluid, bone shadow): a shadow cannot be judged
    return below / beside, beside - below
