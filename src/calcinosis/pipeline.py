"""The CT analysis: volume in, lesions and summary out. Pure library code; the CLI is thin."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from calcinosis.anatomy.air import add_internal_air
from calcinosis.anatomy.body import find_body
from calcinosis.anatomy.noise import estimate_noise_hu, noise_sample, noise_structure
from calcinosis.anatomy.cavity import find_cavity
from calcinosis.anatomy.regions import body_regions, region_features
from calcinosis.config import AnalysisConfig
from calcinosis.detect.bones import MAX_SPLIT_PIXEL_MM, MAX_SPLIT_SLICE_MM, splits_bone, start_detection
from calcinosis.detect.candidates import Detection, detect_lesions
from calcinosis.detect.edges import scan_limited_findings
from calcinosis.detect.smoothing import SmoothedHU
from calcinosis.detect.trunk import classify_trunk_findings
from calcinosis.measure.lesion import CALCINOSIS_COMPARTMENTS, Lesion, LesionContext, measure_lesions
from calcinosis.sparse_zeros import sparse_zeros
from calcinosis.threads import n_threads
from calcinosis.volume import Volume

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True, eq=False)
class Analysis:
    """Everything one CT analysis found. ``labels`` is on the input's full grid; ``detection``'s
    arrays on the grid analysed (the input's axes in axial order, ``facts["analysed_axes"]``
    when they were not), its excluded objects' positions on the input's (``crop_offset``)."""

    volume: Volume
    config: AnalysisConfig
    lesions: tuple[Lesion, ...]
    labels: np.ndarray
    detection: Detection
    noise_hu: float
    warnings: tuple[str, ...]
    run_time_s: float
    facts: dict[str, Any] = field(default_factory=dict)


def analyze(volume: Volume, config: AnalysisConfig | None = None, *,
            progress: Progress | None = None) -> Analysis:
    """Detect and measure calcified deposits in a CT volume.

    The analysis works on axial slices: a volume stored with another array axis running head
    to foot (coronal or sagittal slices, a reformat) is analysed with its axes put in axial
    order (:func:`axial_order`; a transpose, no resampling), and its label map, lesions and
    excluded objects are given back on the input's own grid. Stored as coronal slices, a
    thigh phantom lost a deposit parted from the femur (the bone split and the body mask
    work slice by slice) and scored another as a different one.

    Parameters
    ----------
    volume : Volume
        CT in HU. Not modified.
    config : AnalysisConfig, optional
        Settings; defaults follow the output contract (130 HU, c = 0.8).
    progress : callable, optional
        Called with a short text before each step.
    """
    order = axial_order(volume)
    if order == (0, 1, 2):
        return _analyze_axial(volume, config, progress)
    return _on_input_grid(_analyze_axial(_in_axial_order(volume, order), config, progress), volume, order)


def axial_order(volume: Volume) -> tuple[int, int, int]:
    """The input's array axes in the order (head-foot, front-back, left-right): for each
    anatomical axis the array axis whose direction lies nearest it (head-foot first, then
    front-back among the two left). ``(0, 1, 2)`` for axial slices, oblique ones included."""
    axes = np.abs(volume.axis_lps_directions())  # rows: array axes; columns: L, P, S components
    axial = int(np.argmax(axes[:, 2]))
    rest = [a for a in range(3) if a != axial]
    front_back = max(rest, key=lambda a: (axes[a, 1], -a))
    return axial, front_back, next(a for a in rest if a != front_back)


def _in_axial_order(volume: Volume, order: tuple[int, int, int]) -> Volume:
    """``volume`` with its array axes transposed to ``order`` (same voxels, same positions)."""
    array = np.ascontiguousarray(volume.array.transpose(order))
    # ITK's index axis c (spacing, direction column) is array axis 2 - c.
    itk = [2 - order[2 - c] for c in range(3)]
    spacing = tuple(float(volume.spacing[i]) for i in itk)
    direction = volume.direction[:, itk]
    return Volume(array, spacing, volume.origin, direction, volume.metadata)


def _on_input_grid(analysis: Analysis, volume: Volume, order: tuple[int, int, int]) -> Analysis:
    """An analysis of :func:`_in_axial_order` ``(volume, order)`` given back on ``volume``'s
    grid: its label map transposed back, its excluded objects' positions as indices of the
    input's full grid (``crop_offset`` 0). Lesion positions are LPS mm and stay."""
    back = tuple(int(a) for a in np.argsort(order))
    offset = np.asarray(analysis.facts.get("crop_offset") or (0, 0, 0), float)

    def on_input(index) -> tuple[float, float, float]:
        full = np.asarray(index, float) + offset
        return tuple(float(full[back[a]]) for a in range(3))  # type: ignore[return-value]

    excluded = tuple(replace(e, centroid_index=on_input(e.centroid_index)) for e in analysis.detection.excluded)
    facts = dict(analysis.facts, crop_offset=[0, 0, 0], analysed_axes=list(order))
    return replace(analysis, volume=volume, labels=np.ascontiguousarray(analysis.labels.transpose(back)),
                   detection=replace(analysis.detection, excluded=excluded), facts=facts)


