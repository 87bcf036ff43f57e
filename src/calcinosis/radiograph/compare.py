"""Compare two radiograph analyses of one patient by the 25 % rule."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from calcinosis.errors import InputError
from calcinosis.radiograph.score import CHANGE_FRACTION, classify_change


def load_or_analyze(path: str | Path, *, pixel_spacing_mm: float | None = None) -> dict[str, Any]:
    """The summary of an output folder (``summary.json``) or of a fresh analysis of an image.

    ``pixel_spacing_mm`` is for an image without one: a DICOM header's own spacing is kept.
    """
    p = Path(path)
    if p.is_dir():
        f = p / "summary.json"
        if not f.is_file():
            raise InputError(f"{p}: folder without summary.json; give an image or a 'calcinosis radiograph' output folder")
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{f}: cannot be read as JSON ({' '.join(str(exc).split())[:120]})") from exc
        problem = summary_problem(data)
        if problem:
            raise InputError(f"{f} is not a radiograph summary ({problem}); give a 'calcinosis radiograph' output folder")
        return data
    from calcinosis.radiograph.analysis import analyze_radiograph
    from calcinosis.radiograph.io import read_radiograph

    rg = read_radiograph(p)
    if rg.pixel_spacing_mm is None and pixel_spacing_mm is not None:
        rg = read_radiograph(p, pixel_spacing_mm=pixel_spacing_mm)
    return analyze_radiograph(rg).summary


def check_same_patient(before: str | Path, after: str | Path) -> None:
    """Refuse two DICOM radiographs that cannot be one patient's before and after, by their
    headers: different patients (PatientID or birth date), or an after taken before the before
    (its change would read backwards); as ``calcinosis compare`` does for CT. Two images of
    different patients were compared without a word. Output folders and PNG/JPEG/TIFF say
    nothing (their summaries hold no identifier): not checked. No identifier is quoted."""
    b, a = _header_facts(Path(before)), _header_facts(Path(after))
    for key, what in (("PatientID", "patient IDs"), ("PatientBirthDate", "birth dates")):
        if b.get(key) and a.get(key) and b[key] != a[key]:
            raise InputError(f"the before and after radiographs have different {what} in their DICOM headers: they "
                             "are not one patient's (if they are, add --any-patients)")
    for key in ("StudyDate", "AcquisitionDate", "ContentDate"):
        if _date(b.get(key)) and _date(a.get(key)):
            if _date(a[key]) < _date(b[key]):
                raise InputError(f"the after radiograph ({a[key]}) was taken before the before one ({b[key]}); give "
                                 "the earlier first (or add --any-patients)")
            return


def _header_facts(p: Path) -> dict[str, str]:
    """PatientID, PatientBirthDate and the dates of a DICOM file's header; {} for anything else."""
    from calcinosis.radiograph.io import _looks_like_dicom

    if not p.is_file() or not _looks_like_dicom(p):
        return {}
    import pydicom

    try:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
    except Exception:  # the analysis reports an unreadable file in its own words
        return {}
    keys = ("PatientID", "PatientBirthDate", "StudyDate", "AcquisitionDate", "ContentDate")
    return {k: str(ds.get(k, "") or "").strip() for k in keys if str(ds.get(k, "") or "").strip()}


def _date(value: Any) -> str | None:
    """A DICOM date as YYYYMMDD; None when it is not one."""
    digits = "".join(ch for ch in str(value or "") if ch.isdigit())
    return digits if len(digits) == 8 else None


def summary_problem(data: Any) -> str | None:
    """What makes ``data`` unusable as a radiograph ``summary.json`` for a comparison, or None.

    Checks exactly what :func:`compare_summaries` reads: finite, non-negative numbers for the
    image score, the total area and each area's score, and the pixel spacing's presence.
    """
    if not isinstance(data, dict):
        return f"{_quote(data)} is not a JSON object"
    score, totals = data.get("score"), data.get("totals")
    if not isinstance(score, dict) or not isinstance(totals, dict):
        return "no score/totals objects"
    if not _amount(score.get("image_score")):
        return f"score.image_score is {_quote(score.get('image_score'))}, not a number"
    if not _amount(totals.get("total_area_mm2")):
        return f"totals.total_area_mm2 is {_quote(totals.get('total_area_mm2'))}, not a number"
    by_area = score.get("by_area", {})
    if not isinstance(by_area, dict):
        return "score.by_area is not an object"
    for name, area in by_area.items():
        if not isinstance(area, dict) or not _amount(area.get("score", 0)):
            return f"score.by_area[{_quote(name)}] has no numeric score"
    spacing = data.get("pixel_spacing_mm")
    if spacing is not None and not (
        isinstance(spacing, list) and len(spacing) == 2 and all(_amount(v) and v > 0 for v in spacing)
    ):
        return f"pixel_spacing_mm is {_quote(spacing)}, not two positive numbers or null"
    return None


