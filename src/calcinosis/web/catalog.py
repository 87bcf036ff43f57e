"""What the viewer may show: studies of a registry, single analyze folders, comparisons.

The catalog is the only way from a request to a file: a request names a study or
comparison *key*, the catalog looks it up (a dict, or a parameterised query of the
registry) and returns the folders recorded for it. No part of a URL is ever joined
to a path, so no request can reach a file outside those folders.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calcinosis.errors import InputError


@dataclass(frozen=True)
class StudySource:
    """Where one study's files are. ``image_path`` is the CT (None: outlines only)."""

    key: str
    output_dir: Path | None
    image_path: Path | None = None
    series_uid: str | None = None


@dataclass(frozen=True)
class ComparisonSource:
    """A ``compare`` output folder and the two studies it compares."""

    key: str
    folder: Path
    baseline: StudySource
    followup: StudySource


@dataclass(frozen=True)
class Catalog:
    """Studies and comparisons the server shows.

    Parameters
    ----------
    registry_url : str or None
        SQLAlchemy URL of a ``batch`` registry; its studies are listed live.
    studies : dict
        Extra studies by key (``serve --study``, the two visits of each comparison).
    comparisons : dict
        Comparisons by key.
    """

    registry_url: str | None = None
    studies: dict[str, StudySource] = field(default_factory=dict)
    comparisons: dict[str, ComparisonSource] = field(default_factory=dict)

    # -- lookups ------------------------------------------------------------------------
    def study(self, key: str) -> StudySource | None:
        """The study ``key`` (None when unknown or not finished)."""
        if key in self.studies:
            return self.studies[key]
        if self.registry_url is None:
            return None
        row = _registry_row(self.registry_url, key)
        if row is None or row["status"] != "done" or not row["output_dir"]:
            return None
        return StudySource(key=key, output_dir=Path(row["output_dir"]),
                           image_path=Path(row["input_path"]) if row["input_path"] else None,
                           series_uid=row["series_uid"])

    def comparison(self, key: str) -> ComparisonSource | None:
        return self.comparisons.get(key)

    # -- listings -----------------------------------------------------------------------
    def study_list(self) -> list[dict[str, Any]]:
        """One row per study: key, status, error, totals (no paths, no identifiers)."""
        rows = [_folder_row(src) for key, src in self.studies.items() if not _is_visit_of(key, self.comparisons)]
        if self.registry_url is not None:
            rows.extend(_registry_rows(self.registry_url))
        return rows

    def comparison_list(self) -> list[dict[str, Any]]:
        out = []
        for key, cmp in self.comparisons.items():
            doc = _read_json(cmp.folder / "comparison.json")
            doc = doc if isinstance(doc, dict) else {}  # damaged: a row without figures, not a 500
            overall = doc.get("overall") if isinstance(doc.get("overall"), dict) else {}
            counts = doc.get("status_counts") if isinstance(doc.get("status_counts"), dict) else {}
            out.append({"key": key, "call": overall.get("call"), "mass_change_pct": overall.get("mass_change_pct"),
                        "status_counts": counts})
        return out


def _is_visit_of(key: str, comparisons: dict[str, ComparisonSource]) -> bool:
    return any(key in (c.baseline.key, c.followup.key) for c in comparisons.values())


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _folder_row(src: StudySource) -> dict[str, Any]:
    doc = _read_json(src.output_dir / "summary.json") if src.output_dir else None
    # Not an object (a summary.json damaged or hand-edited): one failed row, not a server
    # error that emptied the whole list.
    if not isinstance(doc, dict):
        return {"key": src.key, "status": "failed", "error": "no readable summary.json in the output folder"}
    totals = doc.get("totals") if isinstance(doc.get("totals"), dict) else {}
    return {"key": src.key, "status": "done", "error": None, "lesion_count": totals.get("count"),
            "mass_mg": totals.get("mass_mg"), "volume_mm3": totals.get("volume_mm3"),
            "agatston": totals.get("agatston"), "low_confidence_count": doc.get("low_confidence_count"),
            "pattern": _pattern_text(doc.get("pattern")), "finished_at": None}


def _pattern_text(pattern: Any) -> str | None:
    if pattern is None or isinstance(pattern, str):
        return pattern
    if isinstance(pattern, dict):
        for name in ("sentence", "text", "description"):
            if isinstance(pattern.get(name), str):
                return pattern[name]
    return json.dumps(pattern, ensure_ascii=False)


