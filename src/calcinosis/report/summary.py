"""``summary.json``: input, settings, totals by compartment / region / side, pattern, exclusions."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import numpy as np

from calcinosis import __version__
from calcinosis.anatomy.region_rules import REGIONS
from calcinosis.measure.lesion import CALCINOSIS_COMPARTMENTS, Lesion, combined_sd
from calcinosis.report.pattern import describe_pattern
from calcinosis.report.tables import written_value

SCHEMA_VERSION = "1.0"
# Bone structures at least this large (mm^3) are listed one by one among the excluded objects.
LISTED_BONE_MM3 = 5000.0
COMPARTMENTS = ("cutaneous", "subcutaneous", "intramuscular", "juxta_osseous", "vascular", "visceral")
SIDES = ("left", "right", "midline")
# What each exclusion reason means, said once in summary.json.
EXCLUSION_REASONS = {
    "table": "CT table or mattress under the patient",
    "external_object": "object outside the body (clothing, sheet, cable)",
    "external_metal": "metal lying on the skin (jewellery, ECG electrode, fastener)",
    "metal": "metal inside the body (implant)",
    "bone": "bone (and deposits not separable from it)",
    "bone_piece": ("rod- or plate-shaped piece that the bone split parted from a bone: a process, edge or rim "
                   "of the bone (an elongated deposit lying on a bone would be here too: each is listed)"),
    "rib_cage": "rib or costal cartilage cut across by the slices: skeletal, not calcinosis",
    "costal_cartilage": "calcified costal cartilage: skeletal, not calcinosis",
    "scan_edge": "cut by the edge of the scan (first or last slice, image border): seen only in part, not measured",
    "bone_partial_volume": ("faint piece beside bone on thick slices or coarse pixels: the bone's own partial "
                            "volume, not a deposit"),
    "bone_blur_noise": ("small, low-contrast speck within 2 mm of bone: the bone's blur lifted over the threshold "
                        "by noise, not a deposit"),
    "dense_soft_tissue": "resolved finding too faint to be calcium (cartilage of ear or nose, lens, skin edge)",
    "dense_tissue_noise": ("speck of one to three voxels, of low contrast, in tissue denser than muscle (an organ "
                           "enhanced by contrast): noise lifted over the threshold, not a deposit"),
}
INPUT_KEYS = ("modality", "kvp", "slice_thickness_mm", "convolution_kernel", "contrast_agent",
              "series_uid", "study_uid", "frame_of_reference_uid", "study_date", "manufacturer",
              "source_format")


def burden(lesions: Iterable[Lesion]) -> dict[str, float | None]:
    """Count, volume (mm^3), mass (mg) and Agatston score of a group of lesions, and the
    standard deviations that image noise alone gives the volume and mass (the lesions' own
    added in quadrature: their noise is independent; None when a lesion's is unknown)."""
    lesions = list(lesions)
    return {
        "count": len(lesions),
        "volume_mm3": _sum_as_written("volume_mm3", [lesion.volume_mm3 for lesion in lesions]),
        "mass_mg": _sum_as_written("mass_mg", [lesion.mass_mg for lesion in lesions]),
        "agatston": _sum_as_written("agatston", [lesion.agatston for lesion in lesions]),
        "volume_sd_mm3": _quadrature([lesion.volume_sd_mm3 for lesion in lesions], 2),
        "mass_sd_mg": _quadrature([lesion.mass_sd_mg for lesion in lesions], 3),
    }


def _sum_as_written(column: str, values: Sequence[float]) -> float | None:
    """The sum of ``values`` as ``lesions.csv`` writes them (its decimals), added exactly: the
    total a reader of the CSV gets (the rounded sum of the unrounded values was 1202.379 mg
    where the rows add up to 1202.380). 0.0 for no values; None when one is not a number."""
    texts = [written_value(column, v) for v in values]
    if "" in texts:
        return None
    return float(sum((Decimal(t) for t in texts), Decimal(0)))


def _quadrature(sds: Sequence[float], nd: int) -> float | None:
    total = combined_sd(sds)
    return round(total, nd) if math.isfinite(total) else None


def group_burden(lesions: Sequence[Lesion], key: str, names: Iterable[str] = ()) -> dict[str, dict]:
    """Burden per value of a lesion attribute; ``names`` are always present (zero if absent)."""
    keys = list(dict.fromkeys([*names, *sorted({getattr(lesion, key) for lesion in lesions})]))
    return {k: burden(lesion for lesion in lesions if getattr(lesion, key) == k) for k in keys}


def build_summary(analysis, *, keep_identifiers: bool = False) -> dict[str, Any]:
    """The ``summary.json`` document of an :class:`~calcinosis.pipeline.Analysis`."""
    vol = analysis.volume
    meta = vol.metadata
    lesions = analysis.lesions
    calcinosis = [lesion for lesion in lesions if lesion.compartment in CALCINOSIS_COMPARTMENTS]
    # Every key present, null where the input does not say (a NIfTI has no kVp or UIDs): a
    # reader's summary["input"]["kvp"] does not fail.
    inp: dict[str, Any] = {k: meta.get(k) for k in INPUT_KEYS}
    inp["modality"] = inp["modality"] or "CT"
    # The input's file or folder name can hold the patient's name: only with the keep option.
    if keep_identifiers and meta.get("source_path"):
        inp["source_name"] = str(meta["source_path"]).rstrip("/").split("/")[-1]
    inp["size_voxels"] = [int(vol.shape[2]), int(vol.shape[1]), int(vol.shape[0])]
    inp["spacing_mm"] = [round(s, 6) for s in vol.spacing]
    inp["origin_mm"] = [round(o, 6) for o in vol.origin]
    inp["direction"] = [round(float(v), 8) + 0.0 for v in vol.direction.ravel()]  # + 0.0: no "-0.0"
    if keep_identifiers and meta.get("identifiers"):
        inp["identifiers"] = dict(meta["identifiers"])
    excluded = analysis.detection.excluded
    to_lps = vol.index_to_lps
    offset = np.array([0, 0, 0], float)
    if analysis.facts.get("crop_offset") is not None:
        offset = np.asarray(analysis.facts["crop_offset"], float)
    objects = []
    for e in excluded:
        if e.reason == "bone" and e.volume_mm3 < LISTED_BONE_MM3:
            continue  # bone fragments are counted, not listed
        x, y, z = (round(float(v), 2) for v in to_lps(np.asarray(e.centroid_index) + offset))
        objects.append({"reason": e.reason, "volume_mm3": round(e.volume_mm3, 1),
                        "peak_hu": round(e.peak_hu, 1), "x_mm": x, "y_mm": y, "z_mm": z})
    facts = analysis.facts
    return {
        "schema_version": SCHEMA_VERSION,
        "software": {"name": "calcinosis", "version": __version__},
        "input": inp,
        "settings": analysis.config.to_dict(),
        "image": {
            "noise_hu": _r(analysis.noise_hu, 2),
            "noise_smoothed_hu": _r(facts.get("noise_smoothed_hu"), 2),
            "soft_tissue_level_hu": _r(facts.get("tissue_level_hu"), 1),
            "seed_threshold_hu": _r(facts.get("seed_threshold_hu"), 1),
            "midline_x_mm": _r(facts.get("midline_x_mm"), 2),
            "body_parts": facts.get("body_parts"),
            # One voxel's noise SD and how much correlated noise widens a sum over a deposit
            # (the noise SDs of volume and mass use them); null when nothing was measured.
            "noise_structure": facts.get("noise_structure"),
        },
        "totals": burden(lesions),
        "by_compartment": group_burden(lesions, "compartment", COMPARTMENTS),
        "by_region": group_burden(lesions, "region", REGIONS),  # every region: one shape for all scans
        "by_side": group_burden(lesions, "side", SIDES),
        "by_region_compartment": {
            region: group_burden([l for l in lesions if l.region == region], "compartment")
            for region in sorted({l.region for l in lesions})
        },
        "calcinosis_totals": burden(calcinosis),
        # The same without the findings of low confidence (each with its flags in lesions.csv):
        # a conservative figure where some findings may not be calcinosis.
        "calcinosis_totals_high_confidence": burden(l for l in calcinosis if l.confidence == "high"),
        "low_confidence_count": sum(lesion.confidence == "low" for lesion in lesions),
        "pattern": describe_pattern(calcinosis,
                                    others=[l for l in lesions if l.compartment not in CALCINOSIS_COMPARTMENTS]),
        "anatomy": analysis.facts.get("anatomy", {}),
        "excluded": {
            "counts": dict(sorted(Counter(e.reason for e in excluded).items())),
            "reasons": {r: EXCLUSION_REASONS.get(r, r) for r in sorted({e.reason for e in excluded})},
            "skeletal_and_visceral_policy": (
                "calcified costal cartilage and rib pieces are excluded as skeletal; "
                "vessel-wall calcification is reported as compartment 'vascular' and calcification "
                "in organs, lung, bowel, beside the airway or inside the skull (dural, pineal, "
                "choroid plexus) as 'visceral'; both count in the totals but not in calcinosis_totals"),
            "objects": objects,
        },
        "warnings": shareable_warnings(analysis.warnings, meta, keep_identifiers=keep_identifiers),
        "run_time_s": round(analysis.run_time_s, 2),
    }


def shareable_warnings(warnings: Iterable[str], metadata: dict, *, keep_identifiers: bool = False) -> list[str]:
    """The analysis's warnings as an output file may hold them.

    The warning that names a DICOM folder's other CT series quotes their SeriesDescription:
    free text typed at the scanner, which can hold the patient's name (the DICOM SEG and SR
    leave descriptions out for that reason; summary.json and report.html quoted them). Without
    ``keep_identifiers`` each is left out: the series' UID and slice count still name it for
    ``--series``.
    """
    out = list(warnings)
    if keep_identifiers:
        return out
    for other in metadata.get("other_ct_series") or ():
        description = str(other.get("description") or "")
        if description:
            out = [w.replace(f" slices, {description})", " slices)") for w in out]
    return out


def _r(value, nd):
    if value is None:
        return None
    value = float(value)
    return round(value, nd) if np.isfinite(value) else None
