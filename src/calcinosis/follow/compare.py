"""Compare two visits of one patient: register, match, classify, total up.

:func:`compare_visits` is the library function behind ``calcinosis compare``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from calcinosis.follow.config import CompareConfig
from calcinosis.follow.features import grid_image
from calcinosis.follow.matching import (
    Change,
    Status,
    centroids,
    change_status,
    difference_sd_mg,
    extent_mm,
    inside_fov,
    match_lesions,
    refine_with_deposits,
)
from calcinosis.follow.registration import Registration, register_volumes
from calcinosis.follow.visit import Visit
from calcinosis.io import volume_to_sitk

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1.0"
POOR_BONE_DICE = 0.7
SAME_ANATOMY_OVERLAP = 0.95  # the follow-up covers at least this fraction of the baseline body
DEFAULT_THRESHOLD_HU = 130.0  # the analysis's default, for an analysis folder without its settings
DEFAULT_SHELL_MM = 1.5  # the same for the shell round a deposit that its mass is measured over
# How the detail of a deposit found in one scan, and dense but unreported in the other, begins.
UNREPORTED_DETAIL = "not reported by the"
# A place in a scan reading at or below this (HU, linear interpolation) is air: no tissue was
# imaged there. Real air reads -1000 give or take its noise; pixels outside the reconstruction
# circle read -1024 (the reader's padding, or what scanners that do not pad write there).
AIR_HU = -900.0
# A resolved (new) deposit whose voxels land on air in the other scan for more than this
# fraction was not imaged there, or the body's outline there moved: nothing tells that it is gone.
NOT_IMAGED_FRACTION = 0.5
# A deposit found in both scans with more than this fraction of its measured region (its voxels,
# the analysis's shell and background ring round them) outside the other scan's reconstruction
# circle was measured there in part only: 6 mm deposits with 13-27 % of that region (0-4 % of
# their own voxels) outside the circle read -19 %, -30 % and -44 % (truth 0); the others: 0.3 % at most.
CUT_FRACTION = 0.05


@dataclass(frozen=True, eq=False)
class Comparison:
    """The result of comparing a follow-up visit with its baseline."""

    baseline: Visit
    followup: Visit
    config: CompareConfig
    registration: Registration
    changes: tuple[Change, ...]
    # bool per baseline lesion (in ``baseline.lesions`` order): counted in the common field of
    # view (found in both scans, or covered by the other and not merely unreported there)
    baseline_covered: np.ndarray
    followup_covered: np.ndarray  # the same per follow-up lesion
    overall: str  # progression / stable / improvement
    overall_change_pct: float
    warnings: tuple[str, ...]
    deposits_lined_up: tuple[int, int]  # deposits within 3 mm of a partner: after / before refinement


def compare_visits(baseline: Visit, followup: Visit, config: CompareConfig = CompareConfig(), *,
                   registration: Registration | None = None,
                   track_ids: dict[int, int] | None = None) -> Comparison:
    """Register ``followup`` to ``baseline``, match their deposits and classify each change.

    Parameters
    ----------
    baseline, followup : Visit
    config : CompareConfig
    registration : Registration, optional
        A known baseline -> follow-up mapping; registered here by default.
    track_ids : dict, optional
        Track identifier per baseline lesion id, from the comparison that produced the
        baseline (so a deposit keeps its identifier over several visits).
    """
    reg = registration or register_volumes(baseline.volume, followup.volume, config.registration,
                                           baseline_labels=baseline.labels, followup_labels=followup.labels)
    b_pts = centroids(baseline.lesions)
    lined = (0, 0)
    if registration is None and config.registration.deposit_refinement:
        f_pts = reg.to_baseline(centroids(followup.lesions))
        shift, n_after, n_before = refine_with_deposits(
            b_pts, f_pts, np.array([les.mass_mg for les in baseline.lesions]),
            np.array([les.mass_mg for les in followup.lesions]), config.registration.max_refinement_mm)
        lined = (n_after, n_before)
        if np.any(shift != 0):
            log.info("deposit refinement shifted the registration by %s mm", np.round(shift, 2))
            reg = reg.shifted(shift)
    f_pts = reg.to_baseline(centroids(followup.lesions))
    # A deposit is covered by the other scan when the whole of it, and a margin, lies inside
    # that scan clear of its first and last slice: there the analysis drops a finding cut by
    # the scan's edge, so a deposit reaching it would read as resolved (or new).
    margin_b = np.array([extent_mm(les) for les in baseline.lesions]) + config.fov_margin_mm
    margin_f = np.array([extent_mm(les) for les in followup.lesions]) + config.fov_margin_mm
    b_cov = inside_fov(followup.volume, reg.to_followup(b_pts), margin_b, edge_voxels=1)
    f_cov = inside_fov(baseline.volume, f_pts, margin_f, edge_voxels=1)
    overlaps = label_overlaps(baseline, followup, reg)
    changes = match_lesions(baseline.lesions, followup.lesions, f_pts, overlaps, b_cov, f_cov, config, track_ids)
    # A deposit found in both scans was seen in both: it counts in the common field of view on
    # both sides (one side alone would count its mass then and not now, or the reverse).
    b_index = {les.lesion_id: i for i, les in enumerate(baseline.lesions)}
    f_index = {les.lesion_id: j for j, les in enumerate(followup.lesions)}
    for change in changes:
        if change.baseline_ids and change.followup_ids:
            b_cov[[b_index[i] for i in change.baseline_ids]] = True
            f_cov[[f_index[j] for j in change.followup_ids]] = True
    changes = _dense_yet_unreported(baseline, followup, reg, changes, b_cov, f_cov, b_index, f_index)
    changes = _cut_by_the_circle(baseline, followup, reg, changes, b_cov, f_cov, b_index, f_index)
    b_in = [les for les, c in zip(baseline.lesions, b_cov) if c]
    f_in = [les for les, c in zip(followup.lesions, f_cov) if c]
    mb = sum(les.mass_mg for les in b_in)
    mf = sum(les.mass_mg for les in f_in)
    status, pct = change_status(mb, mf, config.change_pct, difference_sd_mg(b_in, f_in), config.noise_sds)
    overall = {Status.GROWN: "progression", Status.SHRUNK: "improvement"}.get(status, "stable")
    warnings = _warnings(baseline, followup, reg, changes)
    return Comparison(baseline, followup, config, reg, changes, b_cov, f_cov, overall, pct, tuple(warnings),
                      lined)


def _dense_yet_unreported(baseline: Visit, followup: Visit, reg: Registration, changes, b_cov: np.ndarray,
                          f_cov: np.ndarray, b_index: dict[int, int], f_index: dict[int, int]) -> tuple[Change, ...]:
    """Resolved and new deposits whose place in the other scan is as dense as a deposit, or
    air, made ``not_covered`` (and left out of the common field of view, ``b_cov`` / ``f_cov``
    updated in place; ``b_index`` / ``f_index``: each lesion id's place in them). The detail
    of the dense ones starts with ``UNREPORTED_DETAIL``.

    "Resolved" says the calcium is gone; when the voxels the deposit held, mapped into the
    follow-up, are on average at or above the follow-up analysis's threshold, something
    calcium-dense is still there that the analysis did not report as a deposit (on thick
    slices a deposit beside bone is counted with the bone). When most of them land on air
    (``NOT_IMAGED_FRACTION``, ``AIR_HU``), the follow-up did not image that tissue: the
    corners of its grid outside the reconstruction circle read as air, and a circle smaller
    than the body (a limb or a large patient at the edge of the scanner's field) cut deposits
    off that the comparison called resolved, inside the follow-up's grid and so "covered".
    The same for a new deposit and the baseline. Neither can be measured in that scan, so
    neither is a change.
    """
    boxes: dict[str, list] = {}
    out = []
    for change in changes:
        if change.status is Status.RESOLVED:
            (lid,) = change.baseline_ids
            source, other, to_other, later = baseline, followup, reg.to_followup, True
        elif change.status is Status.NEW:
            (lid,) = change.followup_ids
            source, other, to_other, later = followup, baseline, reg.to_baseline, False
        else:
            out.append(change)
            continue
        if source.name not in boxes:
            boxes[source.name] = ndi.find_objects(source.labels)
        found = boxes[source.name]
        values = site_hu(source, lid, other.volume, to_other, found[lid - 1] if lid <= len(found) else None)
        hu = float(np.mean(values)) if len(values) else float("nan")
        air = float(np.mean(values <= AIR_HU)) if len(values) else 0.0
        threshold = _settings(other).get("threshold_hu")
        threshold = DEFAULT_THRESHOLD_HU if threshold is None else float(threshold)
        what = "follow-up" if later else "baseline"
        if air > NOT_IMAGED_FRACTION:
            detail = (f"its place in the {what} is air ({100 * air:.0f} % of its voxels): not imaged there "
                      "(outside the reconstruction circle) or the body's outline moved")
        elif hu >= threshold:
            detail = (f"{UNREPORTED_DETAIL} {what} analysis, yet its place there is dense (mean {hu:.0f} HU, "
                      f"threshold {threshold:g}): not measured in the {what}")
        else:
            out.append(change)
            continue
        if later:
            b_cov[b_index[lid]] = False
        else:
            f_cov[f_index[lid]] = False
        out.append(replace(change, status=Status.NOT_COVERED, mass_change_pct=float("nan"),
                           mass_change_sd_mg=float("nan"), detail=detail))
    return tuple(out)


def _cut_by_the_circle(baseline: Visit, followup: Visit, reg: Registration, changes, b_cov: np.ndarray,
                       f_cov: np.ndarray, b_index: dict[int, int], f_index: dict[int, int]) -> tuple[Change, ...]:
    """Deposits found in both scans but cut by one scan's reconstruction circle, made
    ``not_covered`` and left out of the common field of view (``b_cov`` / ``f_cov`` updated in
    place). The analysis measures what lies inside the circle, so a deposit that reaches past
    it there reads shrunk (or grown, cut in the baseline) by the part cut off, and one whose
    shell or background ring (the regions its mass is measured over) reaches past it reads off
    too: more than ``CUT_FRACTION`` of the deposit with them, mapped into that scan, lie where
    it imaged nothing (:func:`~calcinosis.follow.features.not_imaged`), more than in its own
    scan (a scan compared with itself, its circle cutting a deposit the same in both, keeps
    every deposit stable)."""
    from calcinosis.follow.features import not_imaged
    from calcinosis.measure.lesion import BACKGROUND_RING_MM

    own = {"b": not_imaged(baseline.volume), "f": not_imaged(followup.volume)}
    if own["b"] is None and own["f"] is None:
        return tuple(changes)
    unmeasured = {"b": own["f"], "f": own["b"]}  # in the other scan
    boxes = {"b": ndi.find_objects(baseline.labels), "f": ndi.find_objects(followup.labels)}
    out = []
    for change in changes:
        if not (change.baseline_ids and change.followup_ids):
            out.append(change)
            continue
        cut = 0.0
        for side, source, other, to_other, ids in (("b", baseline, followup, reg.to_followup, change.baseline_ids),
                                                   ("f", followup, baseline, reg.to_baseline, change.followup_ids)):
            mask = unmeasured[side]
            if mask is None:
                continue
            reach = float(_settings(other).get("shell_mm") or DEFAULT_SHELL_MM) + BACKGROUND_RING_MM
            zyx = np.concatenate([_with_shell(source, lid, boxes[side][lid - 1], reach) for lid in ids
                                  if lid <= len(boxes[side]) and boxes[side][lid - 1] is not None]
                                 or [np.zeros((0, 3), int)])
            if len(zyx) == 0:
                continue
            idx = np.rint(other.volume.lps_to_index(to_other(source.volume.index_to_lps(zyx)))).astype(int)
            inside = np.all((idx >= 0) & (idx < np.asarray(mask.shape)), axis=1)
            hit = np.zeros(len(idx), bool)
            hit[inside] = mask[tuple(idx[inside].T)]
            already = float(own[side][tuple(zyx.T)].mean()) if own[side] is not None else 0.0
            cut = max(cut, float(hit.mean()) - already)
        if cut <= CUT_FRACTION:
            out.append(change)
            continue
        b_cov[[b_index[i] for i in change.baseline_ids]] = False
        f_cov[[f_index[j] for j in change.followup_ids]] = False
        out.append(replace(change, status=Status.NOT_COVERED, mass_change_pct=float("nan"),
                           mass_change_sd_mg=float("nan"),
                           detail=f"cut by a reconstruction circle ({100 * cut:.0f} % more of it outside one scan's): "
                                  "measured there in part only"))
    return tuple(out)


def _with_shell(visit: Visit, lesion_id: int, box, reach_mm: float) -> np.ndarray:
    """Indices ``(n, 3)`` of a lesion's voxels and of those within ``reach_mm`` of them."""
    sp = np.asarray(visit.volume.spacing_zyx, float)
    pad = np.ceil(reach_mm / sp).astype(int) + 1
    lo = [max(0, s.start - p) for s, p in zip(box, pad)]
    hi = [min(n, s.stop + p) for s, n, p in zip(box, visit.labels.shape, pad)]
    sub = visit.labels[tuple(slice(a, b) for a, b in zip(lo, hi))] == lesion_id
    near = ndi.distance_transform_edt(~sub, sampling=sp) <= reach_mm
    return np.argwhere(near) + np.array(lo)


def site_hu(source: Visit, lesion_id: int, other, to_other, box=None) -> np.ndarray:
    """HU of the volume ``other`` at each voxel of ``source``'s lesion ``lesion_id``, mapped
    into it by ``to_other`` (LPS to LPS; linear interpolation, -1000 outside; empty when the
    lesion has no voxel). ``box`` (slices of ``source.labels`` holding the lesion) only saves
    the search."""
    box = box or (slice(None),) * 3
    zyx = np.argwhere(source.labels[box] == lesion_id) + np.array([s.start or 0 for s in box])
    if len(zyx) == 0:
        return np.zeros(0, np.float32)
    idx = other.lps_to_index(to_other(source.volume.index_to_lps(zyx)))
    return ndi.map_coordinates(np.asarray(other.array, np.float32), idx.T, order=1, mode="constant", cval=-1000.0)


def label_overlaps(baseline: Visit, followup: Visit, reg: Registration) -> dict[tuple[int, int], int]:
    """Voxels shared by each (baseline id, follow-up id) after resampling the follow-up labels (nearest)."""
    if not baseline.lesions or not followup.lesions:
        return {}
    resampled = followup_labels_on_baseline(baseline, followup, reg)
    both = (baseline.labels > 0) & (resampled > 0)
    if not both.any():
        return {}
    codes = baseline.labels[both].astype(np.int64) * 65536 + resampled[both].astype(np.int64)
    values, counts = np.unique(codes, return_counts=True)
    return {(int(v // 65536), int(v % 65536)): int(n) for v, n in zip(values, counts)}


def followup_labels_on_baseline(baseline: Visit, followup: Visit, reg: Registration) -> np.ndarray:
    """The follow-up label map on the baseline grid (nearest neighbour; 0 outside the follow-up)."""
    moving = volume_to_sitk(followup.volume.with_array(followup.labels))
    out = sitk.Resample(moving, grid_image(baseline.volume), reg.sitk_transform(), sitk.sitkNearestNeighbor, 0,
                        sitk.sitkUInt16)
    return sitk.GetArrayFromImage(out)


def _warnings(baseline: Visit, followup: Visit, reg: Registration, changes) -> list[str]:
    out = []
    uid = baseline.volume.metadata.get("series_uid")
    # The same voxels on axes of other sizes or directions (an image mirrored by a wrong
    # orientation) are another image: its deposits can change, and did (6 new).
    b, f = baseline.volume, followup.volume
    same = (uid and uid == f.metadata.get("series_uid")) or (
        b.shape == f.shape and np.allclose(b.spacing, f.spacing) and np.allclose(b.direction, f.direction)
        and np.array_equal(b.array, f.array))
    if same:
        out.append("the baseline and the follow-up are the same scan: every deposit is stable by construction")
    n_dense = sum(1 for c in changes if c.status == Status.NOT_COVERED and c.detail.startswith(UNREPORTED_DETAIL))
    if n_dense:
        many = n_dense != 1
        out.append(f"{n_dense} deposit{'s' if many else ''} found in one scan {'were' if many else 'was'} not "
                   f"reported by the other scan's analysis, although {'their' if many else 'its'} place there "
                   "is as dense as a deposit (on thick slices a deposit beside bone is counted with the "
                   "bone): reported as not_covered, not as resolved or new, and left out of the overall call")
    n_out = sum(1 for c in changes if c.status == Status.NOT_COVERED) - n_dense
    deposits = f"{n_out} deposit{'s' if n_out != 1 else ''}"
    verb = "are" if n_out != 1 else "is"
    if reg.overlap_fraction < SAME_ANATOMY_OVERLAP:
        out.append(f"the two fields of view cover different anatomy: the follow-up covers "
                   f"{100 * reg.overlap_fraction:.0f} % of the baseline body; {deposits} outside the common "
                   f"field of view {verb} reported as not_covered and left out of the overall call")
    elif n_out:
        # Both scans cover the same body: saying they cover different anatomy (the follow-up
        # covering "100 %" of it) only puzzled; these deposits reach a scan's first or last
        # slice, its edge or its reconstruction circle.
        out.append(f"{deposits} at the edge of one scan's field of view (its first or last slice, its border "
                   f"or its reconstruction circle) {verb} reported as not_covered and left out of the "
                   "overall call")
    if not reg.bone_dice >= POOR_BONE_DICE:
        out.append(f"registration may be poor (bone Dice {reg.bone_dice:.2f}); check the side-by-side "
                   "pictures before trusting the deposit matches")
    tb = _thickness(baseline)
    tf = _thickness(followup)
    if tb and tf and abs(tb - tf) > 0.25:
        out.append(f"slice thickness differs ({tb:g} mm then, {tf:g} mm now): the mass of small deposits "
                   "is measured less exactly on the thicker slices")
    sb, sf = _settings(baseline), _settings(followup)
    for key in ("threshold_hu", "mass_calibration_mg_per_hu_cm3"):
        if key in sb and key in sf and sb[key] != sf[key]:
            out.append(f"the analyses used different {key} ({sb[key]} vs {sf[key]}): masses are not comparable")
    kb, kf = baseline.volume.metadata.get("kvp"), followup.volume.metadata.get("kvp")
    if kb and kf and abs(float(kb) - float(kf)) > 5:
        out.append(f"tube voltage differs ({float(kb):g} vs {float(kf):g} kVp): HU of calcium and so masses differ")
    return out


def _thickness(visit: Visit) -> float | None:
    """The visit's voxel size head to foot (mm), what partial volume of small deposits depends
    on: the slice thickness of axial slices, but for a scan stored as coronal or sagittal
    slices (a reformat) the spacing along its head-foot array axis (the analysis reads it in
    that order, :func:`~calcinosis.pipeline.axial_order`), not the spacing between its slices
    or their thickness: a 1.5 mm axial scan read 0.8 mm (its pixel) as coronal slices, and the
    warning said the same scan's slices differed."""
    from calcinosis.pipeline import axial_order

    vol = visit.volume
    axis = axial_order(vol)[0]  # array axis (z, y, x) running head to foot
    t = vol.metadata.get("slice_thickness_mm") if axis == 0 else None
    t = t or vol.spacing_zyx[axis]
    return float(t) if t else None


def _settings(visit: Visit) -> dict[str, Any]:
    if visit.analysis is not None:
        return visit.analysis.config.to_dict()
    if visit.summary and isinstance(visit.summary.get("settings"), dict):
        return visit.summary["settings"]
    return {}
