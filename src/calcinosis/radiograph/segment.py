"""Radiograph segmentation: collimated field, body part, lead markers and labels, bone.

All functions take a float image ``[row, col]`` with bright = dense and a pixel
size in mm (``(row_mm, col_mm)``); they return boolean masks of the image's shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

from calcinosis.radiograph import morph


@dataclass(frozen=True)
class ExcludedObject:
    """An object kept out of the analysis, with why: a lead marker or a burned-in label."""

    kind: str  # "marker" or "label"
    row_px: float
    col_px: float
    area_px: int
    bbox_px: tuple[int, int, int, int]  # row0, col0, row1, col1 (exclusive)
    reason: str


@dataclass(frozen=True)
class Segmentation:
    """Masks of one radiograph; see :func:`segment_radiograph`."""

    field_mask: np.ndarray
    body_mask: np.ndarray
    bone_mask: np.ndarray
    exclusion_mask: np.ndarray  # markers and labels, grown by a margin
    excluded: tuple[ExcludedObject, ...]
    collimation_px: dict[str, int]  # border width on each side (top, bottom, left, right)
    background_level: float
    body_threshold: float
    object_mask: np.ndarray | None = None  # markers and labels only (grown), without the field border


DROP_FRACTION = 0.8


def _px(mm: float, spacing: tuple[float, float]) -> float:
    return mm / float(np.mean(spacing))


def find_collimation(image: np.ndarray, spacing: tuple[float, float] = (0.2, 0.2)) -> tuple[np.ndarray, dict[str, int]]:
    """The exposed field: strip bright, flat collimator shadows (and their penumbra) off each side.

    A side is collimated when its outermost lines sit on a bright plateau (the
    unexposed detector shows bright, like dense tissue); the border then runs
    inward while the line medians keep falling (the penumbra).
    """
    rows, cols = image.shape
    lo, hi = np.percentile(image, [1.0, 99.9])
    span = max(float(hi - lo), 1e-6)
    bright = lo + 0.9 * span
    widths = {"top": 0, "bottom": 0, "left": 0, "right": 0}

    def walk(profile: np.ndarray) -> int:
        n = profile.size
        if n < 10 or np.median(profile[:3]) < bright:
            return 0
        i = 0
        limit = int(0.4 * n)
        while i < limit and profile[i] >= bright:
            i += 1
        # The penumbra ends at its foot: within 5 % of the range above the darkest nearby level.
        smooth = ndimage.uniform_filter1d(profile, 5)
        foot = float(smooth[: max(limit, 1)].min()) + 0.05 * span
        while i < limit and smooth[i] > foot:
            i += 1
        return min(i + 1, limit)

    col_prof = np.median(image, axis=0)
    widths["left"] = walk(col_prof)
    widths["right"] = walk(col_prof[::-1])
    c0, c1 = widths["left"], cols - widths["right"]
    row_prof = np.median(image[:, c0:c1], axis=1) if c1 > c0 else np.median(image, axis=1)
    widths["top"] = walk(row_prof)
    widths["bottom"] = walk(row_prof[::-1])
    field = np.zeros(image.shape, dtype=bool)
    field[widths["top"] : rows - widths["bottom"], c0:c1] = True
    oblique = _oblique_collimation(image, field, bright, lo + 0.05 * span, _px(OBLIQUE_PENUMBRA_MM, spacing))
    if oblique is not None:
        field = oblique
        rr, cc = np.nonzero(field)
        if rr.size:  # the widths of the field's bounding box
            widths = {"top": int(rr.min()), "bottom": int(rows - 1 - rr.max()), "left": int(cc.min()),
                      "right": int(cols - 1 - cc.max())}
    return field, widths


#: Least part of the rectangular field an oblique collimator's shadow must cover to be cut off
#: (a burned-in label on the plateau's level is a fraction of a percent, and inside the field).
OBLIQUE_MIN_FRACTION = 0.004
#: Least part of the image's border a shadow runs along (a turned field's four corners: most
#: of it; a femur reaching the border, 2 x 30 mm of about 1000 mm).
OBLIQUE_MIN_CONTACT = 0.1
#: Farthest an oblique shadow's penumbra is followed, mm (a collimator's is 1-3 mm; detection
#: keeps 5 mm inside the field anyway).
OBLIQUE_PENUMBRA_MM = 4.0


def _oblique_collimation(image: np.ndarray, field: np.ndarray, bright: float, foot: float,
                         penumbra_px: float) -> np.ndarray | None:
    """The exposed field when a collimator shadow is not parallel to the image's sides (a
    collimator turned with the forearm), else None: the image less the bright plateau
    connected to its border, less that plateau's penumbra: the pixels above ``foot`` reached
    from it within ``penumbra_px`` (a fixed margin left a bright ring round the field where
    the penumbra was wider, and the body's hole filling made the whole field body: 70 false
    deposits on the hand). The line medians strip only
    sides parallel to the rows or columns: a field turned by 10 degrees left the shadow's
    corners inside the rectangle, at the top of the range, where they became the "tissue"
    of the body threshold (the hand phantom read 0 of 13 deposits, with no warning), and a
    turn of 30 degrees made the rectangle cut the hand itself. Used only when the shadow
    left inside ``field`` (the rectangle) is at least :data:`OBLIQUE_MIN_FRACTION` of it:
    a shadow parallel to the sides lies outside the rectangle, and the line medians, which
    find its penumbra's foot, stay in charge."""
    plateau = image >= bright
    edge = np.zeros(image.shape, dtype=bool)
    edge[[0, -1], :] = True
    edge[:, [0, -1]] = True
    labels, _ = ndimage.label(plateau)
    # A shadow runs along the border; a dense bone or a metal nail that reaches it touches it
    # over its own width only.
    contact = np.bincount(labels[edge & plateau], minlength=1)
    contact[0] = 0
    shadow = np.isin(labels, np.flatnonzero(contact >= OBLIQUE_MIN_CONTACT * edge.sum()))
    if (shadow & field).sum() < OBLIQUE_MIN_FRACTION * max(int(field.sum()), 1):
        return None
    smooth = ndimage.uniform_filter(image.astype(np.float32), 3)
    ramp = ndimage.binary_dilation(shadow, iterations=max(int(np.ceil(penumbra_px)), 1), mask=shadow | (smooth > foot))
    return ~morph.dilate(ramp, 1.5)


