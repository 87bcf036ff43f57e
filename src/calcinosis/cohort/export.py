"""Read a registry back: one table row per study (``cohort export``) and counts (``cohort status``).

Export columns, in order: ``key, status, input_path, series_uid, error, run_time_s,
software_version, settings_hash, lesion_count, volume_mm3, mass_mg, agatston, volume_sd_mm3,
mass_sd_mg`` (``settings_hash``: of the analysis settings the study was done with, so that
results of other settings are not mixed unseen; the last two: the noise SDs of the totals,
empty where unknown). These totals count every
lesion, vascular and visceral calcification included; the calcinosis burden (cutaneous,
subcutaneous, intramuscular and juxta-osseous: summary.json's ``calcinosis_totals``, a
trial's endpoint) follows as ``calcinosis_<measure>``, and the same without findings of low
confidence (``calcinosis_totals_high_confidence``) as ``calcinosis_high_confidence_<measure>``,
with measure in ``count, volume_mm3, mass_mg, agatston, volume_sd_mm3, mass_sd_mg`` (empty
for studies whose summary lacks them). Then, for every compartment of the output contract,
every body region and every side found in the registry, ``compartment_<name>_<measure>``,
``region_<name>_<measure>`` and ``side_<name>_<measure>`` with measure in ``count,
volume_mm3, mass_mg, agatston``. Studies that are not done have empty totals.

The lesion export (``cohort export --lesions``) is one row per lesion of every done study:
``key`` then lesions.csv's columns, each value written as that study's lesions.csv writes
it (same decimals, empty where unknown), so the rows of a study are its lesions.csv's rows.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from calcinosis import atomic
from calcinosis.cohort.registry import STATUSES, Registry, lesions, studies, summaries
from calcinosis.measure.lesion import CSV_COLUMNS
from calcinosis.report.summary import COMPARTMENTS, SIDES
from calcinosis.report.tables import written_value

MEASURES = ("count", "volume_mm3", "mass_mg", "agatston")
# summary.json's calcinosis burdens and their export column prefixes.
CALCINOSIS_BURDENS = (("calcinosis_totals", "calcinosis"),
                      ("calcinosis_totals_high_confidence", "calcinosis_high_confidence"))
BURDEN_MEASURES = MEASURES + ("volume_sd_mm3", "mass_sd_mg")
BASE_COLUMNS = ("key", "status", "input_path", "series_uid", "error", "run_time_s",
                "software_version", "settings_hash", "lesion_count", "volume_mm3", "mass_mg", "agatston",
                "volume_sd_mm3", "mass_sd_mg")
# An export's header starts so (in every version); export replaces only such a file.
EXPORT_HEADER_START = ",".join(BASE_COLUMNS[:3]).encode() + b","
LESION_EXPORT_COLUMNS = ("key", *CSV_COLUMNS)
LESION_EXPORT_HEADER_START = ",".join(LESION_EXPORT_COLUMNS[:3]).encode() + b","


@dataclass(frozen=True)
class CohortStatus:
    """Study counts by status (every status present, zero if none), failures ``(key, input, reason)``
    and the done studies counted by the settings hash they were analysed with."""

    counts: dict[str, int]
    failures: tuple[tuple[str, str, str], ...]
    done_by_settings: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def cohort_status(registry: Registry) -> CohortStatus:
    with registry.engine.connect() as conn:
        counts = dict.fromkeys(STATUSES, 0)
        for status, n in conn.execute(sa.select(studies.c.status, sa.func.count())
                                      .group_by(studies.c.status)):
            counts[status] = int(n)
        failures = tuple((r.key, r.input_path, r.error or "") for r in conn.execute(
            sa.select(studies.c.key, studies.c.input_path, studies.c.error)
            .where(studies.c.status == "failed").order_by(studies.c.key)))
        done_by_settings = {h or "": int(n) for h, n in conn.execute(
            sa.select(studies.c.settings_hash, sa.func.count()).where(studies.c.status == "done")
            .group_by(studies.c.settings_hash).order_by(sa.func.count().desc(), studies.c.settings_hash))}
    return CohortStatus(counts, failures, done_by_settings)


def cohort_rows(registry: Registry) -> tuple[list[str], list[dict[str, Any]]]:
    """The export table: (column names, one dict per study sorted by key)."""
    query = (sa.select(studies.c.key, studies.c.status, studies.c.input_path, studies.c.series_uid,
                       studies.c.error, studies.c.run_time_s, studies.c.software_version,
                       studies.c.settings_hash,
                       summaries.c.lesion_count, summaries.c.volume_mm3, summaries.c.mass_mg,
                       summaries.c.agatston, summaries.c.volume_sd_mm3, summaries.c.mass_sd_mg,
                       summaries.c.by_compartment, summaries.c.by_region,
                       summaries.c.by_side, summaries.c.summary)
             .select_from(studies.outerjoin(summaries, summaries.c.study_key == studies.c.key))
             .order_by(studies.c.key))
    with registry.engine.connect() as conn:
        records = [r._asdict() for r in conn.execute(query)]
    groups = {
        "compartment": list(COMPARTMENTS),
        "region": sorted({n for r in records for n in (r["by_region"] or {})}),
        "side": list(SIDES),
    }
    for r in records:  # compartments/sides outside the contract lists still get columns
        for name in r["by_compartment"] or {}:
            if name not in groups["compartment"]:
                groups["compartment"].append(name)
        for name in r["by_side"] or {}:
            if name not in groups["side"]:
                groups["side"].append(name)
    columns = (list(BASE_COLUMNS) + [f"{prefix}_{m}" for _, prefix in CALCINOSIS_BURDENS for m in BURDEN_MEASURES]
               + [f"{g}_{name}_{m}" for g, names in groups.items() for name in names for m in MEASURES])
    rows = []
    for r in records:
        row = {c: r.get(c) for c in BASE_COLUMNS}
        if r["status"] == "done" and r["lesion_count"] is not None:
            summary = r["summary"] or {}
            for key, prefix in CALCINOSIS_BURDENS:
                b = summary.get(key) or {}
                for m in BURDEN_MEASURES:
                    row[f"{prefix}_{m}"] = b.get(m)
            for g in groups:
                burdens = r[f"by_{g}"] or {}
                for name in groups[g]:
                    b = burdens.get(name) or {}
                    for m in MEASURES:
                        row[f"{g}_{name}_{m}"] = b.get(m, 0)
        rows.append(row)
    return columns, rows


def export_csv(registry: Registry, path: str | os.PathLike[str]) -> Path:
    """Write the export table as CSV (atomically); returns the path."""
    columns, rows = cohort_rows(registry)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", restval="")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return atomic.write_text(path, buf.getvalue())


def lesion_rows(registry: Registry) -> list[list[str]]:
    """The lesion export's rows (see the module docstring), sorted by study key and lesion id."""
    query = (sa.select(lesions.c.study_key, *[lesions.c[c] for c in CSV_COLUMNS])
             .select_from(lesions.join(studies, studies.c.key == lesions.c.study_key))
             .where(studies.c.status == "done")
             .order_by(lesions.c.study_key, lesions.c.lesion_id))
    with registry.engine.connect() as conn:
        return [[r[0], *("" if v is None else written_value(c, v) for c, v in zip(CSV_COLUMNS, r[1:]))]
                for r in conn.execute(query)]


def export_lesions_csv(registry: Registry, path: str | os.PathLike[str]) -> Path:
    """Write the lesion export as CSV (atomically); returns the path."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(LESION_EXPORT_COLUMNS)
    writer.writerows(lesion_rows(registry))
    return atomic.write_text(path, buf.getvalue())


def is_cohort_export(path: str | os.PathLike[str]) -> bool:
    """Whether the file at ``path`` is a cohort export, of studies or of lesions (its header
    starts with that export's columns)."""
    starts = (EXPORT_HEADER_START, LESION_EXPORT_HEADER_START)
    with open(path, "rb") as fh:
        head = fh.read(max(len(s) for s in starts))
    return any(head.startswith(s) for s in starts)
