"""``changes.csv`` and ``comparison.json``: the comparison in files (fixed decimals, deterministic)."""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from typing import Any

import numpy as np

from calcinosis import __version__
from calcinosis.follow.compare import SCHEMA_VERSION, Comparison
from calcinosis.follow.matching import Change, Status, change_status, difference_sd_mg
from calcinosis.report.summary import COMPARTMENTS, burden, shareable_warnings

# Contract columns first, in this order; more follow.
CHANGES_COLUMNS = (
    "baseline_id", "followup_id", "status", "baseline_mass_mg", "followup_mass_mg", "mass_change_pct",
    "baseline_volume_mm3", "followup_volume_mm3", "x_mm", "y_mm", "z_mm",
    "track_id", "detail", "distance_mm", "region", "compartment", "mass_change_mg", "mass_change_sd_mg",
)
_DECIMALS = {"baseline_mass_mg": 3, "followup_mass_mg": 3, "mass_change_pct": 1, "baseline_volume_mm3": 2,
             "followup_volume_mm3": 2, "x_mm": 2, "y_mm": 2, "z_mm": 2, "distance_mm": 2,
             "mass_change_mg": 3, "mass_change_sd_mg": 3}


def change_row(change: Change) -> dict[str, Any]:
    """The ``changes.csv`` row of a change, as strings. Split / merged ids are joined by ``;``."""
    values = {
        "baseline_id": ";".join(str(i) for i in change.baseline_ids),
        "followup_id": ";".join(str(i) for i in change.followup_ids),
        "status": change.status.value,
        "track_id": str(change.track_id),
        "detail": change.detail,
        "region": change.region,
        "compartment": change.compartment,
    }
    for col, nd in _DECIMALS.items():
        values[col] = _num(getattr(change, col), nd)
    return values


def changes_csv(changes) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CHANGES_COLUMNS)
    for change in changes:
        row = change_row(change)
        writer.writerow([row[c] for c in CHANGES_COLUMNS])
    return buf.getvalue()


def _num(value: float, nd: int) -> str:
    v = float(value)
    if not math.isfinite(v):
        return ""
    text = f"{v:.{nd}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _r(value: float, nd: int):
    v = float(value)
    return round(v, nd) if math.isfinite(v) else None