def _analyze_axial(volume: Volume, config: AnalysisConfig | None, progress: Progress | None) -> Analysis:
    """:func:`analyze` of a volume whose array axis 0 runs head to foot."""
    config = config or AnalysisConfig()
    step = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    hu_full = volume.array
    sp = volume.spacing_zyx
    warnings = list(_acquisition_warnings(volume))

    step("body")
    body = find_body(hu_full, sp)
    # Lesions are written into it box by box: ordinary pages, no huge-page stalls.
    labels_full = sparse_zeros(hu_full.shape, np.uint16)
    if body.n_parts == 0:
        warnings.append("no body found in the image (all air?): nothing analysed")
        det = Detection(np.zeros((0, 0, 0), np.uint16), np.zeros((0, 0, 0), bool), (), config.threshold_hu, float("nan"))
        return Analysis(volume, config, (), labels_full, det, float("nan"), tuple(warnings),
                        time.perf_counter() - t0)
    hu = hu_full[body.crop]
    # Detection's first steps (labelling the dense voxels, then preparing the bones, which
    # read the body mask) run in a worker beside the internal air and the noise estimate.
    body_mask: Future = Future()
    started = start_detection(hu, body_mask, sp, config)
    # Nose, sinuses and mouth open through a narrow mouth: their air is inside the body, so
    # the depth of what lies beside them is measured from the skin.
    try:
        mask = add_internal_air(body.mask, sp, copy=False)  # body.mask is not read again
    except BaseException as error:
        body_mask.set_exception(error)  # the worker's wait for the mask ends too
        raise
    body_mask.set_result(mask)

    step("noise")

    def soft(z: int) -> np.ndarray:  # soft tissue of one slice (the noise estimate samples slices)
        return mask[z] & (hu[z] > -200) & (hu[z] < 120)

    sample = noise_sample(hu.shape[0], soft)  # eroded once for both estimates
    # How the noise is correlated (one voxel's SD, a sum's widening: the noise SDs of volume and
    # mass, and the raw-noise rules below), read beside the estimates that follow.
    with ThreadPoolExecutor(max_workers=1) as beside:
        structure_job = beside.submit(noise_structure, hu, sample, sp) if n_threads() > 1 else None
        noise = estimate_noise_hu(hu, sample)
        # Soft-tissue level: the median of muscle-range voxels, from every 2nd voxel on each axis
        # (millions of voxels still: the same median to a fraction of a HU, 8 times cheaper).
        # The median from a histogram of the whole-HU values: np.median's value, without its sort.
        counts = _muscle_histogram(hu, mask)
        tissue_level = _weighted_quantile(np.arange(-29, 120, dtype=float), counts, 0.5) if counts.any() else 40.0
        # The smoothed image the seeds are read on (whole HU): its noise is measured on it here
        # (sampled slices), and detection reads it; each computed only where it is read.
        smooth = SmoothedHU(hu, sp)
        noise_s = estimate_noise_hu(smooth, sample)
        if not np.isfinite(noise):
            noise, noise_s = 20.0, 5.0
            warnings.append("too little soft tissue to measure image noise; assumed 20 HU")
        if noise > 40:
            warnings.append(f"high image noise ({noise:.0f} HU): small faint deposits may be missed")

        structure = structure_job.result() if structure_job else noise_structure(hu, sample, sp)
    # The 5 x 5 residual sees only part of noise correlated over a few pixels (real CT: 0.6-0.8
    # of one voxel's SD on the chest CTs). The rules on raw HU (seeds, raw peaks on bone, the
    # low-contrast flag, the scan-edge rules) were set on phantoms, where it is the larger of
    # the two estimates; they take the larger.
    raw_noise = max(noise, structure.voxel_sd_hu) if structure is not None else noise
    step("detect")
    # What the regions read from the image and the body alone, and the midline, are computed
    # while detection waits for the bones' splits (the regions' bone-dependent rest comes
    # after detection); not at all when detection has nothing to wait for.
    ahead: dict[str, Any] = {}

    def while_waiting() -> None:
        ahead["features"] = region_features(hu, mask, sp, volume.direction)
        ahead["midline"] = _midline_x_mm(volume, mask, body.crop, _limbs(body))

    det = detect_lesions(hu, mask, sp, config, tissue_level_hu=tissue_level, noise_smoothed_hu=noise_s,
                         smooth_hu=smooth, noise_hu=raw_noise, start=started,
                         # Written straight into the full-grid map: no copy of the label grid
                         # later, and only the pages holding lesions are ever touched.
                         out=labels_full[body.crop],
                         while_waiting=while_waiting)
    del smooth

    step("anatomy")
    midline = ahead["midline"] if "midline" in ahead else _midline_x_mm(volume, mask, body.crop, _limbs(body))

    step("measure")
    offset = tuple(s.start for s in body.crop)
    # Depth and bone distance are computed on boxes round the lesions (measure_lesions).
    ctx = LesionContext(hu, det.labels, mask, det.bone, None, None, sp, offset, det.boxes, det.from_bone)
    # Measurement and the anatomy (regions, cavity) read the same arrays and write none:
    # the measurement runs in a worker thread beside them (CALCINOSIS_THREADS=1: in turn).
    def measure(ctx: LesionContext) -> list[Lesion]:
        return measure_lesions(ctx, volume.index_to_lps, config, midline_x_mm=midline, noise_hu=raw_noise,
                               noise_structure=structure)

    with ThreadPoolExecutor(max_workers=1) as pool:
        measured = pool.submit(measure, ctx)
        if n_threads() == 1:
            measured.result()
        step("regions")
        regions = body_regions(hu, mask, det.bone, sp, volume.direction, n_body_parts=body.n_parts,
                               features=ahead.get("features"))
        step("cavity")
        trunk, pelvis = _trunk_slices(mask, regions)
        # Which way array axis 1 (rows) runs: its LPS y component > 0 means towards posterior.
        # Only landmarks here: a slice of the cavity is computed when a finding on it is read.
        cavity = find_cavity(mask, det.bone, sp, trunk,
                             posterior_sign=float(np.sign(volume.direction[1, 1]) or 1.0), hu=hu,
                             pelvis_slices=pelvis)
        lesions = measured.result()
    del ctx
    if lesions and structure is None:
        warnings.append("too little homogeneous fat or muscle to measure how the noise is correlated: "
                        "the noise SDs of volume and mass assume independent voxels and may be too narrow")

    def crop_index(lesion):
        """Fractional (z, y, x) index of the lesion centroid on the cropped grid."""
        return volume.lps_to_index(np.array([lesion.x_mm, lesion.y_mm, lesion.z_mm])) - np.asarray(offset)

    lesions = [replace(lesion, region=regions.region_at(tuple(int(round(v)) for v in crop_index(lesion))))
               for lesion in lesions]
    drop = scan_limited_findings(lesions, det.labels, offset, hu_full.shape, mask, sp, config.threshold_hu,
                                 hu=hu, noise_hu=raw_noise, boxes=det.boxes, tissue_level_hu=tissue_level)
    lesions, skeletal, lut = classify_trunk_findings(lesions, det.labels, cavity, crop_index, sp,
                                                     hu=hu, body=mask, drop=drop, boxes=det.boxes,
                                                     regions=regions, bone=det.bone, threshold_hu=config.threshold_hu)
    if det.labels.dtype != labels_full.dtype:  # widened past 65534 lesions
        labels_full = np.zeros(hu_full.shape, det.labels.dtype)
        labels_full[body.crop] = det.labels
    final = labels_full[body.crop]
    if not np.array_equal(lut, np.arange(len(lut))):
        # Renumbered in place, lesion box by lesion box in ascending order of the old label:
        # new labels are never larger than old ones, so none is met again as an old one.
        for old_id, box in enumerate(det.boxes, start=1):
            if lut[old_id] != old_id:
                part = final[box]
                part[part == old_id] = lut[old_id]
    # The detection's labels become the final ones, a view of the full-grid map (one copy
    # of the label grid, not three). Renumbered: its per-label boxes no longer apply.
    det = replace(det, labels=labels_full[body.crop], excluded=det.excluded + tuple(skeletal),
                  from_bone=frozenset(int(lut[i]) for i in det.from_bone if i < len(lut) and lut[i]),
                  boxes=det.boxes if not skeletal and not drop else ())
    if any(e.reason in ("metal", "external_metal") for e in det.excluded):
        warnings.append("metal in the field of view (excluded; streaks near it may hide or mimic deposits)")
    calcinosis = [lesion for lesion in lesions if lesion.compartment in CALCINOSIS_COMPARTMENTS]
    parted = sum("split_from_bone" in lesion.flags.split(";") for lesion in calcinosis)
    if parted:
        warnings.append(f"{parted} of {len(calcinosis)} calcinosis findings were parted from a bone by the bone "
                        "split (flag split_from_bone): check them; on real scans the split can also part a piece "
                        "of the bone itself (a process, an edge)")
    facts = {
        "tissue_level_hu": tissue_level,
        "noise_smoothed_hu": noise_s,
        "raw_noise_hu": raw_noise,  # the noise the rules on raw HU read
        # One voxel's noise and how correlated noise widens a sum (the SDs of volume and mass).
        "noise_structure": structure.to_dict() if structure is not None else None,
        "seed_threshold_hu": det.seed_threshold_hu,
        "midline_x_mm": midline,
        "body_parts": body.n_parts,
        "crop_offset": list(offset),
        "anatomy": regions.describe(),
    }
    return Analysis(volume, config, tuple(lesions), labels_full, det, noise, tuple(warnings),
                    time.perf_counter() - t0, facts)


