"""Write a comparison: ``changes.csv``, ``report.html`` and ``comparison.json`` (last).

Every file is written atomically; ``comparison.json`` comes last, so a folder that
has it holds a complete result.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from calcinosis import atomic
from calcinosis.errors import InputError
from calcinosis.follow.compare import Comparison
from calcinosis.follow.tables import changes_csv, comparison_document
from calcinosis.outputs import remove_stale
from calcinosis.paths import earlier_output


#: Every file :func:`write_comparison` may write into its folder.
COMPARISON_FILES = ("changes.csv", "report.html", "comparison.json")


def write_comparison(cmp: Comparison, out_dir: str | os.PathLike[str], *, baseline_source: str,
                     followup_source: str, report: bool = True,
                     analysis_links: dict[str, str] | None = None) -> dict[str, Path]:
    """Write the comparison files into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rerun = earlier_output(out, "comparison.json")
    doc = comparison_document(cmp, baseline_source=baseline_source, followup_source=followup_source)
    paths = {"changes_csv": atomic.write_text(out / "changes.csv", changes_csv(cmp.changes))}
    if report:
        from calcinosis.follow.report import render_comparison_html, side_by_side_png

        html = render_comparison_html(cmp, doc, figure_png=side_by_side_png(cmp), analysis_links=analysis_links)
        paths["report"] = atomic.write_text(out / "report.html", html)
    paths["comparison"] = atomic.write_json(out / "comparison.json", doc)
    if rerun:
        remove_stale(out, paths, COMPARISON_FILES)
    return paths


def read_track_ids(path: str | os.PathLike[str]) -> dict[int, int]:
    """Track id of each follow-up lesion id in an earlier ``changes.csv``.

    Used to keep identifiers over several visits: that follow-up is this comparison's
    baseline, so its lesions keep the tracks they had.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"track file {p} does not exist; give the changes.csv of the previous comparison")
    try:
        with open(p, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            columns = set(reader.fieldnames or ())
    except (csv.Error, UnicodeDecodeError) as exc:
        raise InputError(f"{p} is not a changes.csv written by calcinosis compare ({exc})") from exc
    if not {"followup_id", "track_id"} <= columns:
        # Read as "no tracks" it would give every lesion a new track, silently.
        raise InputError(f"{p} is not a changes.csv written by calcinosis compare (no followup_id and track_id "
                         "columns); give the changes.csv of the previous comparison")
    tracks: dict[int, int] = {}
    try:
        for row in rows:
            ids = [i for i in (row.get("followup_id") or "").split(";") if i.strip()]
            for i in ids:
                tracks[int(i)] = int(row["track_id"])
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(f"{p} is not a changes.csv written by calcinosis compare ({exc})") from exc
    return tracks


def check_tracks_follow(track_file: str | os.PathLike[str], baseline) -> None:
    """Refuse a ``--baseline-tracks`` file whose comparison followed up another scan than this
    baseline (a :class:`~calcinosis.follow.visit.Visit`): the ``comparison.json`` beside it
    records its follow-up's grid and lesion count, which must be the baseline's. (Its track
    ids were otherwise given to this baseline's lesions by number.) Without that file
    nothing can be checked."""
    doc_path = Path(track_file).with_name("comparison.json")
    try:
        followup = json.loads(doc_path.read_text(encoding="utf-8"))["followup"]
        recorded = (int(followup["lesion_count"]), [int(v) for v in followup["size_voxels"]],
                    [float(v) for v in followup["spacing_mm"]], [float(v) for v in followup["origin_mm"]])
    except (OSError, ValueError, KeyError, TypeError):
        return
    vol = baseline.volume
    here = (len(baseline.lesions), [int(vol.shape[2]), int(vol.shape[1]), int(vol.shape[0])])
    same_grid = recorded[:2] == here and all(
        abs(a - b) <= 1e-3 for a, b in zip(recorded[2] + recorded[3], list(vol.spacing) + list(vol.origin)))
    if not same_grid:
        raise InputError(f"{track_file} comes from a comparison whose follow-up is another scan (its "
                         f"{recorded[0]} lesions on a {'x'.join(map(str, recorded[1]))} grid, this baseline's "
                         f"{here[0]} on {'x'.join(map(str, here[1]))}); give the changes.csv whose follow-up is "
                         "this baseline")
