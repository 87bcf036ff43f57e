"""The radiograph path end to end: segment, detect, measure, group by area, score."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from calcinosis import __version__
from calcinosis.errors import InputError
from calcinosis.radiograph.detect import DetectConfig, detect_deposits
from calcinosis.radiograph.io import Radiograph
from calcinosis.radiograph.score import SCORE_DESCRIPTION, score_areas
from calcinosis.radiograph import morph
from calcinosis.radiograph.segment import Segmentation, _px, segment_radiograph

SCHEMA_VERSION = "1.0"
#: Pixel size assumed for filter scales when the input has none (typical CR/DR pitch).
NOMINAL_SPACING_MM = 0.2
_AREA_WORDS = (
    ("FINGER", "fingers"), ("HAND", "hand"), ("WRIST", "wrist"), ("FOREARM", "forearm"),
    ("ELBOW", "elbow"), ("THIGH", "thigh"), ("FEMUR", "thigh"), ("LOWER LEG", "leg"),
    ("TIBIA", "leg"), ("LEG", "leg"),
)  # fmt: skip

#: Header body parts (BodyPartExamined, DICOM's defined terms, matched as words within it) of
#: the trunk and head. The detector is built and checked on limbs; on a real chest CR
#: (pydicom-data RG1_UNCR.dcm) it read 15 lung vessels seen end-on and hilar shadows as deposits
#: and scored them 8. Lung, bowel gas and the spine's overlapping outlines are not modelled.
TRUNK_BODY_PARTS = (
    "CHEST", "THORAX", "LUNG", "HEART", "BREAST", "RIB", "STERNUM", "ABDOMEN", "PELVIS", "SACRUM",
    "COCCYX", "SPINE", "SKULL", "HEAD", "NECK", "WHOLEBODY",
)  # fmt: skip

#: Fewest pixels a side of a radiograph may have: fewer is an icon, a strip or a line, not an
#: image of a limb (a 1 x 1000 image crashed the report's overlay; a 3 x 3 one was "analysed").
MIN_SIDE_PX = 32

#: Input description keys kept out of the outputs: the file's path (a folder or file name can
#: be the patient's name, "Smith_John/hand.dcm") and the header's processing description
#: (free text typed at the device). summary.json and report.html carried both; the CT path
#: writes neither without --keep-identifiers. The description itself keeps them (the
#: processing description names the anatomical area).
IDENTIFYING_INPUT_KEYS = frozenset({"path", "processing_description"})


@dataclass(frozen=True)
class RadiographDeposit:
    """One deposit: position (pixels, and mm from the centre of pixel (0, 0)), size, density."""

    deposit_id: int
    row_px: float
    col_px: float
    y_mm: float | None
    x_mm: float | None
    area_px: int
    area_mm2: float | None
    peak_contrast: float
    relative_density: float | None  # peak contrast / nearby cortical bone contrast
    over_bone: bool
    area: str
    detection_z: float


@dataclass(frozen=True)
class RadiographResult:
    radiograph: Radiograph
    segmentation: Segmentation
    deposits: tuple[RadiographDeposit, ...]
    label_map: np.ndarray  # int32, deposit_id per pixel
    summary: dict[str, Any] = field(default_factory=dict)


def anatomical_area(description: dict[str, Any]) -> str:
    """Best-effort anatomical area from the header's body part / processing description."""
    text = " ".join(str(description.get(k) or "") for k in ("body_part_examined", "processing_description"))
    text = text.upper()
    for word, name in _AREA_WORDS:
        if word in text:
            return name
    return "unknown"


def trunk_body_part(description: dict[str, Any]) -> str | None:
    """The header's body part when it names the trunk or head (see ``TRUNK_BODY_PARTS``), else None."""
    part = str(description.get("body_part_examined") or "").upper()
    return part if any(word in part for word in TRUNK_BODY_PARTS) else None


def analyze_radiograph(radiograph: Radiograph, config: DetectConfig = DetectConfig()) -> RadiographResult:
    """Find, measure and score calcinosis on one radiograph.

    Raises
    ------
    InputError
        The header names a part of the trunk or head: the detector is for limbs. The image
        has a side of fewer than :data:`MIN_SIDE_PX` pixels.
    """
    rows, cols = radiograph.image.shape
    if min(rows, cols) < MIN_SIDE_PX:
        raise InputError(f"an image of {cols} x {rows} pixels is too small to be a radiograph (at least "
                         f"{MIN_SIDE_PX} pixels a side); give the full-size image")
    trunk = trunk_body_part(radiograph.description)
    if trunk is not None:
        raise InputError(
            f"a radiograph of the {trunk.lower()} (BodyPartExamined): this path finds calcinosis on limbs "
            "(hand, wrist, forearm, elbow, thigh, leg), not on the trunk or head, where lung vessels and "
            "bowel gas read as deposits; give a limb radiograph"
        )
    t0 = time.perf_counter()
    spacing = radiograph.pixel_spacing_mm or (NOMINAL_SPACING_MM, NOMINAL_SPACING_MM)
    image = radiograph.image
    seg = segment_radiograph(image, spacing, saturated_value=radiograph.saturated_value)
    cands, noise = detect_deposits(image, spacing, seg.body_mask, seg.bone_mask, seg.exclusion_mask, config, fill_mask=seg.object_mask)
    smooth = ndimage.gaussian_filter(image.astype(np.float32), _px(0.4, spacing))
    bone = seg.bone_mask
    area_default = anatomical_area(radiograph.description)
    labels = np.zeros(image.shape, dtype=np.int32)
    deposits = []
    known = radiograph.pixel_spacing_mm is not None
    for i, c in enumerate(cands, start=1):
        view = labels[c.mask_slice]
        view[c.mask & (view == 0)] = i
        over = float(bone[c.mask_slice][c.mask].mean()) >= 0.05
        rel = _relative_density(smooth, bone, seg.body_mask, c, spacing)
        area_px = int(c.area_px)
        deposits.append(
            RadiographDeposit(
                deposit_id=i,
                row_px=round(c.row_px, 2),
                col_px=round(c.col_px, 2),
                y_mm=round(c.row_px * spacing[0], 2) if known else None,
                x_mm=round(c.col_px * spacing[1], 2) if known else None,
                area_px=area_px,
                area_mm2=round(area_px * spacing[0] * spacing[1], 2) if known else None,
                peak_contrast=round(c.peak_contrast, 3),
                relative_density=None if rel is None else round(rel, 3),
                over_bone=over,
                area=area_default,
                detection_z=round(c.z_peak, 2),
            )
        )
    summary = _summary(radiograph, seg, deposits, noise, spacing, time.perf_counter() - t0)
    return RadiographResult(radiograph, seg, tuple(deposits), labels, summary)