# A single body part narrower than this (LPS x extent) is a limb scanned on its own.
SINGLE_LIMB_MAX_WIDTH_MM = 200.0
# Two parts apart along x are a pair of limbs (the midline in the gap between them) when the
# larger holds at most this many times the smaller's voxels.
PAIR_MAX_SIZE_RATIO = 2.0


def _trunk_slices(mask: np.ndarray, regions) -> tuple[np.ndarray, np.ndarray]:
    """Slices whose body centre lies in the chest, abdomen or pelvis; and those in the pelvis.
    A pelvis slice's body centre may lie in front of its bones' hull (the lower abdomen
    between the iliac wings): the regions call it ``hip_gluteal``, the slice is the pelvis's."""
    out = np.zeros(mask.shape[0], bool)
    pelvis = np.zeros(mask.shape[0], bool)
    # The centre of every 4th row and column's body voxels: sums of whole numbers, exact in
    # any order, so the same mean as listing the voxels.
    sample = mask[:, ::4, ::4]
    in_rows, in_cols = sample.sum(axis=2), sample.sum(axis=1)
    n = in_rows.sum(axis=1)
    sum_y = in_rows @ np.arange(sample.shape[1])
    sum_x = in_cols @ np.arange(sample.shape[2])
    for z in np.flatnonzero(n):
        cy, cx = (np.array([sum_y[z], sum_x[z]]) / n[z] * 4).astype(int)
        name = regions.region_at((z, int(cy), int(cx)))
        out[z] = name in ("chest", "abdomen", "pelvis", "back", "hip_gluteal")
        pelvis[z] = name in ("pelvis", "hip_gluteal")
    return out, pelvis


