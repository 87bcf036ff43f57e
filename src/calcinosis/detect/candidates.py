"""Candidate deposits: threshold, noise model, bone separation, exclusion of what is not calcinosis."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from calcinosis.anatomy.bone import HOLLOW_CORE_DEPTH_MM, THIN_SLICE_MM, apart_and_solid, marrow_in_core, split_bone
from calcinosis.anatomy.components import label_components
from calcinosis.anatomy.disk import core_in_plane
from calcinosis.anatomy.morphology import (
    fill_holes_in_plane,
    grow_box,
    margin_voxels,
)
from calcinosis.anatomy.raw_peak import RAW_PEAK_SIGMA
from calcinosis.config import AnalysisConfig
from calcinosis.detect.bones import (
    BONE_MARGIN_MM,
    TOOTH_METAL_FRACTION,
    BonePrep,
    DetectionStart,
    coarse_pixels,
    prepare_bones,
    splits_bone,
    start_detection,
)
from calcinosis.detect.faint import is_faint_deposit
from calcinosis.detect.hollow import deposits_on_bone_piece, fill_holes_in_plane_box
from calcinosis.detect.metal import PARTIAL_METAL_SHARE, deposits_beside_object
from calcinosis.detect.smoothing import SMOOTH_SIGMA_MM, SmoothedHU, smoothing_sigma
from calcinosis.sparse_zeros import sparse_zeros
from calcinosis.threads import n_threads, over_slabs

__all__ = ["SMOOTH_SIGMA_MM", "Detection", "Excluded", "detect_lesions", "is_hollow", "smoothed",
           "start_detection"]

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
# Larger dense pieces attached to bone are taken as bone (ossification, cartilage), not split off.
MAX_ATTACHED_DEPOSIT_MM3 = 2500.0


@dataclass(frozen=True)
class Excluded:
    """A dense object that is not a lesion, and why."""

    reason: str  # a key of calcinosis.report.summary.EXCLUSION_REASONS (table, metal, bone, rib_cage, ...)
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
    boxes: tuple[tuple[slice, slice, slice], ...] = ()  # tight box of each lesion label 1..N
    # Labels of the lesions split off a bone (a large bone's split, or a rib piece's).
    from_bone: frozenset[int] = frozenset()


# An external object is searched for deposits joined to it on the box of its voxels in the body
# grown by this margin (mm): beyond it, nothing of it can touch a deposit in the skin.
OBJECT_MARGIN_MM = 10.0


def smoothed(hu: np.ndarray, spacing_zyx, *, chunk: int = 32, dtype=np.float32) -> np.ndarray:
    """Gaussian-smoothed HU, computed in slabs along z to bound memory (on
    :func:`~calcinosis.threads.n_threads` threads: ``ndimage`` releases the GIL).

    ``dtype`` float32, or int16 (rounded to whole HU: half the memory of float32, and no
    seed or valley rule is finer than a few HU)."""
    sigma = smoothing_sigma(spacing_zyx)
    pad = int(np.ceil(4 * sigma[0])) if sigma[0] else 0
    out = np.empty(hu.shape, dtype)
    nz = hu.shape[0]

    def slab(z_start: int, z_stop: int) -> None:
        for z0 in range(z_start, z_stop, chunk):
            z1 = min(z0 + chunk, z_stop)
            a, b = max(z0 - pad, 0), min(z1 + pad, nz)
            part = ndi.gaussian_filter(hu[a:b], sigma, mode="nearest", output=np.float32)[z0 - a:z1 - a]
            out[z0:z1] = part if dtype == np.float32 else np.rint(part)

    over_slabs(slab, nz, n_threads(), hu.size)
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
    smooth_hu: np.ndarray | SmoothedHU | None = None,
    out: np.ndarray | None = None,
    start: DetectionStart | None = None,
    while_waiting: Callable[[], None] | None = None,
) -> Detection:
    """Find deposits in a body-cropped CT (``hu``, ``[z, y, x]``) and label them 1..N.

    Steps: threshold at ``config.threshold_hu``; connected components (26-connected);
    objects mostly outside the body are table or external objects; objects reaching
    ``config.metal_hu`` are metal; large structures are bone, with attached deposits
    split off; what is left is kept when it has a seed: a voxel whose smoothed value
    exceeds ``tissue_level_hu + seed_sigma * noise_smoothed_hu`` (and the threshold), or,
    for deposits too small to survive the smoothing, two voxels whose raw value exceeds
    ``tissue_level_hu + RAW_SEED_SIGMA * noise_hu`` (noise reaches that once in 10^10 voxels)
    and the threshold by ``RAW_SEED_MARGIN_HU``. ``smooth_hu``, when given, is
    :func:`smoothed` of ``hu`` (int16) or a :class:`~calcinosis.detect.smoothing.SmoothedHU`
    of it, made by the caller; else the smoothed image is computed where it is read.
    ``out``, when given, is a zeroed uint16 array (a view of the caller's full-grid label
    map, say) that the labels are written into and returned as ``Detection.labels`` (unless
    more than 65534 lesions make a wider copy necessary). ``start``, when given, is
    :func:`~calcinosis.detect.bones.start_detection` of the same ``hu``, ``body``, spacing
    and config (its components and bones, computed while the caller estimated the noise).
    ``while_waiting``, when given, is called once in this thread when the components have
    been looked at and the bones' splits (in a worker) are waited for: the caller's work that
    needs no detection result fills that wait (it is called with nothing to wait for too,
    but not when there is no component at all).
    """
    vv = float(np.prod(spacing_zyx))
    thr = config.threshold_hu
    seed_thr = max(thr, tissue_level_hu + config.seed_sigma * noise_smoothed_hu)
    raw_noise = noise_hu if noise_hu else 3 * noise_smoothed_hu
    single_thr = max(thr + SINGLE_SEED_MARGIN_HU, tissue_level_hu + SINGLE_SEED_SIGMA * raw_noise)
    raw_thr = max(thr + RAW_SEED_MARGIN_HU, tissue_level_hu + RAW_SEED_SIGMA * raw_noise)
    split_h = max(BONE_SPLIT_MIN_H_HU, 1.6 * config.seed_sigma * noise_smoothed_hu)
    part_from_pieces = not coarse_pixels(spacing_zyx)  # see the hollow bone pieces below
    if start is not None and (start.config != config or start.shape != hu.shape
                              or start.spacing_zyx != tuple(float(s) for s in spacing_zyx)):
        raise ValueError("start must be start_detection() of the same image, spacing and config")
    comps = label_components(hu >= thr) if start is None else start.components.result()
    n = comps.n
    if out is None:
        out = sparse_zeros(hu.shape, np.uint16)
    elif out.shape != hu.shape or out.dtype != np.uint16:
        raise ValueError("out must be a zeroed uint16 array shaped like hu")
    bone = sparse_zeros(hu.shape, bool)  # written box by box
    excluded: list[Excluded] = []
    if n == 0:
        return Detection(out, bone, (), seed_thr, noise_smoothed_hu)
    # Read only round the components that need it (seeds, bone splits, faint rings).
    smooth = SmoothedHU(hu, tuple(spacing_zyx)) if smooth_hu is None else smooth_hu
    margin = margin_voxels(spacing_zyx, BONE_MARGIN_MM)

    def split_off(prep: BonePrep):
        """A bone's solid and the deposits split off it that pass the seed rules."""
        box, piece, smooth_box = prep.box, prep.piece, prep.smooth_hu
        split = split_bone(
            piece, smooth_box, spacing_zyx,
            h_hu=split_h,
            max_deposit_volume_mm3=min(config.bone_min_volume_mm3, MAX_ATTACHED_DEPOSIT_MM3),
            is_bone_piece=lambda sub, part: is_hollow(hu[box][sub], part, spacing_zyx, thr),
            threshold_hu=thr,
            raw_hu=hu[box],
            raw_h_hu=RAW_PEAK_SIGMA * raw_noise,
            at_scan_end=lambda sub, part: _at_scan_end(box[0].start + sub[0].start, part, hu.shape[0]),
        )
        deposits = []
        for sub, dep in split.deposits:
            where = tuple(slice(b.start + s.start, b.start + s.stop) for b, s in zip(box, sub))
            if is_hollow(hu[where], dep, spacing_zyx, thr):
                whole = split.bone.copy()
                whole[sub] |= dep
                if not apart_and_solid(sub, dep, whole, smooth_box, spacing_zyx, thr, hu[box]):
                    continue  # a piece of the bone's own cortex and marrow
            if smooth_box[sub][dep].max() >= seed_thr and dep.sum() * vv >= config.min_volume_mm3:
                deposits.append((where, dep))
        return split.bone, deposits

    # Lesions are numbered in the order of their components; a bone's split runs in a
    # worker thread (scikit-image's watershed and ITK release the GIL) while the small
    # components are looked at, and its deposits take their numbers in order afterwards.
    # (box, mask of a lesion or future of split_off, whether it is split off a bone)
    pending: list = []
    threaded = n_threads() > 1  # CALCINOSIS_THREADS=1 (batch workers): all in this thread
    pool = ThreadPoolExecutor(max_workers=1)

    def submit(prep: BonePrep) -> Future:
        if threaded:
            return pool.submit(split_off, prep)
        done: Future = Future()
        done.set_result(split_off(prep))
        return done

    preps = (start.bones.result() if start is not None
             else prepare_bones(comps, hu, body, spacing_zyx, config, smooth))
    # The bones' splits are the longest jobs: the worker starts on them (in label order)
    # before the statistics of all components are gathered.
    splits = {prep.label - 1: submit(prep) for prep in preps}
    idx = np.arange(1, n + 1)
    counts = comps.counts[1:]
    hu_d = comps.gather(hu)
    inside = comps.total(comps.gather(body))[1:] / np.maximum(counts, 1)
    peak = comps.maximum(hu_d)[1:]
    metal_share = comps.total(hu_d >= config.metal_hu)[1:] / np.maximum(counts, 1)
    raw_seeds = comps.total(hu_d >= raw_thr)[1:]
    del hu_d
    boxes, centroids = comps.geometry()
    extent = np.array([max((s.stop - s.start) * sp for s, sp in zip(b, spacing_zyx)) for b in boxes])
    volume = counts * vv
    body_extent = _BodyExtent(body)
    next_label = 1

    def exclude(i: int, reason: str) -> None:
        c = tuple(float(v) for v in centroids[i - 1])
        excluded.append(Excluded(reason, float(volume[i - 1]), float(peak[i - 1]), c))

    lesion_boxes: list[tuple[slice, ...]] = []
    from_bone: set[int] = set()

    def beside_object(i: int, k: int) -> None:
        """Deposits in the skin joined to the external object ``i`` (its component) at the
        threshold, split off it (:mod:`calcinosis.detect.metal`), when they pass the seed
        rules of a deposit split off a bone. Only the object's part near the body is looked
        at (its voxels in the body, with ``OBJECT_MARGIN_MM`` round them): a table or a
        blanket outside the body costs nothing (its mask is not even drawn: none of its
        voxels is in the body, ``inside``; the table's box spans the scan)."""
        if inside[k] == 0:
            return
        box = boxes[k]
        obj = comps.mask_in(i, box)
        in_body = obj & body[box]
        if not in_body.any():
            return
        sub = grow_box(ndi.find_objects(in_body.view(np.uint8))[0], margin_voxels(spacing_zyx, OBJECT_MARGIN_MM),
                       obj.shape)
        where = tuple(slice(b.start + s.start, b.start + s.stop) for b, s in zip(box, sub))
        smooth_w = smooth[where]
        for dep in deposits_beside_object(hu[where], smooth_w, obj[sub], body[where], spacing_zyx,
                                          threshold_hu=thr, h_hu=split_h, metal_hu=config.metal_hu,
                                          max_deposit_volume_mm3=MAX_ATTACHED_DEPOSIT_MM3):
            if smooth_w[dep].max() >= seed_thr and dep.sum() * vv >= config.min_volume_mm3:
                pending.append((where, dep, False))

    def add_lesion(where: tuple[slice, ...], mask: np.ndarray, split: bool = False) -> None:
        nonlocal out, next_label
        if next_label == 65535:  # more lesions than uint16 labels: widen once
            out = out.astype(np.uint32)
        out[where][mask] = next_label
        if split:
            from_bone.add(next_label)
        next_label += 1
        tight = ndi.find_objects(mask.view(np.uint8))[0]
        lesion_boxes.append(tuple(slice(w.start + t.start, w.start + t.stop) for w, t in zip(where, tight)))

    large = (volume >= config.bone_min_volume_mm3) | (extent >= config.bone_min_extent_mm)
    # A large structure in the body is bone unless it is metal (tooth enamel is not).
    bones = large & (inside >= 0.5) & ~((peak >= config.metal_hu) & (metal_share >= TOOTH_METAL_FRACTION))
    if splits and set(splits) != set(np.flatnonzero(bones).tolist()):
        raise RuntimeError("the bones found first differ from the statistics")  # a bug, not bad input

    with pool:
        for i in idx:
            k = i - 1
            big = bool(large[k])
            if inside[k] < 0.5:
                if peak[k] >= config.metal_hu:
                    exclude(i, "external_metal")
                    beside_object(i, k)
                elif big or volume[k] >= 50.0:
                    exclude(i, "table" if _is_table(boxes[k], body_extent) else "external_object")
                    # A deposit in the skin where the body lies on the table may join it too.
                    beside_object(i, k)
                continue  # specks of noise outside the body are not worth a line
            if inside[k] < 1.0 and not big and peak[k] >= PARTIAL_METAL_SHARE * config.metal_hu:
                exclude(i, "external_metal")  # on the skin, its peak lowered by partial volume
                beside_object(i, k)
                continue
            if peak[k] >= config.metal_hu and not (big and metal_share[k] < TOOTH_METAL_FRACTION):
                # Jewellery, ECG buttons and clothing fasteners lie on the skin: part of them is
                # outside the body. An implant is wholly inside. (A skeleton whose few densest
                # voxels reach metal level, tooth enamel, stays bone.)
                exclude(i, "external_metal" if inside[k] < 1.0 else "metal")
                if inside[k] < 1.0:
                    beside_object(i, k)
                continue
            if big:
                box = grow_box(boxes[k], margin, hu.shape)
                exclude(i, "bone")
                if k in splits:
                    pending.append((box, splits[k], True))
                    continue
                # On thick slices the bone's own texture and partial volume make valleys
                # everywhere: pieces split off would be bone, not deposits. No split.
                bone[box] |= fill_holes_in_plane(comps.mask_in(i, box))
                continue
            if volume[k] < config.min_volume_mm3:
                continue  # noise speck
            piece = comps.mask_in(i, boxes[k])
            smooth_k = smooth[boxes[k]]
            seed_peak = float(smooth_k[piece].max())
            if (seed_peak < seed_thr and raw_seeds[k] < 2 and peak[k] < single_thr
                    and not is_faint_deposit(smooth, lambda box, i=i: comps.mask_in(i, box), boxes[k], spacing_zyx,
                                             n_voxels=int(counts[k]), seed_peak_hu=seed_peak,
                                             noise_smoothed_hu=noise_smoothed_hu)):
                continue  # partial-volume fringe
            if is_hollow(hu[boxes[k]], piece, spacing_zyx, thr):
                # A cortical shell round a marrow space: a piece of bone (a rib or a process cut
                # across by the slices), or ring-calcified skeletal cartilage, not a deposit.
                exclude(i, "bone")
                if splits_bone(spacing_zyx) and along_slices(boxes[k], spacing_zyx):
                    # A small long bone along the slices (a finger's phalanx; a metacarpal or a
                    # toe's), a whole bone rather than a piece of one cut across by the slices:
                    # split as a large bone is (valley, shoulder, blur profile, raw peaks). The
                    # rib-piece rules below alone missed deposits 0.3-0.5 mm from a phalanx whose
                    # valley the smoothing filled (fingers phantoms at 0.3 mm pixels and 0.6 mm
                    # slices, 4 seeds: 12 of 46 deposits missed; split as a bone, 1).
                    box = grow_box(boxes[k], margin, hu.shape)
                    pending.append((box, submit(BonePrep(i, box, comps.mask_in(i, box), smooth[box])), True))
                    continue
                # A deposit joined to it is parted by its valleys, read a voxel or two from the
                # piece: not on pixels coarser than the bone split's (a rib's curve on a real
                # CT resampled to 3 mm voxels, 567 mm3 "intramuscular").
                if part_from_pieces:
                    for dep in deposits_on_bone_piece(hu[boxes[k]], smooth_k, piece, spacing_zyx,
                                                      threshold_hu=thr, h_hu=split_h,
                                                      max_deposit_volume_mm3=MAX_ATTACHED_DEPOSIT_MM3,
                                                      is_hollow=is_hollow, raw_h_hu=RAW_PEAK_SIGMA * raw_noise):
                        pending.append((boxes[k], dep, True))
                        piece &= ~dep
                bone[boxes[k]] |= piece
                continue
            pending.append((boxes[k], piece, False))
        if while_waiting is not None:
            while_waiting()
        for box, item, split in pending:
            if isinstance(item, Future):
                solid, deposits = item.result()
                bone[box] |= solid
                for where, dep in deposits:
                    add_lesion(where, dep, split=split)
            else:
                add_lesion(box, item, split=split)
    notes = tuple(f"{v} {r}" for r, v in sorted(Counter(e.reason for e in excluded).items()))
    return Detection(out, bone, tuple(excluded), seed_thr, noise_smoothed_hu, notes, tuple(lesion_boxes),
                     frozenset(from_bone))