def _relative_density(smooth, bone, body, cand, spacing) -> float | None:
    """Deposit peak contrast over the contrast of cortical bone within 25 mm (None if no bone)."""
    r, c = int(round(cand.row_px)), int(round(cand.col_px))
    rad = int(np.ceil(_px(25.0, spacing)))
    sl = (slice(max(r - rad, 0), r + rad + 1), slice(max(c - rad, 0), c + rad + 1))
    b, m = bone[sl], body[sl]
    soft = m & ~morph.dilate(b, _px(1.0, spacing))
    if b.sum() < 20 or soft.sum() < 20:
        return None
    cortical = float(np.percentile(smooth[sl][b], 95)) - float(np.median(smooth[sl][soft]))
    if cortical <= 0:
        return None
    return float(cand.peak_contrast / cortical)


#: Least part of the image the air beside the body must be for its brightness to be judged.
_NEGATIVE_MIN_AIR_FRACTION = 0.02


def _negative_warning(rg: Radiograph, seg: Segmentation) -> str | None:
    """A warning when the air beside the body is brighter than the body: the image is a
    negative (bright = air) read as bright = dense. The phantoms read so made 26-44 false
    deposits (hand, elbow, thigh), silently; air is darker than tissue in every positive
    (phantoms, the real tibia CR RG3: air median 49, leg 578)."""
    air = seg.field_mask & ~seg.body_mask
    if not seg.body_mask.any() or air.mean() < _NEGATIVE_MIN_AIR_FRACTION:
        return None
    if np.median(rg.image[air]) <= np.median(rg.image[seg.body_mask]):
        return None
    fix = ("its PhotometricInterpretation may be wrong" if rg.description.get("format") == "DICOM"
           else "if it is a negative, give --invert")
    return ("the air beside the body is brighter than the body, as in a negative (bright = air): the deposits "
            f"found are not to be trusted; {fix}")


def _summary(rg: Radiograph, seg: Segmentation, deposits, noise, spacing, seconds) -> dict[str, Any]:
    warnings = list(rg.warnings)
    if rg.pixel_spacing_mm is None:
        warnings.append(
            f"filter sizes assumed a nominal {NOMINAL_SPACING_MM} mm pixel; the score's extent bands "
            "use the same assumption"
        )
    if not seg.body_mask.any():
        warnings.append("no body part found in the image; nothing was analysed")
    negative = _negative_warning(rg, seg)
    if negative:
        warnings.append(negative)
    triples = []
    for d in deposits:
        area_mm2 = d.area_mm2 if d.area_mm2 is not None else d.area_px * spacing[0] * spacing[1]
        triples.append((d.area, area_mm2, d.relative_density))
    by_area = score_areas(triples)
    total_area = sum(t[1] for t in triples)
    return {
        "schema_version": SCHEMA_VERSION,
        "software": {"name": "calcinosis", "version": __version__, "path": "radiograph"},
        "input": {k: v for k, v in rg.description.items() if k not in IDENTIFYING_INPUT_KEYS},
        "pixel_spacing_mm": list(rg.pixel_spacing_mm) if rg.pixel_spacing_mm else None,
        "anatomical_area": anatomical_area(rg.description),
        "warnings": warnings,
        "totals": {
            "count": len(deposits),
            "count_over_bone": sum(d.over_bone for d in deposits),
            "total_area_mm2": round(total_area, 2),
            "total_area_px": int(sum(d.area_px for d in deposits)),
        },
        "score": {
            "image_score": int(sum(a["score"] for a in by_area.values())),
            "by_area": by_area,
            "description": SCORE_DESCRIPTION,
        },
        "excluded": [
            {
                "kind": o.kind,
                "row_px": round(o.row_px, 1),
                "col_px": round(o.col_px, 1),
                "area_px": o.area_px,
                "bbox_px": list(o.bbox_px),
                "reason": o.reason,
            }
            for o in seg.excluded
        ],
        "collimation_px": seg.collimation_px,
        "noise": {k: (round(float(v), 4) if np.isfinite(v) else None) for k, v in noise.items()},
        "run_time_s": round(seconds, 2),
    }