def comparison_document(cmp: Comparison, *, baseline_source: str, followup_source: str) -> dict[str, Any]:
    """The ``comparison.json`` document."""
    b_les, f_les = cmp.baseline.lesions, cmp.followup.lesions
    pct, sds = cmp.config.change_pct, cmp.config.noise_sds
    b_cov = [les for les, c in zip(b_les, cmp.baseline_covered) if c]
    f_cov = [les for les, c in zip(f_les, cmp.followup_covered) if c]
    reg = cmp.registration
    matched = [c for c in cmp.changes if c.baseline_ids and c.followup_ids]
    dist = [c.distance_mm for c in matched if len(c.baseline_ids) == 1 and len(c.followup_ids) == 1]
    counts = Counter(c.status.value for c in cmp.changes)
    common = _then_now(b_cov, f_cov, pct, sds)
    everything_common = len(b_cov) == len(b_les) and len(f_cov) == len(f_les)
    return {
        "schema_version": SCHEMA_VERSION,
        "software": {"name": "calcinosis", "version": __version__},
        "baseline": _visit_doc(cmp.baseline, baseline_source),
        "followup": _visit_doc(cmp.followup, followup_source),
        "settings": cmp.config.to_dict(),
        "overall": {
            "call": cmp.overall,
            "mass_change_pct": _r(cmp.overall_change_pct, 1),
            "mass_change_mg": common["mass_change_mg"],
            "mass_change_sd_mg": common["mass_change_sd_mg"],
            "uncertainty": "mass_change_sd_mg is the SD that image noise alone gives the change (the "
                           "deposits' own mass SDs in quadrature); it leaves out differences in slice "
                           "thickness, scanner and registration between the visits",
            "rule": f"total mass in the common field of view changed by more than {pct:g} % "
                    f"and by more than {sds:g} SDs of the image noise: "
                    "progression (up) or improvement (down); otherwise stable",
        },
        # Every deposit of each scan; when the fields of view differ these compare different
        # anatomy, and the call says so instead of reading the difference as a change.
        "totals": _then_now(b_les, f_les, pct, sds, comparable=everything_common),
        "totals_common_fov": common,
        # The groups, like the overall call, in the common field of view.
        "by_region": _grouped(b_cov, f_cov, "region", (), pct, sds),
        "by_compartment": _grouped(b_cov, f_cov, "compartment", COMPARTMENTS, pct, sds),
        "by_side": _grouped(b_cov, f_cov, "side", ("left", "right", "midline"), pct, sds),
        "status_counts": {s.value: counts.get(s.value, 0) for s in Status},
        "split_count": sum(1 for c in cmp.changes if "split" in c.detail),
        "merged_count": sum(1 for c in cmp.changes if "merged" in c.detail),
        "registration": {
            "kind": reg.kind,
            "initialisation": reg.initialisation,
            "final_metric_mean_squares": _r(reg.metric, 2),
            "bone_dice": _r(reg.bone_dice, 4),
            "body_dice": _r(reg.body_dice, 4),
            "fov_overlap_fraction": _r(reg.overlap_fraction, 4),
            "rotation_deg": _r(reg.rotation_deg(), 3),
            "scale_factors": [_r(s, 5) for s in reg.scale_factors()],
            "matrix": [_r(v, 8) for v in reg.matrix.ravel()],
            "offset_mm": [_r(v, 4) for v in reg.offset],
            "convention": "followup_lps = matrix @ baseline_lps + offset_mm (matrix row-major)",
            "deposit_refinement_mm": [_r(v, 3) for v in reg.refinement_mm],
            "deposits_lined_up": {"after_refinement": cmp.deposits_lined_up[0],
                                  "before_refinement": cmp.deposits_lined_up[1]},
            "matched_deposits": len(dist),
            "matched_distance_mm_mean": _r(float(np.mean(dist)), 3) if dist else None,
            "matched_distance_mm_max": _r(float(np.max(dist)), 3) if dist else None,
        },
        "warnings": list(cmp.warnings),
        "baseline_warnings": _analysis_warnings(cmp.baseline),
        "followup_warnings": _analysis_warnings(cmp.followup),
    }


def _then_now(b_les, f_les, pct: float, noise_sds: float, comparable: bool = True) -> dict[str, Any]:
    b, f = burden(b_les), burden(f_les)
    sd = difference_sd_mg(b_les, f_les)
    status, change = change_status(b["mass_mg"], f["mass_mg"], pct, sd, noise_sds)
    call = {Status.GROWN: "progression", Status.SHRUNK: "improvement"}.get(status, "stable")
    return {"baseline": b, "followup": f, "mass_change_mg": _r(f["mass_mg"] - b["mass_mg"], 3),
            "mass_change_sd_mg": _r(sd, 3), "mass_change_pct": _r(change, 1),
            "call": call if comparable else "not_comparable"}


def _grouped(b_les, f_les, key: str, names, pct: float, noise_sds: float) -> dict[str, Any]:
    keys = list(dict.fromkeys([*names, *sorted({getattr(les, key) for les in (*b_les, *f_les)})]))
    return {k: _then_now([les for les in b_les if getattr(les, key) == k],
                         [les for les in f_les if getattr(les, key) == k], pct, noise_sds) for k in keys}


def _visit_doc(visit, source: str) -> dict[str, Any]:
    vol = visit.volume
    doc: dict[str, Any] = {
        "source": source,
        "lesion_count": len(visit.lesions),
        "size_voxels": [int(vol.shape[2]), int(vol.shape[1]), int(vol.shape[0])],
        "spacing_mm": [round(s, 6) for s in vol.spacing],
        "origin_mm": [round(o, 6) for o in vol.origin],
    }
    for key in ("series_uid", "study_uid", "study_date", "slice_thickness_mm", "kvp"):
        value = vol.metadata.get(key)
        if value is not None:
            doc[key] = float(value) if isinstance(value, (int, float, np.number)) else str(value)
    return doc


def _analysis_warnings(visit) -> list[str]:
    if visit.analysis is not None:
        # As the visit's summary.json holds them (compare keeps no identifiers).
        return shareable_warnings(visit.analysis.warnings, visit.analysis.volume.metadata)
    if visit.summary and isinstance(visit.summary.get("warnings"), list):
        return [str(w) for w in visit.summary["warnings"]]
    return []