def segment_radiograph(
    image: np.ndarray,
    spacing: tuple[float, float],
    *,
    saturated_value: float | None = None,
    min_body_area_mm2: float = 400.0,
    max_marker_area_mm2: float = 2500.0,
    min_bone_area_mm2: float = 60.0,
) -> Segmentation:
    """Find the field, body part, markers/labels and bone of one radiograph.

    Parameters
    ----------
    image : ndarray (rows, cols), float
        Bright = dense.
    spacing : (row_mm, col_mm)
        Pixel size used for every physical size below (a nominal one when unknown).
    saturated_value : float, optional
        Value of clipped pixels; small saturated objects are burned-in labels.
    min_body_area_mm2 : float
        Smaller non-background components are not anatomy (e.g. a marker holder).
    max_marker_area_mm2 : float
        Larger dense objects are never taken for a marker.
    min_bone_area_mm2 : float
        Smaller dense components are not bone (they may be deposits).
    """
    pixel_area = float(spacing[0] * spacing[1])
    field, widths = find_collimation(image, spacing)
    smooth = ndimage.gaussian_filter(image.astype(np.float32), sigma=[_px(0.4, spacing)] * 2)
    values = smooth[field]
    if values.size < 100:
        values = smooth.ravel()
    t_otsu = float(threshold_otsu(values))
    bright_vals = values[values >= t_otsu]
    tissue_level = float(np.median(bright_vals)) if bright_vals.size else t_otsu
    bg_level, t_body = _body_threshold(values[values < t_otsu], values.min(), tissue_level)
    if t_body >= t_otsu:
        # Air is a small part of the field (a thick thigh filling it): Otsu's dark class
        # then also holds the skin's ramp; take the background from the clearly dark values.
        low = float(np.percentile(values, 1.0))
        bg_level, t_body = _body_threshold(values[values < low + 0.5 * (t_otsu - low)], low, tissue_level)
    foreground = (smooth > t_body) & field

    # Dense objects: brighter than most tissue; markers and labels are surrounded by background.
    t_dense = t_otsu + 0.5 * (tissue_level - t_otsu)
    dense_labels, n_dense = ndimage.label((smooth >= t_dense) & field)
    excluded: list[ExcludedObject] = []
    exclusion = np.zeros(image.shape, dtype=bool)
    objects = ndimage.find_objects(dense_labels)
    pad = int(np.ceil(_px(3.0, spacing)))
    ring_in, ring_out = _px(0.6, spacing), _px(2.5, spacing)
    for idx, sl in enumerate(objects, start=1):
        if sl is None:
            continue
        r0, r1 = max(sl[0].start - pad, 0), min(sl[0].stop + pad, image.shape[0])
        c0, c1 = max(sl[1].start - pad, 0), min(sl[1].stop + pad, image.shape[1])
        obj = dense_labels[r0:r1, c0:c1] == idx
        area_px = int(obj.sum())
        if area_px * pixel_area > max_marker_area_mm2 or area_px * pixel_area < 2.0:
            continue
        crop = smooth[r0:r1, c0:c1]
        ring = morph.dilate(obj, ring_out) & ~morph.dilate(obj, ring_in)
        ring &= field[r0:r1, c0:c1]
        if not ring.any():
            continue
        saturated = saturated_value is not None and bool((image[r0:r1, c0:c1][obj] >= saturated_value).mean() > 0.5)
        # A marker lies outside the body: its surroundings are (nearly all) background.
        isolated = float((crop[ring] > t_body).mean()) < 0.3
        if not (isolated or saturated):
            continue
        kind = "label" if saturated else "marker"
        rr, cc = np.nonzero(obj)
        reason = (
            "saturated, sharp-edged object (burned-in annotation)"
            if kind == "label"
            else "small dense sharp-edged object surrounded by background (radiopaque marker)"
        )
        excluded.append(
            ExcludedObject(kind, float(rr.mean() + r0), float(cc.mean() + c0), area_px, (r0, c0, r1, c1), reason)
        )
        exclusion[r0:r1, c0:c1] |= morph.dilate(obj, _px(2.0, spacing))
    # Saturated pixels that escaped the dense threshold's components are labels too.
    if saturated_value is not None:
        exclusion |= morph.dilate((image >= saturated_value) & field, _px(1.5, spacing))

    body = foreground & ~exclusion
    body = morph.opening(body, _px(0.5, spacing))
    lab, n = ndimage.label(body)
    if n:
        sizes = ndimage.sum_labels(np.ones_like(lab), lab, index=np.arange(1, n + 1)) * pixel_area
        keep = np.flatnonzero((sizes >= min_body_area_mm2) & (sizes >= 0.05 * sizes.max())) + 1
        body = np.isin(lab, keep)
        body = ndimage.binary_fill_holes(body) & ~exclusion
    bone = find_bone(smooth, body, spacing, min_bone_area_mm2=min_bone_area_mm2)
    # The collimator penumbra cuts anatomy with a soft edge: keep detection 5 mm inside the field.
    objects_mask = exclusion
    exclusion = exclusion | ~morph.erode(field, _px(5.0, spacing))
    return Segmentation(field, body, bone, exclusion, tuple(excluded), widths, bg_level, t_body, objects_mask)