def _amount(value: Any) -> bool:
    """A finite, non-negative JSON number (``true`` is not one)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _quote(value: Any, limit: int = 40) -> str:
    text = json.dumps(value, allow_nan=True) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _mismatches(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Warnings that the two radiographs show different parts: an anatomical area or a
    laterality that both name and that differ (a hand compared with a thigh read "stable").
    Warned, not refused: the same film may be labelled HAND at one visit, FINGER at the next."""
    out = []
    areas = [s.get("anatomical_area") for s in (before, after)]
    if all(isinstance(a, str) and a != "unknown" for a in areas) and areas[0] != areas[1]:
        out.append(f"the before radiograph is of the {areas[0]}, the after of the {areas[1]} (from their headers): "
                   "check that both show the same part")
    sides = [s.get("input", {}).get("laterality") if isinstance(s.get("input"), dict) else None
             for s in (before, after)]
    if all(side in ("L", "R") for side in sides) and sides[0] != sides[1]:
        out.append(f"the before radiograph is of the {_SIDE[sides[0]]} side, the after of the {_SIDE[sides[1]]} "
                   "(header Laterality): check that both show the same side")
    return out


_SIDE = {"L": "left", "R": "right"}


def compare_summaries(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Change of the image score and of the total deposit area, each classified by the 25 % rule.

    Raises
    ------
    InputError
        One summary has a pixel spacing and the other none: the uncalibrated analysis
        assumed a nominal pixel for its filters and extent bands, so its deposits, areas
        and score are not on the same scale (the same image compared with itself reads
        as a large change).
    """
    calibrated = [s.get("pixel_spacing_mm") is not None for s in (before, after)]
    if calibrated[0] != calibrated[1]:
        which = "before" if calibrated[0] else "after"
        other = "after" if calibrated[0] else "before"
        raise InputError(
            f"the {which} radiograph has a pixel spacing and the {other} has none: their scores and areas are "
            "not comparable; give --pixel-spacing MM (for an image) or rerun 'calcinosis radiograph' with it"
        )

    def change(b: float, a: float) -> dict[str, Any]:
        pct = None if b == 0 else round(100.0 * (a - b) / b, 1)
        return {"before": b, "after": a, "change_percent": pct, "status": classify_change(b, a)}

    score = change(before["score"]["image_score"], after["score"]["image_score"])
    area = change(before["totals"]["total_area_mm2"], after["totals"]["total_area_mm2"])
    b_areas, a_areas = before["score"].get("by_area", {}), after["score"].get("by_area", {})
    by_area = {
        n: change(b_areas.get(n, {}).get("score", 0), a_areas.get(n, {}).get("score", 0))
        for n in sorted(set(b_areas) | set(a_areas))
    }
    warnings = [*_mismatches(before, after)]
    if not calibrated[0]:
        warnings.append("neither image has a pixel spacing: areas compared in nominal millimetres")
    for name, summary in (("before", before), ("after", after)):
        # Each analysis's own warnings ("nothing was analysed" behind a 0 -> 0 "stable"):
        # comparison.json held none of them.
        own = summary.get("warnings")
        warnings.extend(f"{name}: {w}" for w in (own if isinstance(own, list) else ()) if isinstance(w, str))
    return {
        "schema_version": "1.0",
        "rule": f"change > +{CHANGE_FRACTION:.0%} progression, < -{CHANGE_FRACTION:.0%} improvement, else stable",
        "score": score,
        "total_area_mm2": area,
        "by_area": by_area,
        "status": score["status"],
        "warnings": warnings,
    }
