"""Candidate deposits: threshold, noise model, bone separation, exclusion of what is not calcinosis."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import cc3d
import numpy as np
from scipy import ndimage as ndi

from calcinosis.anatomy.bone import split_bone
from calcinosis.anatomy.morphology import (
    distance_inside_mm,
    fill_holes_in_plane,
    label_counts,
    label_maximum,
    label_sum,
    margin_voxels,
)
from calcinosis.config import AnalysisConfig
from calcinosis.detect.faint import is_faint_deposit
from calcinosis.detect.hollow import deposits_on_bone_piece

# Seeds are found on a lightly smoothed image: noise drops several-fold, a 2 mm deposit hardly.
SMOOTH_SIGMA_MM = 0.6
# Raw-voxel seed level in noise SDs above soft tissue (two such voxels make a seed).
RAW_SEED_SIGMA = 6.5
# ... and at least this far above the threshold: bone fringe specks on quiet scans only
# graze it.
RAW_SEED_MARGIN_HU = 50.0
# One voxel alone is a seed this many noise SDs above soft tissue (noise: once in 10^17
# voxels), and this far above the threshold: a 2 mm deposit averaged into a 3 mm slice.
SINGLE_SEED_SIGMA = 8.5
SINGLE_SEED_MARGIN_HU = 150.0
# A gap between a deposit and bone shows as a valley at least this deep (HU) in the smoothed image.
BONE_SPLIT_MIN_H_HU = 60.0
# A bone-sized structure with fewer voxels than this share at metal level is bone with
# enamel (teeth) or a few saturated voxels, not metal.
TOOTH_METAL_FRACTION = 0.02
# Deposits are split from bone only on slices up to this thick (mm).
MAX_SPLIT_SLICE_MM = 3.5
# Depth (mm, in-plane) below which the core of a possible bone piece starts.
HOLLOW_CORE_DEPTH_MM = 2.0
# Larger dense pieces attached to bone are taken as bone (ossification, cartilage), not split off.
MAX_ATTACHED_DEPOSIT_MM3 = 2500.0


@dataclass(frozen=True)
class Excluded:
    """A dense object that is not a lesion, and why."""

    reason: str  # table | external_object | external_metal | metal | bone | rib_cage | costal_cartilage
    volume_mm3: float
    peak_hu: float
    centroid_index: tuple[float, float, float]  # (z, y, x) on the cropped grid


@dataclass(frozen=True, eq=False)
class Detection:
    """Lesion labels (1..N) and bone on the cropped grid, with what was excluded."""

    labels: np.ndarray
    bone: np.ndarray
    excluded: tuple[Excluded, ...]
    seed_threshold_hu: float
    noise_smoothed_hu: float
    notes: tuple[str, ...] = field(default_factory=tuple)


def smoothed(hu: np.ndarray, spacing_zyx, *, chunk: int = 32) -> np.ndarray:
    """Gaussian-smoothed HU (float32), computed in slabs along z to bound memory."""
    sigma = tuple(max(0.5, SMOOTH_SIGMA_MM / float(s)) if s < 2.0 else 0.0 for s in spacing_zyx)
    pad = int(np.ceil(4 * sigma[0])) if sigma[0] else 0
    out = np.empty(hu.shape, np.float32)
    nz = hu.shape[0]
    for z0 in range(0, nz, chunk):
        z1 = min(z0 + chunk, nz)
        a, b = max(z0 - pad, 0), min(z1 + pad, nz)
        block = ndi.gaussian_filter(hu[a:b].astype(np.float32), sigma, mode="nearest")
        out[z0:z1] = block[z0 - a:z1 - a]
    return out


def detect_lesions(
    hu: np.ndarray,
    body: np.ndarray,
    spacing_zyx,
    config: AnalysisConfig,
    *,
    tissue_level_hu: float,
    noise_smoothed_hu: float,
    noise_hu: float | None = None,
) -> Detection:
    """Find deposits in a body-cropped CT (``hu``, ``[z, y, x]``) and label them 1..N.

    Steps: threshold at ``config.threshold_hu``; connected components (26-connected);
    objects mostly outside the body are table or external objects; objects reaching
    ``config.metal_hu`` are metal; large structures are bone, with attached deposits
    split off; what is left is kept when it has a seed: a voxel whose smoothed value
    exceeds ``tissue_level_hu + seed_sigma * noise_smoothed_hu`` (and the threshold), or,
    for deposits too small to survive the smoothing, two voxels whose raw value exceeds
    ``tissue_level_hu + RAW_SEED_SIGMA * noise_hu`` (noise reaches that once in 10^10 voxels)
    and the threshold by ``RAW_SEED_MARGIN_HU``.
    """
    vv = float(np.prod(spacing_zyx))
    thr = config.threshold_hu
    seed_thr = max(thr, tissue_level_hu + config.seed_sigma * noise_smoothed_hu)
    single_thr = max(thr + SINGLE_SEED_MARGIN_HU,
                     tissue_level_hu + SINGLE_SEED_SIGMA * (noise_hu if noise_hu else 3 * noise_smoothed_hu))
    raw_thr = max(thr + RAW_SEED_MARGIN_HU,
                  tissue_level_hu + RAW_SEED_SIGMA * (noise_hu if noise_hu else 3 * noise_smoothed_hu))
    split_h = max(BONE_SPLIT_MIN_H_HU, 1.6 * config.seed_sigma * noise_smoothed_hu)
    dense = hu >= thr
    labels, n = cc3d.connected_components(dense, connectivity=26, return_N=True, out_dtype=np.uint32)
    out = np.zeros(hu.shape, np.uint32)
    bone = np.zeros(hu.shape, bool)
    excluded: list[Excluded] = []
    if n == 0:
        return Detection(out.astype(np.uint16), bone, (), seed_thr, noise_smoothed_hu)
    idx = np.arange(1, n + 1)
    counts = label_counts(labels, n)[1:]
    inside = label_sum(body, labels, n)[1:] / np.maximum(counts, 1)
    peak = label_maximum(hu, labels, n)[1:]
    smooth = smoothed(hu, spacing_zyx)
    seed_peak = label_maximum(smooth, labels, n)[1:]
    raw_seeds = label_sum(hu >= raw_thr, labels, n)[1:]
    boxes = ndi.find_objects(labels)
    extent = np.array([
        max((s.stop - s.start) * sp for s, sp in zip(b, spacing_zyx)) if b else 0.0 for b in boxes
    ])
    volume = counts * vv
    body_box_y = _body_y_range(body)
    margin = margin_voxels(spacing_zyx, 4.0)
    next_label = 1

    def exclude(i: int, reason: str) -> None:
        box = boxes[i - 1]
        local = labels[box] == i
        c = np.array(ndi.center_of_mass(local)) + [s.start for s in box]
        excluded.append(Excluded(reason, float(volume[i - 1]), float(peak[i - 1]), tuple(c)))

    for i in idx:
        k = i - 1
        if counts[k] == 0:
            continue
        big = volume[k] >= config.bone_min_volume_mm3 or extent[k] >= config.bone_min_extent_mm
        if inside[k] < 0.5:
            if peak[k] >= config.metal_hu:
                exclude(i, "external_metal")
            elif big or volume[k] >= 50.0:
                y_mid = (boxes[k][1].start + boxes[k][1].stop) / 2
                exclude(i, "table" if body_box_y and y_mid > body_box_y[1] else "external_object")
            continue  # specks of noise outside the body are not worth a line
        if peak[k] >= config.metal_hu and not (big and _metal_fraction(hu, labels, boxes[k], i,
                                                                       config.metal_hu) < TOOTH_METAL_FRACTION):
            # Jewellery, ECG buttons and clothing fasteners lie on the skin: part of them is
            # outside the body. An implant is wholly inside. (A skeleton whose few densest
            # voxels reach metal level, tooth enamel, stays bone.)
            exclude(i, "external_metal" if inside[k] < 1.0 else "metal")
            continue
        if big:
            box = _grow(boxes[k], margin, hu.shape)
            exclude(i, "bone")
            if spacing_zyx[0] > MAX_SPLIT_SLICE_MM:
                # On thick slices the bone's own texture and partial volume make valleys
                # everywhere: pieces split off would be bone, not deposits. No split.
                bone[box] |= fill_holes_in_plane(labels[box] == i)
                continue
            split = split_bone(
                labels[box] == i, smooth[box], spacing_zyx,
                h_hu=split_h,
                max_deposit_volume_mm3=min(config.bone_min_volume_mm3, MAX_ATTACHED_DEPOSIT_MM3),
                is_bone_piece=lambda sub, piece: is_hollow(hu[box][sub], piece, spacing_zyx, thr),
            )
            bone[box] |= split.bone
            for sub, dep in split.deposits:
                where = tuple(slice(b.start + s.start, b.start + s.stop) for b, s in zip(box, sub))
                if is_hollow(hu[where], dep, spacing_zyx, thr):
                    continue  # a piece of the bone's own cortex and marrow
                if smooth[where][dep].max() >= seed_thr and dep.sum() * vv >= config.min_volume_mm3:
                    out[where][dep] = next_label
                    next_label += 1
            continue
        if volume[k] < config.min_volume_mm3 or (
                seed_peak[k] < seed_thr and raw_seeds[k] < 2 and peak[k] < single_thr
                and not is_faint_deposit(smooth, labels, boxes[k], i, spacing_zyx, n_voxels=int(counts[k]),
                                         seed_peak_hu=float(seed_peak[k]), noise_smoothed_hu=noise_smoothed_hu)):
            continue  # noise speck or partial-volume fringe
        if is_hollow(hu[boxes[k]], labels[boxes[k]] == i, spacing_zyx, thr):
            # A cortical shell round a marrow space: a piece of bone (a rib or a process cut
            # across by the slices), or ring-calcified skeletal cartilage, not a deposit.
            exclude(i, "bone")
            piece = labels[boxes[k]] == i
            for dep in deposits_on_bone_piece(hu[boxes[k]], smooth[boxes[k]], piece, spacing_zyx, threshold_hu=thr,
                                              h_hu=split_h, max_deposit_volume_mm3=MAX_ATTACHED_DEPOSIT_MM3,
                                              is_hollow=is_hollow):
                out[boxes[k]][dep] = next_label
                next_label += 1
                piece &= ~dep
            bone[boxes[k]] |= piece
            continue
        out[boxes[k]][labels[boxes[k]] == i] = next_label
        next_label += 1
    notes = tuple(f"{v} {r}" for r, v in sorted(Counter(e.reason for e in excluded).items()))
    dtype = np.uint16 if next_label < 65535 else np.uint32
    return Detection(out.astype(dtype), bone, tuple(excluded), seed_thr, noise_smoothed_hu, notes)


def is_hollow(hu: np.ndarray, mask: np.ndarray, spacing_zyx, threshold_hu: float) -> bool:
    """True when the object is a dense shell round a less dense core (bone cortex and marrow).

    The core is the part deeper than 2 mm from the object's edge in its slice. A calcified
    deposit is densest in its core (partial volume only lowers its rim); a piece of bone
    has its marrow there. Hollow means the core's median HU lies below the midpoint
    between the threshold and the object's 90th percentile.
    """
    # Marrow may fall below the threshold (partial volume): it is then a hole in the mask.
    solid = np.pad(fill_holes_in_plane(mask), ((0, 0), (1, 1), (1, 1)))  # the box edge is outside
    depth = distance_inside_mm(solid, spacing_zyx, in_plane=True)[:, 1:-1, 1:-1]
    core = depth >= HOLLOW_CORE_DEPTH_MM
    if core.sum() < 5:
        return False
    vals = hu[mask]
    p90 = float(np.percentile(vals, 90))
    return float(np.median(hu[core])) < threshold_hu + 0.5 * (p90 - threshold_hu)


def _metal_fraction(hu, labels, box, label, metal_hu) -> float:
    mask = labels[box] == label
    return float((hu[box][mask] >= metal_hu).sum()) / max(int(mask.sum()), 1)


def _grow(box, margin, shape):
    return tuple(slice(max(s.start - m, 0), min(s.stop + m, n)) for s, m, n in zip(box, margin, shape))


def _body_y_range(body: np.ndarray):
    ys = np.flatnonzero(body.any(axis=(0, 2)))
    return (int(ys[0]), int(ys[-1])) if ys.size else None