def _body_threshold(dark: np.ndarray, fallback: float, tissue_level: float) -> tuple[float, float]:
    """Background level and body threshold: 6 noise spreads or 15 % of the tissue contrast above it."""
    bg_level = float(np.median(dark)) if dark.size else float(fallback)
    bg_sigma = 1.4826 * float(np.median(np.abs(dark - bg_level))) if dark.size else 0.0
    return bg_level, bg_level + max(6.0 * bg_sigma, 0.15 * (tissue_level - bg_level))


def masked_mean(image: np.ndarray, mask: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian-weighted mean of ``image`` over ``mask`` only (normalised convolution)."""
    m = mask.astype(np.float32)
    num = ndimage.gaussian_filter(image * m, sigma_px, mode="nearest")
    den = ndimage.gaussian_filter(m, sigma_px, mode="nearest")
    return np.where(den > 1e-3, num / np.maximum(den, 1e-3), image)


def find_bone(
    smooth: np.ndarray,
    body: np.ndarray,
    spacing: tuple[float, float],
    *,
    min_bone_area_mm2: float = 60.0,
    min_edge_ratio: float = 1.8,
    fine_sigma_mm: float = 4.0,
    fine_fraction: float = 0.25,
    knob_mm: float = 5.0,
    knob_area_mm2: float = 30.0,
) -> np.ndarray:
    """Bone: body pixels clearly brighter than the surrounding tissue at the limb's scale.

    The soft-tissue thickness varies smoothly across a limb while bone has sharp
    edges, so bone stands out against a body-only Gaussian local mean whose width
    scales with the limb (a tenth of its largest width, 3-12 mm). Then:

    - bone ends beside a denser bone are grown in from a narrower local mean
      (``fine_sigma_mm``), where they touch the mask;
    - components whose outline gradient is below ``min_edge_ratio`` times the
      body's typical gradient (muscle humps) are dropped, and so are parts of the
      mask bounded mostly by weak outlines (see :func:`_drop_soft_parts`);
    - knobs narrower than ``knob_mm`` and smaller than ``knob_area_mm2`` (a
      deposit touching a bone) are cut off, so the deposit stays in soft tissue.
    """
    if not body.any():
        return np.zeros_like(body)
    width_mm = 2.0 * float(ndimage.distance_transform_edt(body).max()) * float(np.mean(spacing))
    sigma_mm = float(np.clip(width_mm / 10.0, 3.0, 12.0))
    residual = smooth - masked_mean(smooth, body, _px(sigma_mm, spacing))
    inner = body & morph.erode(body, _px(1.5, spacing))
    vals = residual[inner]
    if vals.size < 50:
        return np.zeros_like(body)
    t = float(threshold_otsu(vals))
    bone = (residual > max(t, 0.0)) & inner
    bone = morph.opening(bone, _px(0.75, spacing))
    if bone.any():
        # A bone end beside a much denser bone (a malleolus beside the talus) sinks below
        # the wide local mean. Against a narrow one (fine_sigma_mm) it stands out: grow the
        # bone into fine-scale bright tissue that touches it.
        fine = smooth - masked_mean(smooth, body, _px(fine_sigma_mm, spacing))
        t_fine = max(float(threshold_otsu(fine[inner])), 0.0)
        grow = morph.opening((fine > fine_fraction * t_fine) & inner, _px(0.75, spacing)) | bone
        lab_g, _ = ndimage.label(grow)
        touched = np.unique(lab_g[bone])
        bone = np.isin(lab_g, touched[touched > 0])
    bone = ndimage.binary_fill_holes(morph.closing(bone, _px(1.0, spacing)))
    lab, n = ndimage.label(bone)
    if n == 0:
        return bone
    index = np.arange(1, n + 1)
    sizes = ndimage.sum_labels(np.ones_like(lab), lab, index=index) * float(spacing[0] * spacing[1])
    # Bone has a sharp outline; the broad hump of a thick muscle or palm, which the
    # residual also lifts, has a soft one. Keep components whose outline gradient is
    # well above the gradient of the rest of the body part.
    grad = ndimage.gaussian_gradient_magnitude(smooth, _px(0.5, spacing))
    rest = inner & ~bone
    typical = float(np.median(grad[rest])) if rest.sum() > 50 else 0.0
    outline = bone & ~morph.erode(bone, 1.0)
    # Where a component meets the skin or the field edge its outline is that edge, not its own.
    outline &= morph.erode(inner, _px(2.0, spacing))
    edge = ndimage.median(grad, labels=np.where(outline, lab, 0), index=index)
    edge = np.nan_to_num(np.atleast_1d(np.asarray(edge, dtype=float)))
    keep = (sizes >= min_bone_area_mm2) & (edge >= min_edge_ratio * typical)
    bone = np.isin(lab, np.flatnonzero(keep) + 1) & body
    # A deposit touching a bone joins its mask as a small knob: cut knobs narrower than
    # knob_mm and smaller than knob_area_mm2 off (thin bones are long, so they stay).
    opened = morph.opening(bone, _px(knob_mm / 2.0, spacing))
    knobs, n_k = ndimage.label(bone & ~opened)
    if n_k:
        area_k = ndimage.sum_labels(np.ones_like(knobs), knobs, index=np.arange(1, n_k + 1))
        small = np.flatnonzero(area_k * float(spacing[0] * spacing[1]) < knob_area_mm2) + 1
        bone &= ~np.isin(knobs, small)
    bone = _drop_soft_parts(bone, grad, min_edge_ratio * typical, inner, spacing)
    lab, n = ndimage.label(bone)
    if n:
        sizes = ndimage.sum_labels(np.ones_like(lab), lab, index=np.arange(1, n + 1)) * float(spacing[0] * spacing[1])
        bone = np.isin(lab, np.flatnonzero(sizes >= min_bone_area_mm2) + 1)
    return bone


def _drop_soft_parts(bone: np.ndarray, grad: np.ndarray, strong_level: float, inner: np.ndarray, spacing) -> np.ndarray:
    """Remove parts of the bone mask bounded mostly by weak outlines.

    The mask is cut along strong edges (cortical outlines); a piece is dropped when
    the median gradient just outside it stays below half the strong level. A
    soft-tissue hump attached to a bone (the edge of a muscle belly) is bounded by
    its own weak outline; bone pieces are bounded by their cortex.
    """
    if not bone.any() or strong_level <= 0:
        return bone
    strong = grad >= strong_level
    pieces, n = ndimage.label(bone & ~strong)
    if n == 0:
        return bone
    ring_labels = ndimage.grey_dilation(pieces, footprint=np.ones((3, 3), dtype=bool))
    ring = (pieces == 0) & (ring_labels > 0) & morph.erode(inner, _px(2.0, spacing))
    index = np.arange(1, n + 1)
    level = np.atleast_1d(np.asarray(ndimage.median(grad, labels=np.where(ring, ring_labels, 0), index=index), dtype=float))
    weak = index[np.isfinite(level) & (level < DROP_FRACTION * strong_level)]
    if weak.size == 0:
        return bone
    return bone & ~np.isin(pieces, weak)