def _limbs(body) -> int:
    """The body parts the midline rules count: the pieces of one small body part scanned
    alone (the fingers of a hand) count as one limb; their median x was taken for the
    midline, and the fingers on either side of it were given opposite sides."""
    return 1 if body.small_part else body.n_parts


def _midline_x_mm(volume: Volume, mask: np.ndarray, crop, n_parts: int) -> float:
    """LPS x of the patient's midline, from the body's extent across x (every 2nd slice and
    4th row, every column).

    - A single limb scanned on its own does not show the midline: then the scanner's
      isocentre, LPS x = 0, where the patient's midline lies on the table.
    - Two parts of like size apart along x (both thighs, both legs): the middle of the gap
      between them (thighs of unequal girth move the body's median towards the larger).
    - Otherwise the median x of the body, each column's voxels spread over its width (not
      rounded to a sampled column); a part apart from a main one at least twice its size
      (an arm beside the trunk) is left out.
    """
    sample = mask[::2, ::4, :]
    direction = np.asarray(volume.direction, float)
    if direction[0, 1] != 0.0 or direction[0, 2] != 0.0:
        # Oblique: LPS x varies along rows and slices too; the median of the listed voxels.
        idx = np.argwhere(sample[:, :, ::4]) * [2, 4, 4] + [s.start for s in crop]
        if len(idx) == 0:
            return float(volume.index_to_lps(np.array(volume.shape) / 2.0)[0])
        x = volume.index_to_lps(idx)[:, 0]
        if n_parts == 1 and np.percentile(x, 99) - np.percentile(x, 1) < SINGLE_LIMB_MAX_WIDTH_MM:
            return 0.0
        return float(np.median(x))
    counts = sample.sum(axis=(0, 1))
    if counts.sum() == 0:
        return float(volume.index_to_lps(np.array(volume.shape) / 2.0)[0])
    step = float(direction[0, 0]) * float(volume.spacing[0])
    x = volume.origin[0] + step * (np.arange(counts.size) + crop[2].start)
    if step < 0:
        x, counts, step = x[::-1], counts[::-1], -step
    return _midline_from_columns(x, counts, step, n_parts)


