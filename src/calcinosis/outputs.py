"""Write the CT output contract: lesions.csv, summary.json, lesions.nii.gz, report.html.

When the input is a DICOM series, also ``lesions_seg.dcm`` (DICOM SEG, one
segment per deposit) and ``lesions_sr.dcm`` (DICOM SR, TID 1500 measurement
report); with ``report="pdf"`` also ``report.pdf`` (headless Chromium).

Every file is written under a temporary name and renamed; ``summary.json`` is
written last, so a folder with a summary holds a complete result.
"""

from __future__ import annotations

import logging
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

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutputOptions:
    """What :func:`write_analysis` writes besides the CSV, label map and summary.

    ``report``: ``True``/``"html"`` for report.html, ``"pdf"`` for report.html and
    report.pdf, ``False`` for none. ``keep_identifiers``: copy the patient's name,
    ID and birth date into the outputs (off by default). ``dicom``: write SEG and
    SR when the input is a DICOM series.
    """

    report: bool | str = True
    keep_identifiers: bool = False
    dicom: bool = True

    @property
    def report_format(self) -> str | None:
        if self.report in (False, None, "none", ""):
            return None
        if self.report in (True, "html"):
            return "html"
        if self.report == "pdf":
            return "pdf"
        raise ValueError(f"report must be True, False, 'html' or 'pdf', got {self.report!r}")


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
    report_format = options.report_format
    paths = {
        "lesions_csv": atomic.write_text(out / "lesions.csv", lesions_csv(analysis.lesions)),
        "labels": write_label_map(analysis.labels, analysis.volume, out / "lesions.nii.gz"),
    }
    if options.dicom:
        paths.update(_write_dicom(analysis, out, options.keep_identifiers, summary))
    if report_format:
        figures = _figures(analysis)
        paths["report"] = atomic.write_text(out / "report.html",
                                            render_report(summary, analysis.lesions, figures=figures))
        if report_format == "pdf":
            from calcinosis.report.html import print_pdf

            paths["report_pdf"] = print_pdf(paths["report"], out / "report.pdf")
    paths["summary"] = atomic.write_json(out / "summary.json", summary)
    return paths


def _write_dicom(analysis: Analysis, out: Path, keep_identifiers: bool, summary: dict) -> dict[str, Path]:
    """SEG and SR for a DICOM input; a failure becomes a summary warning, not a lost analysis."""
    from calcinosis.report.dicom_seg import is_dicom_input

    if not is_dicom_input(analysis.volume):
        return {}
    try:
        from calcinosis.report.dicom_seg import build_segmentation, source_headers, write_seg
        from calcinosis.report.dicom_sr import build_measurement_report, write_sr

        sources = source_headers(analysis.volume, keep_identifiers=keep_identifiers)
        seg = None
        paths = {}
        if analysis.lesions:
            seg = build_segmentation(analysis.volume, analysis.labels, analysis.lesions, sources=sources)
            paths["seg"] = write_seg(seg, out / "lesions_seg.dcm")
        sr = build_measurement_report(analysis.volume, analysis.lesions, seg, sources)
        paths["sr"] = write_sr(sr, out / "lesions_sr.dcm")
        return paths
    except (InputError, ValueError, TypeError, AttributeError, KeyError, OSError) as exc:
        # A library error may carry no text (a KeyError of an empty key): name its type then.
        reason = str(exc) if str(exc).strip("'\" ") else f"{type(exc).__name__} {exc}".strip()
        log.warning("DICOM SEG/SR not written: %s", reason)
        summary["warnings"].append(f"DICOM SEG/SR not written: {reason}")
        return {}


def _figures(analysis: Analysis):
    try:
        from calcinosis.report.figures import report_figures
    except ImportError:
        return ()
    return report_figures(analysis)
