"""Find and measure calcified deposits on a radiograph.

Method
------
1. Local contrast: the lightly smoothed image minus a body-only Gaussian local
   mean at two scales (1.5 mm and 4 mm), so that small and large foci stand
   out while the smooth soft-tissue thickness profile does not.
2. Noise: the robust spread (1.4826 x MAD) of that contrast, measured apart in
   flat soft tissue (at least 2 mm from bone and 3 mm from the skin, whose
   curvature is anatomy, not texture) and over bone (where trabecular texture
   and cortical edges raise it); never below the propagated pixel noise. Seeds
   must exceed ``k_soft`` (``k_bone`` over bone and within ``bone_margin_mm``
   of it) times that noise; the deposit extent grows by hysteresis down to
   3 x noise, at most ``grow_limit_mm`` from the seeds. Saturated markers and
   labels are filled with their surroundings' mean before filtering.
3. Shape: long thin responses (cortical edges, skin folds) are dropped, and so
   are responses at concave corners of the skin outline (finger webs).
4. Measurement: a plane fitted to a ring around each candidate (over bone: a
   second-order surface fitted to the ring's bone pixels) is its local
   background; the deposit is the connected area above
   ``max(3 x noise, 25 % of its peak)``; area, intensity-weighted centroid,
   peak contrast and density relative to nearby cortical bone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.feature import hessian_matrix, hessian_matrix_eigvals

from calcinosis.radiograph.axial import AxialConfig, axial_contrast
from calcinosis.radiograph import morph
from calcinosis.radiograph.segment import _px, masked_mean


#: Smallest share of the background ring on the deposit's own tissue (bone or soft tissue)
#: for the fit to use that share alone; less (a deposit on a thin bone's tip) and the whole
#: ring is used.
MIN_SAME_TISSUE_RING = 0.3


#: Smallest piece (mm²) that counts as bone left either side of a finding crossing a bone.
MIN_BONE_PIECE_MM2 = 4.0


@dataclass(frozen=True)
class DetectConfig:
    """Detection settings (all sizes in mm)."""

    smoothing_mm: float = 0.25
    scales_mm: tuple[float, ...] = (0.6, 1.2, 2.4)
    k_soft: float = 8.0
    k_bone: float = 7.0
    k_grow: float = 3.0
    min_area_mm2: float = 1.2
    max_area_mm2: float = 3000.0
    max_elongation: float = 3.5
    peak_fraction: float = 0.25
    max_bone_scale_mm: float = 1.2
    grow_limit_mm: float = 1.5
    texture_clearance_mm: float = 2.0
    bone_margin_mm: float = 1.0
    notch_radius_mm: float = 4.0
    notch_clearance_mm: float = 3.5
    k_axial: float = 8.0
    k_axial_blob: float = 5.2
    bone_part_cover: float = 0.9
    bone_end_touch_mm: float = 4.0
    bone_part_ratio: float = 3.0
    axial: AxialConfig = AxialConfig()


@dataclass(frozen=True)
class Candidate:
    """One measured deposit, in pixel units; :mod:`analysis` adds mm and the area."""

    mask_slice: tuple[slice, slice]
    mask: np.ndarray  # bool, shape of the slice
    row_px: float
    col_px: float
    area_px: int
    peak_contrast: float
    background: np.ndarray  # fitted background on the slice (for in-painting)
    z_peak: float
    elongation: float


def blobness(smooth: np.ndarray, sigma_px: float) -> np.ndarray:
    """Scale-normalised blob response: ``-sigma**2 * lambda_max`` of the Hessian.

    Positive only where the image curves down in *every* direction (a focus);
    near zero along ridges and edges (cortex, skin, finger outlines), whatever
    their contrast.
    """
    h = hessian_matrix(smooth, sigma=sigma_px, order="rc", use_gaussian_derivatives=True)
    eig = hessian_matrix_eigvals(h)  # sorted, largest first
    return (-(sigma_px**2) * eig[0]).astype(np.float32)


def pixel_noise_sigma(image: np.ndarray, mask: np.ndarray) -> float:
    """Standard deviation of the pixel noise (Immerkaer's Laplacian-difference estimate) in ``mask``."""
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
    resp = np.abs(ndimage.convolve(image.astype(np.float64), kernel, mode="nearest"))
    vals = resp[mask] if mask.any() else resp.ravel()
    # median rather than mean: robust to edges; 0.6745 turns the median of |N(0, s)| into s
    return float(np.median(vals) / 0.6745 / 6.0)


def _blob_noise(pixel_sigma: float, spacing, config: "DetectConfig") -> dict[float, float]:
    """Spread of the blob response to white noise of ``pixel_sigma``, per scale (seeded, deterministic)."""
    field = np.random.default_rng(12345).normal(0.0, pixel_sigma, size=(192, 192)).astype(np.float32)
    field = ndimage.gaussian_filter(field, _px(config.smoothing_mm, spacing))
    out = {}
    for s in config.scales_mm:
        b = blobness(field, _px(s, spacing))[24:-24, 24:-24]
        out[s] = _robust(b.ravel())[1]
    return out


def _robust(values: np.ndarray) -> tuple[float, float]:
    if values.size < 20:
        return 0.0, 1.0
    med = float(np.median(values))
    return med, max(1.4826 * float(np.median(np.abs(values - med))), 1e-6)


def detect_deposits(
    image: np.ndarray,
    spacing: tuple[float, float],
    body: np.ndarray,
    bone: np.ndarray,
    exclusion: np.ndarray,
    config: DetectConfig = DetectConfig(),
    fill_mask: np.ndarray | None = None,
) -> tuple[list[Candidate], dict[str, float]]:
    """Detect deposits in the body; returns candidates and the measured noise levels.

    ``fill_mask`` marks saturated objects (markers, burned-in labels) to be replaced
    by the mean of their surroundings before filtering.
    """
    region = body & ~exclusion
    # Burned-in labels and markers are saturated: fill them with the mean of their
    # surroundings first, or the wide filters carry their edges into nearby tissue.
    work = image.astype(np.float32)
    if fill_mask is not None and fill_mask.any():
        filled = masked_mean(work, ~fill_mask, _px(2.0, spacing))
        work = np.where(fill_mask, filled, work).astype(np.float32)
    smooth = ndimage.gaussian_filter(work, _px(config.smoothing_mm, spacing))
    if not region.any():
        return [], {"soft_tissue_noise": float("nan"), "bone_noise": float("nan")}
    inner = region & morph.erode(region, _px(1.0, spacing))
    soft = inner & ~bone
    bone_in = inner & bone
    # Texture is measured in flat soft tissue only: away from bone edges and the skin
    # outline, whose curvature is anatomy, not texture.
    clear = _px(config.texture_clearance_mm, spacing)
    flat = soft & (ndimage.distance_transform_edt(~bone) > clear) & (ndimage.distance_transform_edt(region) > clear + _px(1.0, spacing))
    if flat.sum() < 200:
        flat = soft
    # Cortical edges sit just outside a threshold-made bone mask: treat a thin margin as bone.
    bone_zone = bone | (ndimage.distance_transform_edt(~bone) <= _px(config.bone_margin_mm, spacing))
    z = np.full(image.shape, -np.inf, dtype=np.float32)
    z_bone = np.full(image.shape, -np.inf, dtype=np.float32)  # blob response over bone (all scales), in bone noise units
    pixel_noise = pixel_noise_sigma(image, soft if soft.sum() > 100 else region)
    blob_noise = _blob_noise(pixel_noise, spacing, config)
    noise: dict[str, float] = {"pixel_noise": pixel_noise}
    for s in config.scales_mm:
        blob = blobness(smooth, _px(s, spacing))
        # Broad domes (a palm, a thick limb) curve everywhere: remove their slowly varying response.
        blob = blob - masked_mean(blob, region, _px(4.0 * s, spacing))
        # The threshold unit is the larger of the propagated pixel noise and the
        # soft-tissue texture (robust spread of the response): anatomy curves too.
        ms, ss = _robust(blob[flat])
        ss = max(ss, blob_noise[s], 1e-6)
        mb, sb = _robust(blob[bone_in]) if bone_in.sum() > 50 else (ms, ss)
        sb = max(sb, ss)
        zb = (blob - mb) / sb * (config.k_soft / config.k_bone)
        # Every scale counts for the along-axis test, which itself leaves bone ends, joints
        # and condyles out: a deposit of 6 mm over the femur is a broad dome that the small
        # scales see only faintly (blob z 5.0-6.2 by the noise draw; missed in one of four).
        np.maximum(z_bone, (blob - mb) / sb, out=z_bone)
        if s > config.max_bone_scale_mm:
            zb = np.full_like(zb, -np.inf)  # bone ends and condyles are broad domes: small scales only
        zs = np.where(bone_zone, zb, (blob - ms) / ss)
        z = np.maximum(z, zs.astype(np.float32))
        noise[f"blob_noise_soft_tissue_{s:g}mm"] = ss
        noise[f"blob_noise_bone_{s:g}mm"] = sb
    z[~region] = -np.inf
    zf = np.where(np.isfinite(z), z, -1e9)
    seeds = zf >= config.k_soft
    # Over a long-bone shaft a second, weaker focus counts when it is also brighter than
    # the bone before and after it along the axis (see :mod:`axial`): the bone's own
    # profile (cortex, marrow, ends) cannot do both.
    contrast, axial_ok = axial_contrast(smooth, bone, spacing, config.axial)
    if axial_ok.sum() > 50:
        ma, sa = _robust(contrast[axial_ok])
        sa = max(sa, pixel_noise * 0.5)
        za = np.where(axial_ok & region, (contrast - ma) / sa, -np.inf)
        seeds |= (za >= config.k_axial) & (z_bone >= config.k_axial_blob)
        noise["axial_noise"] = sa
    weak = zf >= config.k_grow
    lab_weak, _ = ndimage.label(weak)
    grown = np.isin(lab_weak, np.unique(lab_weak[seeds & weak])) & (lab_weak > 0)
    # Growth stays near the seeds: otherwise a deposit touching a faint ridge (a fascia,
    # a cortical edge) grows along it and is then dropped as a line.
    grown &= morph.dilate(seeds, _px(config.grow_limit_mm, spacing))
    labels, n = ndimage.label(grown)
    # Concave corners of the skin outline (finger webs, the thumb's base): closing the
    # body fills them; they answer the blob filter as a focus would.
    rad = int(np.ceil(_px(config.notch_radius_mm, spacing)))
    padded = np.pad(body, rad)
    notches = (morph.closing(padded, _px(config.notch_radius_mm, spacing)) & ~padded)[rad:-rad, rad:-rad]
    notch_dist = ndimage.distance_transform_edt(~notches) if notches.any() else np.full(body.shape, np.inf)
    notch_clear = _px(config.notch_clearance_mm, spacing)
    pixel_area = float(spacing[0] * spacing[1])
    out: list[Candidate] = []
    for idx, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        comp = labels[sl] == idx
        area = int(comp.sum())
        if area * pixel_area < config.min_area_mm2 or area * pixel_area > config.max_area_mm2:
            continue
        elong = _elongation(comp)
        length_mm = np.sqrt(area * pixel_area) * np.sqrt(elong)
        if elong > config.max_elongation and length_mm > 4.0:
            continue  # a line (cortical edge, skin fold), not a deposit
        cand = _measure(smooth, labels, idx, sl, region, bone, spacing, pixel_noise, z, config)
        if cand is not None and notch_dist[int(round(cand.row_px)), int(round(cand.col_px))] <= notch_clear:
            continue  # a web between fingers: the skin outline bends round it like a blob
        if cand is not None and _part_of_bone_outline(cand, smooth, bone, region, spacing, config):
            continue  # a bone end's cap or a joint's plates, not a deposit over the bone
        if cand is not None and cand.area_px * pixel_area >= config.min_area_mm2:
            out.append(cand)
    out.sort(key=lambda c: (round(c.row_px, 3), round(c.col_px, 3)))
    return out, noise


def _part_of_bone_outline(cand: Candidate, smooth: np.ndarray, bone: np.ndarray, region: np.ndarray, spacing,
                          config: DetectConfig) -> bool:
    """Whether a finding lying on bone is a piece of the bone's own outline.

    A bone end's cortical cap and the dense plates either side of a joint are brighter than the
    shaft round them and curve like a focus; with more scatter (a lower contrast, a lower
    noise) they pass the blob and along-axis tests (hand phantom, scatter 0.3: nine fingertip
    tufts and finger joints). A deposit over a bone lies inside its outline; such a piece
    either caps the bone's end (it runs along ``bone_end_touch_mm`` or more of the outline) or
    crosses the bone from edge to edge (the bone falls apart in two without it). Only findings
    at least ``bone_part_cover`` on bone are judged, and only against a bone at least
    ``bone_part_ratio`` times their area, and only when fainter over the bone than the bone
    is over the soft tissue beside it: a deposit the bone mask swallowed is not a bone's part.
    """
    r0, c0 = cand.mask_slice[0].start, cand.mask_slice[1].start
    b_box = bone[cand.mask_slice]
    if not b_box.any() or float(b_box[cand.mask].mean()) < config.bone_part_cover:
        return False
    grow = int(np.ceil(_px(6.0, spacing)))
    rr, cc = np.nonzero(cand.mask)
    R0, C0 = max(r0 + rr.min() - grow, 0), max(c0 + cc.min() - grow, 0)
    R1, C1 = min(r0 + rr.max() + grow + 1, bone.shape[0]), min(c0 + cc.max() + grow + 1, bone.shape[1])
    mask = np.zeros((R1 - R0, C1 - C0), dtype=bool)
    mask[rr + r0 - R0, cc + c0 - C0] = True
    near = morph.dilate(mask, _px(0.5, spacing))
    b = bone[R0:R1, C0:C1]
    lab, _ = ndimage.label(b)
    touched = np.unique(lab[mask])
    touched = touched[touched > 0]
    if touched.size == 0:
        return False
    own = np.isin(lab, touched)
    if own.sum() < config.bone_part_ratio * mask.sum():
        return False
    sm = smooth[R0:R1, C0:C1]
    beside = region[R0:R1, C0:C1] & ~morph.dilate(b, _px(1.0, spacing))
    rest = own & ~near
    if beside.sum() < 20 or rest.sum() < 20:
        return False
    # A part of the bone stands out from the bone less than the bone from the soft tissue
    # beside it (hand phantom: 0.65-0.85 of it); a dense deposit that a faint false bone (the
    # edge of a muscle at high scatter) swallowed stands out three times as much.
    if cand.peak_contrast >= float(np.median(sm[rest]) - np.median(sm[beside])):
        return False
    outline = own & ~morph.erode(own, 1.0)
    # Where the window cuts the bone, its border is no outline.
    outline[[0, -1], :] = outline[:, [0, -1]] = False
    mm_per_px = float(np.mean(spacing))
    if (outline & near).sum() * mm_per_px >= config.bone_end_touch_mm:
        return True
    pieces, n = ndimage.label(own & ~near)
    if n < 2:
        return False
    sizes = ndimage.sum_labels(np.ones_like(pieces), pieces, index=np.arange(1, n + 1)) * float(spacing[0] * spacing[1])
    return int((sizes >= MIN_BONE_PIECE_MM2).sum()) >= 2


def _elongation(comp: np.ndarray) -> float:
    rr, cc = np.nonzero(comp)
    if rr.size < 3:
        return 1.0
    cov = np.cov(np.vstack([rr, cc]).astype(float)) + np.eye(2) / 12.0
    ev = np.sort(np.linalg.eigvalsh(cov))
    return float(np.sqrt(ev[1] / max(ev[0], 1e-9)))


def _measure(smooth, labels, idx, sl, region, bone, spacing, pixel_noise, z, config) -> Candidate | None:
    comp0 = labels[sl] == idx
    eq_diam_px = 2 * np.sqrt(comp0.sum() / np.pi)
    margin = int(np.ceil(max(_px(4.0, spacing), 1.0 * eq_diam_px)))
    r0, c0 = max(sl[0].start - margin, 0), max(sl[1].start - margin, 0)
    r1, c1 = min(sl[0].stop + margin, smooth.shape[0]), min(sl[1].stop + margin, smooth.shape[1])
    box = (slice(r0, r1), slice(c0, c1))
    crop = smooth[box].astype(np.float64)
    comp = labels[box] == idx
    others = (labels[box] > 0) & ~comp
    valid = region[box] & ~others
    rr, cc = np.mgrid[0 : r1 - r0, 0 : c1 - c0]
    mask = comp
    limit = morph.dilate(comp, _px(config.grow_limit_mm, spacing))
    # The background is fitted on the tissue the deposit lies on: over a bone, the bone round
    # it. A ring that reaches past the bone's edge into the darker soft tissue tilts the plane
    # below the bone, whose own pixels then pass the level: deposits over a metacarpal or the
    # carpals were measured two to two and a half times their true footprint.
    on_bone = float(bone[box][comp].mean()) >= 0.5
    same_tissue = bone[box] if on_bone else ~bone[box]
    bg = np.zeros_like(crop)
    for _ in range(2):  # fit the background on a ring, re-segment, refit on the new ring
        ring = morph.dilate(mask, _px(3.0, spacing)) & ~morph.dilate(mask, _px(1.0, spacing))
        ring &= valid
        if ring.sum() < 8:
            return None
        same = ring & same_tissue
        if same.sum() >= max(8, MIN_SAME_TISSUE_RING * ring.sum()):
            ring = same
        bg = _fit_plane(crop, ring, rr, cc, quadratic=on_bone)
        diff = crop - bg
        peak = float(diff[comp].max())
        if peak <= 0:
            return None
        level = max(config.k_grow * pixel_noise * 0.5, config.peak_fraction * peak)
        above = (diff >= level) & valid
        lab, _ = ndimage.label(above)
        seeds = np.unique(lab[comp & above])
        seeds = seeds[seeds > 0]
        if seeds.size == 0:
            return None
        mask = np.isin(lab, seeds) & limit
    diff = crop - bg
    w = np.clip(diff, 0, None) * mask
    total = float(w.sum())
    if total <= 0:
        return None
    return Candidate(
        mask_slice=box,
        mask=mask,
        row_px=float((w * rr).sum() / total + r0),
        col_px=float((w * cc).sum() / total + c0),
        area_px=int(mask.sum()),
        peak_contrast=float(diff[mask].max()),
        background=bg,
        z_peak=float(z[sl][comp0].max()),
        elongation=_elongation(mask),
    )


def _fit_plane(crop, ring, rr, cc, quadratic=False) -> np.ndarray:
    """Least-squares plane through the ring values, trimming bright outliers (bone edges) once.

    ``quadratic``: a second-order surface instead, for a background that curves under the
    deposit (a bone's cross-section, a bone end).
    """
    y = crop[ring]
    r0, c0 = float(rr[ring].mean()), float(cc[ring].mean())
    terms = [np.ones(crop.shape), rr - r0, cc - c0]
    if quadratic:
        terms += [(rr - r0) ** 2, (rr - r0) * (cc - c0), (cc - c0) ** 2]
    a = np.column_stack([t[ring] for t in terms])
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    resid = y - a @ coef
    med, sd = _robust(resid)
    keep = resid <= med + 2.5 * sd
    if keep.sum() >= 8:
        coef, *_ = np.linalg.lstsq(a[keep], y[keep], rcond=None)
    return sum(k * t for k, t in zip(coef, terms))


def inpaint_deposits(smooth: np.ndarray, candidates: list[Candidate]) -> np.ndarray:
    """A copy of ``smooth`` with each deposit replaced by its fitted local background."""
    out = smooth.copy()
    for c in candidates:
        view = out[c.mask_slice]
        view[c.mask] = c.background[c.mask]
    return out