def _midline_from_columns(x: np.ndarray, counts: np.ndarray, step: float, n_parts: int) -> float:
    """:func:`_midline_x_mm` from the body voxels per column (``counts``) at increasing
    column positions ``x`` (mm) ``step`` apart."""
    filled = np.flatnonzero(counts)
    if n_parts == 1 and x[filled[-1]] - x[filled[0]] + step < SINGLE_LIMB_MAX_WIDTH_MM:
        return 0.0
    # Runs of columns holding body, apart from each other along x.
    breaks = np.flatnonzero(np.diff(filled) > 1)
    starts = np.concatenate([[filled[0]], filled[breaks + 1]])
    stops = np.concatenate([filled[breaks], [filled[-1]]]) + 1
    if len(starts) > 1:
        mass = np.array([counts[a:b].sum() for a, b in zip(starts, stops)])
        first, second = np.argsort(mass)[::-1][:2]
        if mass[second] * PAIR_MAX_SIZE_RATIO >= mass[first]:
            left, right = sorted((first, second))
            return float(x[stops[left] - 1] + x[starts[right]]) / 2.0
        counts = np.where((np.arange(counts.size) >= starts[first]) & (np.arange(counts.size) < stops[first]),
                          counts, 0)
    cum = np.cumsum(counts)
    half = cum[-1] / 2.0
    k = int(np.searchsorted(cum, half))
    before = float(cum[k - 1]) if k else 0.0
    return float(x[k] - step / 2.0 + step * (half - before) / float(counts[k]))


