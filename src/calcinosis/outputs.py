"""Write the CT output contract: lesions.csv, summary.json, lesions.nii.gz, report.html.

Every file is written under a temporary name and renamed; ``summary.json`` is
written last, so a folder with a summary holds a complete result.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from calcinosis import atomic
from calcinosis.errors import InputError
from calcinosis.io import write_label_map
from calcinosis.pipeline import Analysis
from calcinosis.report.html import render_report
from calcinosis.report.summary import build_summary
from calcinosis.report.tables import lesions_csv


@dataclass(frozen=True)
class OutputOptions:
    report: bool = True
    keep_identifiers: bool = False


def prepare_out_dir(out_dir: str | os.PathLike[str], input_path: str | os.PathLike[str] | None = None) -> Path:
    """Create the output folder; refuse one that is (or is inside) the input."""
    out = Path(out_dir)
    if input_path is not None:
        src = Path(input_path).resolve()
        dst = out.resolve()
        if dst == src or (src.is_dir() and src in dst.parents):
            raise InputError(f"output folder {out} is inside the input {input_path}; choose another --out")
    if out.exists() and not out.is_dir():
        raise InputError(f"output path {out} exists and is not a folder; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder {out}: {exc.strerror}") from exc
    return out


def write_analysis(analysis: Analysis, out_dir: str | os.PathLike[str],
                   options: OutputOptions = OutputOptions()) -> dict[str, Path]:
    """Write the contract files for ``analysis`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = build_summary(analysis, keep_identifiers=options.keep_identifiers)
    paths = {
        "lesions_csv": atomic.write_text(out / "lesions.csv", lesions_csv(analysis.lesions)),
        "labels": write_label_map(analysis.labels, analysis.volume, out / "lesions.nii.gz"),
    }
    if options.report:
        figures = _figures(analysis)
        paths["report"] = atomic.write_text(out / "report.html",
                                            render_report(summary, analysis.lesions, figures=figures))
    paths["summary"] = atomic.write_json(out / "summary.json", summary)
    return paths


def _figures(analysis: Analysis):
    try:
        from calcinosis.report.figures import report_figures
    except ImportError:
        return ()
    return report_figures(analysis)
