"""Read a CT analysis ``summary.json`` as evidence for the work-up.

Only the documented keys are used: ``totals`` {count, volume_mm3, ...},
``by_compartment`` {name: {count, volume_mm3, mass_mg}}, ``by_region`` and
``pattern`` (a sentence). Missing keys are tolerated: the facts they would give
stay unknown, and a note says so. Fractions are by volume (by count when volumes
are missing). A count, volume or mass that is there must be a number from 0 to its
limit in :data:`MEASURE_LIMITS` (a negative or infinite volume would give shares of
-100% or nan%).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calcinosis.paths import check_regular_file
from calcinosis.clinical.inputs import key_text, quote
from calcinosis.errors import InputError

#: Regions where drugs are usually injected subcutaneously.
INJECTION_REGIONS = ("thigh", "abdomen", "upper_arm", "hip_gluteal")
#: Regions of periarticular and paraspinal dystrophic calcinosis.
PERIARTICULAR_REGIONS = ("shoulder", "elbow", "forearm", "wrist_hand", "knee", "ankle_foot", "back")
#: Fraction of the deposits (by volume) that makes a pattern dominant.
DOMINANT_FRACTION = 0.5
#: The measures read from a summary's totals and table rows, and the largest value each can
#: have: a billion deposits, a cubic metre, a tonne, more than any body holds. A larger value
#: is corrupt, and many of them would add up to an infinite total (shares of nan%).
MEASURE_LIMITS = {"count": 1e9, "volume_mm3": 1e9, "mass_mg": 1e9}
#: The tables whose rows give the shares.
SHARE_TABLES = ("by_compartment", "by_region")


@dataclass(frozen=True)
class ImagingEvidence:
    """Facts read from an imaging summary, with the summary keys behind each and notes."""

    facts: dict[str, bool | None]
    evidence: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    pattern: str | None = None
    source: str | None = None


def load_imaging_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``summary.json``; ``InputError`` when missing, not a regular file or not a JSON object."""
    path = Path(path)
    check_regular_file(path, "imaging summary", "the imaging summary must be a file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: imaging summary not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the imaging summary ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except ValueError:  # an integer of more than 4300 digits, which Python refuses to read
        raise InputError(f"{path}: a number in the imaging summary has too many digits") from None
    except RecursionError:
        raise InputError(
            f"{path}: the imaging summary is nested too deeply to read; is it a summary.json of analyze?"
        ) from None
    if not isinstance(data, dict):
        raise InputError(
            f"{path}: an imaging summary must be a JSON object (the summary.json of analyze)"
        )
    return data


def interpret_imaging(summary: dict[str, Any], source: str | None = None) -> ImagingEvidence:
    """Turn an imaging summary into the three imaging facts of the classification rules.

    Raises
    ------
    InputError
        Naming the key (``by_compartment.vascular.volume_mm3``) when a count, volume or mass
        is not a number from 0 to its limit.
    """
    _check_measures(summary)
    notes: list[str] = []
    facts: dict[str, bool | None] = {
        "imaging_injection_site_pattern": None,
        "imaging_periarticular_paraspinal_pattern": None,
        "imaging_vascular_pattern": None,
    }
    evidence: dict[str, tuple[tuple[str, str], ...]] = {}
    pattern = summary.get("pattern") if isinstance(summary.get("pattern"), str) else None
    if pattern is None:
        notes.append("imaging summary has no 'pattern' sentence")
    totals = summary.get("totals") if isinstance(summary.get("totals"), dict) else None
    if totals is None:
        notes.append("imaging summary has no 'totals'; deposit count treated as unknown")
    elif _number(totals.get("count")) == 0:
        notes.append("imaging found no deposits; the distribution gives no evidence")
        return ImagingEvidence({k: False for k in facts}, {}, tuple(notes), pattern, source)

    compartments = _shares(summary, "by_compartment", notes)
    regions = _shares(summary, "by_region", notes)
    if compartments is not None:
        subcutaneous = compartments.get("subcutaneous", 0.0) + compartments.get("cutaneous", 0.0)
        juxta = compartments.get("juxta_osseous", 0.0)
        vascular = compartments.get("vascular", 0.0)
        facts["imaging_vascular_pattern"] = vascular >= DOMINANT_FRACTION
        evidence["imaging_vascular_pattern"] = (
            ("by_compartment.vascular", f"{vascular:.0%} of deposits"),
        )
        if regions is not None:
            at_sites = sum(regions.get(r, 0.0) for r in INJECTION_REGIONS)
            facts["imaging_injection_site_pattern"] = (
                subcutaneous >= DOMINANT_FRACTION and at_sites >= DOMINANT_FRACTION
            )
            evidence["imaging_injection_site_pattern"] = (
                ("by_compartment.subcutaneous+cutaneous", f"{subcutaneous:.0%} of deposits"),
                ("by_region (" + ", ".join(INJECTION_REGIONS) + ")", f"{at_sites:.0%} of deposits"),
            )
            periarticular = sum(regions.get(r, 0.0) for r in PERIARTICULAR_REGIONS)
            facts["imaging_periarticular_paraspinal_pattern"] = juxta >= 0.4 or (
                juxta >= 0.2 and periarticular >= DOMINANT_FRACTION
            )
            evidence["imaging_periarticular_paraspinal_pattern"] = (
                ("by_compartment.juxta_osseous", f"{juxta:.0%} of deposits"),
                (
                    "by_region (" + ", ".join(PERIARTICULAR_REGIONS) + ")",
                    f"{periarticular:.0%} of deposits",
                ),
            )
        else:
            facts["imaging_periarticular_paraspinal_pattern"] = juxta >= 0.4 or None
            evidence["imaging_periarticular_paraspinal_pattern"] = (
                ("by_compartment.juxta_osseous", f"{juxta:.0%} of deposits"),
            )
    return ImagingEvidence(facts, evidence, tuple(notes), pattern, source)


def _shares(summary: dict[str, Any], key: str, notes: list[str]) -> dict[str, float] | None:
    """Fraction of the total per name, by volume_mm3 (by count when volumes are missing)."""
    table = summary.get(key)
    if not isinstance(table, dict) or not table:
        notes.append(f"imaging summary has no '{key}'; treated as absent")
        return None
    for measure in ("volume_mm3", "count"):
        values = {
            name: _number(row.get(measure)) if isinstance(row, dict) else None
            for name, row in table.items()
        }
        if all(v is not None for v in values.values()):
            total = sum(v for v in values.values() if v is not None)
            if total > 0:
                if measure == "count":
                    notes.append(f"imaging summary '{key}' has no volumes; shares are by count")
                return {name: (v or 0.0) / total for name, v in values.items()}
    notes.append(f"imaging summary '{key}' has neither volumes nor counts; treated as absent")
    return None


def _check_measures(summary: dict[str, Any]) -> None:
    """Refuse a count, volume or mass in ``totals`` or a share table that is not a number from 0
    to its limit (``null`` is unknown, as when it is absent)."""
    rows = [("totals", summary.get("totals"))]
    for table in SHARE_TABLES:
        if isinstance(summary.get(table), dict):
            rows += [(f"{table}.{key_text(name)}", row) for name, row in summary[table].items()]
    for where, row in rows:
        if not isinstance(row, dict):
            continue
        for measure, limit in MEASURE_LIMITS.items():
            value = row.get(measure)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InputError(f"imaging summary {where}.{measure}: expected a number, got {quote(value)}")
            if not 0 <= value <= limit:  # also nan and inf
                raise InputError(f"imaging summary {where}.{measure}: {quote(value)} is not a possible "
                                 f"{measure} (0 to {limit:,.0f}); is the summary corrupt?")  # fmt: skip
            if measure == "count" and not float(value).is_integer():
                raise InputError(f"imaging summary {where}.count: {quote(value)} is not a whole number")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
