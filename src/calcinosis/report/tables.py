"""``lesions.csv``: one row per deposit, contract columns first, fixed decimals (deterministic)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from calcinosis.measure.lesion import CSV_COLUMNS, Lesion

_DECIMALS = {
    "x_mm": 2, "y_mm": 2, "z_mm": 2, "volume_mm3": 2, "mass_mg": 3, "agatston": 2,
    "peak_hu": 1, "mean_hu": 1, "max_diameter_mm": 2, "depth_mm": 2, "bone_distance_mm": 2,
    "background_hu": 1, "volume_sd_mm3": 2, "mass_sd_mg": 3,
}


def lesions_csv(lesions: Sequence[Lesion]) -> str:
    """CSV text of the lesion table."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for lesion in lesions:
        row = lesion.row()
        writer.writerow([_fmt(col, row[col]) for col in CSV_COLUMNS])
    return buf.getvalue()


def written_value(column: str, value) -> str:
    """``value`` as ``lesions.csv`` writes it in ``column`` (its fixed decimals; "" for NaN)."""
    return _fmt(column, value)


def _fmt(column: str, value) -> str:
    if column in _DECIMALS:
        v = float(value)
        if v != v or v in (float("inf"), float("-inf")):
            return ""
        text = f"{v:.{_DECIMALS[column]}f}"
        return "0" + text[2:] if text.startswith("-0") and float(text) == 0 else text
    return str(value)


def read_lesions_csv(path) -> list[dict]:
    """Rows of a ``lesions.csv`` as dicts with numbers converted (for compare, batch and tests)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for row in rows:
        conv = {}
        for k, v in row.items():
            if k in ("lesion_id", "n_voxels"):
                conv[k] = int(v)
            elif k in _DECIMALS:
                conv[k] = float(v) if v != "" else float("nan")
            else:
                conv[k] = v
        out.append(conv)
    return out