# A bone piece at least this many times longer along the slices than across them is a small
# long bone lying along the scan's axis (a finger's phalanx: 20-45 mm against 7-10 mm);
# ribs and processes cut by the slices run across them.
ALONG_SLICES_MIN_RATIO = 2.0


def along_slices(box: tuple[slice, ...], spacing_zyx) -> bool:
    """Whether an object's box is ``ALONG_SLICES_MIN_RATIO`` times longer along z (mm) than
    its longer side in-plane, on slices thinner than ``THIN_SLICE_MM``. On thicker slices a
    deposit beside a phalanx is not resolved from it either way (fingers at 2 mm slices:
    the same deposits missed), and the trunk phantom's rib pieces, bands 14 mm along z, took
    the shape (an arc of a textured rib's cortex parted as a 296 mm3 deposit, 3 mm slices)."""
    if float(spacing_zyx[0]) >= THIN_SLICE_MM:
        return False
    length = [(s.stop - s.start) * float(sp) for s, sp in zip(box, spacing_zyx)]
    return length[0] >= ALONG_SLICES_MIN_RATIO * max(length[1], length[2])


def is_hollow(hu: np.ndarray, mask: np.ndarray, spacing_zyx, threshold_hu: float) -> bool:
    """True when the object is a dense shell round a less dense core (bone cortex and marrow).

    The core is the part deeper than 2 mm from the object's edge in its slice. A calcified
    deposit is densest in its core (partial volume only lowers its rim); a piece of bone
    has its marrow there. Hollow means the core's median HU lies below the midpoint
    between the threshold and the object's 90th percentile.
    """
    # Marrow may fall below the threshold (partial volume): it is then a hole in the mask.
    core = core_in_plane(fill_holes_in_plane_box(mask), spacing_zyx, HOLLOW_CORE_DEPTH_MM)  # box edge outside
    if core.sum() < 5:
        return False
    return marrow_in_core(hu, mask, core, threshold_hu)