def _registry_rows(url: str) -> list[dict[str, Any]]:
    import sqlalchemy as sa

    from calcinosis.cohort.registry import Registry, studies, summaries

    with Registry.open(url, create=False) as reg, reg.engine.connect() as conn:
        query = (sa.select(studies.c.key, studies.c.status, studies.c.error, studies.c.finished_at,
                           studies.c.input_path,
                           summaries.c.lesion_count, summaries.c.mass_mg, summaries.c.volume_mm3,
                           summaries.c.agatston, summaries.c.low_confidence_count, summaries.c.pattern)
                 .select_from(studies.outerjoin(summaries, summaries.c.study_key == studies.c.key))
                 .order_by(studies.c.key))
        rows = []
        for r in conn.execute(query):
            row = r._asdict()
            row["error"] = without_path(row["error"], row.pop("input_path"))
            row["finished_at"] = row["finished_at"].isoformat() if row["finished_at"] else None
            row["pattern"] = _pattern_text(row["pattern"])
            rows.append(row)
    return rows


def without_path(error: str | None, input_path: str | None) -> str | None:
    """The failure reason without the input's path (folder names can hold a patient's name)."""
    if not error or not input_path:
        return error
    path = str(input_path).rstrip("/")
    error = error.replace(path, "the input")
    parent = os.path.dirname(path)
    return error.replace(parent + "/", "") if parent not in ("", "/") else error


def _registry_row(url: str, key: str) -> dict[str, Any] | None:
    import sqlalchemy as sa

    from calcinosis.cohort.registry import Registry, studies

    with Registry.open(url, create=False) as reg, reg.engine.connect() as conn:
        r = conn.execute(sa.select(studies.c.status, studies.c.output_dir, studies.c.input_path,
                                   studies.c.series_uid).where(studies.c.key == key)).first()
    return None if r is None else r._asdict()


def folder_key(folder: str | os.PathLike[str]) -> str:
    """A URL-safe key for a folder given on the command line (its name, slugified)."""
    from calcinosis.cohort.discover import slugify

    return slugify(Path(folder).resolve().name)


def study_from_folder(folder, *, image=None, series_uid=None, key=None) -> StudySource:
    """A :class:`StudySource` for one ``analyze`` output folder.

    Raises
    ------
    InputError
        ``folder`` is not an analyze output (no summary.json or lesions.nii.gz); ``image`` is missing.
    """
    out = Path(folder)
    if not (out / "summary.json").is_file() or not (out / "lesions.nii.gz").is_file():
        raise InputError(f"{folder} is not an analyze output folder (no summary.json and lesions.nii.gz); "
                         "give the --out folder of calcinosis analyze")
    if image is not None and not Path(image).exists():
        raise InputError(f"CT image {image} does not exist; give the input the study was analysed from")
    return StudySource(key=key or folder_key(out), output_dir=out.resolve(),
                       image_path=Path(image).resolve() if image is not None else None, series_uid=series_uid)


def comparison_from_folder(folder, *, baseline_image=None, followup_image=None,
                           baseline_study=None, followup_study=None) -> ComparisonSource:
    """A :class:`ComparisonSource` for one ``compare`` output folder.

    The visits are ``FOLDER/baseline`` and ``FOLDER/followup`` (written when compare
    analysed raw inputs) unless ``baseline_study`` / ``followup_study`` name the analyze
    folders it was given.
    """
    cmp_dir = Path(folder)
    if not (cmp_dir / "comparison.json").is_file() or not (cmp_dir / "changes.csv").is_file():
        raise InputError(f"{folder} is not a compare output folder (no comparison.json and changes.csv); "
                         "give the --out folder of calcinosis compare")
    key = folder_key(cmp_dir)
    visits = []
    for name, study, image in (("baseline", baseline_study, baseline_image),
                               ("followup", followup_study, followup_image)):
        visit_dir = Path(study) if study is not None else cmp_dir / name
        if not (visit_dir / "summary.json").is_file():
            raise InputError(f"{folder} holds no {name}/ analysis (compare was given analyze folders); "
                             f"give that folder with --{name}-study")
        visits.append(study_from_folder(visit_dir, image=image, key=f"{key}-{name}"))
    return ComparisonSource(key=key, folder=cmp_dir.resolve(), baseline=visits[0], followup=visits[1])