def _muscle_histogram(hu: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Counts of the whole-HU values -29..119 (index = HU + 29) of the body voxels in the
    muscle range (-30 < HU < 120), from every 2nd voxel on each axis."""
    every2 = (slice(None, None, 2),) * 3
    if hu.dtype == np.int16:
        # HU + 29 read as uint16: the muscle range is 0..148 and every other value lies above
        # it (below -29 HU wraps past 32767; near the int16 top it wraps to the negatives,
        # which read as 32768 and up): one comparison instead of two, no int32 copy.
        key = (hu[every2] + np.int16(29)).view(np.uint16)
        sel = key < 149
        sel &= mask[every2]
        return np.bincount(key[sel], minlength=149)
    hu2 = hu[every2]
    muscle = mask[every2] & (hu2 > -30) & (hu2 < 120)
    return np.bincount((hu2[muscle].astype(np.int64) + 29), minlength=149)


def _weighted_quantile(values: np.ndarray, counts: np.ndarray, q: float) -> float:
    """``np.percentile(np.repeat(values, counts), 100 q)`` (linear), without the repeat."""
    order = np.argsort(values, kind="stable")
    v, c = values[order], counts[order]
    cum = np.cumsum(c)
    rank = q * (cum[-1] - 1)
    lo, hi = int(np.floor(rank)), int(np.ceil(rank))
    value_lo = v[np.searchsorted(cum, lo, side="right")]
    value_hi = v[np.searchsorted(cum, hi, side="right")]
    return float(value_lo + (value_hi - value_lo) * (rank - lo))


def _acquisition_warnings(volume: Volume):
    meta = volume.metadata
    kvp = meta.get("kvp")
    if kvp and abs(float(kvp) - 120.0) > 5:
        yield f"tube voltage {float(kvp):g} kVp: Agatston bands are defined at 120 kVp"
    thick = meta.get("slice_thickness_mm") or volume.spacing_zyx[0]
    if thick and float(thick) > 3.0:
        yield f"thick slices ({float(thick):g} mm): small deposits are blurred and may be missed"
    if not splits_bone(volume.spacing_zyx):
        yield (f"slices of {float(volume.spacing_zyx[0]):g} mm, pixels of {max(volume.spacing_zyx[1:]):g} mm: "
               f"deposits touching bone are not split from it (that needs slices of {MAX_SPLIT_SLICE_MM:g} mm "
               f"or less and pixels of {MAX_SPLIT_PIXEL_MM:g} mm or less) and count as bone")
    if meta.get("contrast_agent"):
        yield f"contrast agent ({meta['contrast_agent']}): enhancing vessels and organs can mimic calcification"
    if meta.get("orientation_unknown"):
        yield (f"{meta['orientation_unknown']}: its axes were taken as LPS (ITK's default), so left and right, and "
               "where each deposit lies, are a guess (sizes are not); convert the scan again with its orientation "
               "(e.g. from its DICOM series)")
    others = meta.get("other_ct_series")
    if others:
        named = [(o["series_uid"], o["slices"], f", {o['description']}" if o["description"] else "") for o in others]
        listed = ", ".join(f"{uid} ({n} slices{what})" for uid, n, what in named[:3])
        more = f" and {len(others) - 3} more" if len(others) > 3 else ""
        yield (f"the folder holds {len(others) + 1} CT series: analysed {meta.get('series_uid')}, the one with the "
               f"most slices; give --series UID for another ({listed}{more})")