def _at_scan_end(z0: int, piece: np.ndarray, n_slices: int) -> bool:
    """Whether ``piece`` (a mask whose first slice is slice ``z0`` of the detection's
    array) holds a voxel on the array's first or last slice: the scan's ends (the body's
    crop spans every slice the body reaches)."""
    slices = np.flatnonzero(piece.any(axis=(1, 2)))
    return bool(slices.size) and (z0 + int(slices[0]) == 0 or z0 + int(slices[-1]) == n_slices - 1)


class _BodyExtent:
    """The body's first and last row and column (in-plane), read when first asked for (a
    pass over the body mask each); None when the body is empty."""

    def __init__(self, body: np.ndarray):
        self.body = body
        self._value: tuple[int, int, int, int] | None | bool = False

    def get(self) -> tuple[int, int, int, int] | None:
        if self._value is False:
            ys = np.flatnonzero(self.body.any(axis=(0, 2)))
            xs = np.flatnonzero(self.body.any(axis=(0, 1)))
            self._value = (int(ys[0]), int(ys[-1]), int(xs[0]), int(xs[-1])) if ys.size else None
        return self._value  # type: ignore[return-value]


# A table top is at least this share of the body's width (it is wider in nearly every scan).
TABLE_WIDTH_SHARE = 0.8


def _is_table(box, body_extent: _BodyExtent) -> bool:
    """Whether a large object outside the body (its box on the body's grid) is the table:
    it reaches past the body's lowest (or, in an image stored upside down, highest) row
    and is about as wide as the body or wider. A curved table top rises at its sides, so
    its middle row may lie above the body's lowest row."""
    extent = body_extent.get()
    if extent is None:
        return False
    y0, y1, x0, x1 = extent
    past = box[1].stop - 1 > y1 or box[1].start < y0
    return past and box[2].stop - box[2].start >= TABLE_WIDTH_SHARE * (x1 - x0 + 1)
