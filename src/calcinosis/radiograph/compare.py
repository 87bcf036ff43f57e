"""Compare two radiograph analyses of one patient by the 25 % rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from calcinosis.errors import InputError
from calcinosis.radiograph.score import CHANGE_FRACTION, classify_change


def load_or_analyze(path: str | Path, *, pixel_spacing_mm: float | None = None) -> dict[str, Any]:
    """The summary of an output folder (``summary.json``) or of a fresh analysis of an image."""
    p = Path(path)
    if p.is_dir():
        f = p / "summary.json"
        if not f.is_file():
            raise InputError(f"{p}: folder without summary.json; give an image or a 'calcinosis radiograph' output folder")
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{f}: cannot be read as JSON ({exc})") from exc
        if "score" not in data or "totals" not in data:
            raise InputError(f"{f}: not a radiograph summary (no score/totals)")
        return data
    from calcinosis.radiograph.analysis import analyze_radiograph
    from calcinosis.radiograph.io import read_radiograph

    return analyze_radiograph(read_radiograph(p, pixel_spacing_mm=pixel_spacing_mm)).summary


def compare_summaries(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Change of the image score and of the total deposit area, each classified by the 25 % rule."""

    def change(b: float, a: float) -> dict[str, Any]:
        pct = None if b == 0 else round(100.0 * (a - b) / b, 1)
        return {"before": b, "after": a, "change_percent": pct, "status": classify_change(b, a)}

    score = change(before["score"]["image_score"], after["score"]["image_score"])
    area = change(before["totals"]["total_area_mm2"], after["totals"]["total_area_mm2"])
    areas = sorted(set(before["score"]["by_area"]) | set(after["score"]["by_area"]))
    by_area = {
        n: change(before["score"]["by_area"].get(n, {}).get("score", 0), after["score"]["by_area"].get(n, {}).get("score", 0))
        for n in areas
    }
    warnings = []
    if (before.get("pixel_spacing_mm") is None) or (after.get("pixel_spacing_mm") is None):
        warnings.append("one of the images has no pixel spacing: areas compared in nominal millimetres")
    return {
        "schema_version": "1.0",
        "rule": f"change > +{CHANGE_FRACTION:.0%} progression, < -{CHANGE_FRACTION:.0%} improvement, else stable",
        "score": score,
        "total_area_mm2": area,
        "by_area": by_area,
        "status": score["status"],
        "warnings": warnings,
    }
