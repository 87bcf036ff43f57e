"""The comparison page's JSON: registration, per-deposit status of each visit, the changes table."""

from __future__ import annotations

import csv
import json
from typing import Any

from calcinosis.errors import InputError
from calcinosis.web.catalog import ComparisonSource

# comparison.json sections shown on the page.
DOC_KEYS = ("schema_version", "overall", "totals", "totals_common_fov", "status_counts", "split_count",
            "merged_count", "warnings")
REGISTRATION_KEYS = ("kind", "initialisation", "bone_dice", "body_dice", "fov_overlap_fraction",
                     "rotation_deg", "matrix", "offset_mm", "convention", "matched_deposits",
                     "matched_distance_mm_mean", "matched_distance_mm_max")


def comparison_view(cmp: ComparisonSource) -> dict[str, Any]:
    """What the comparison page needs (no paths, no identifiers).

    ``baseline_status`` / ``followup_status`` give the change status of each lesion id
    of that visit (the colour of its outline). The registration maps baseline LPS mm to
    follow-up LPS mm: ``followup = matrix @ baseline + offset_mm`` (matrix row-major).

    Raises
    ------
    InputError
        comparison.json or changes.csv cannot be read.
    """
    from calcinosis.web.app import json_safe

    try:
        doc = json.loads((cmp.folder / "comparison.json").read_text(encoding="utf-8"))
        with open(cmp.folder / "changes.csv", newline="", encoding="utf-8") as fh:
            changes = list(csv.DictReader(fh))
        if not isinstance(doc, dict) or not isinstance(doc.get("registration", {}), dict):
            raise ValueError("comparison.json is not a comparison")
        baseline_status: dict[str, str] = {}
        followup_status: dict[str, str] = {}
        for row in changes:
            for ids, into in ((row.get("baseline_id"), baseline_status), (row.get("followup_id"), followup_status)):
                for i in (ids or "").split(";"):
                    if i.strip():
                        into[str(int(i))] = row.get("status", "")
    except (OSError, ValueError) as exc:
        # A damaged comparison.json or changes.csv (a lesion id that is not a number) was a 500.
        reason = str(exc).replace(str(cmp.folder) + "/", "")  # no folder names (they can hold a patient's)
        raise InputError(f"comparison {cmp.key} cannot be read: {reason}") from None
    reg = doc.get("registration", {})
    return json_safe({
        "key": cmp.key, "baseline_key": cmp.baseline.key, "followup_key": cmp.followup.key,
        **{k: doc[k] for k in DOC_KEYS if k in doc},
        "registration": {k: reg[k] for k in REGISTRATION_KEYS if k in reg},
        "baseline_status": baseline_status, "followup_status": followup_status, "changes": changes,
    })
