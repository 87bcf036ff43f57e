"""Write the CT output contract: lesions.csv, summary.json, lesions.nii.gz, report.html.

When the input is a DICOM series, also ``lesions_seg.dcm`` (DICOM SEG, one
segment per deposit) and ``lesions_sr.dcm`` (DICOM SR, TID 1500 measurement
report); with ``report="pdf"`` also ``report.pdf`` (headless Chromium).

Every file is written under a temporary name and renamed; ``summary.json`` is
written last, so a folder with a summary holds a complete result. An earlier run's files
in the folder are removed before the first new one is written, its summary first, and a run
that fails midway removes the files it wrote: the folder then holds neither result, never
new files beside an old summary, nor a lesions.csv without its summary.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from calcinosis import atomic
from calcinosis.errors import InputError
from calcinosis.io import write_label_map
from calcinosis.paths import check_out_name, earlier_output, make_out_dir
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


#: Every file :func:`write_analysis` may write into its folder (one left from an earlier run
#: that this run does not write is removed: a folder never mixes two runs' results).
ANALYSIS_FILES = ("lesions.csv", "lesions.nii.gz", "lesions_seg.dcm", "lesions_sr.dcm", "report.html",
                  "report.pdf", "summary.json")


def prepare_out_dir(out_dir: str | os.PathLike[str], *inputs: str | os.PathLike[str] | None,
                    writes: tuple[str, ...] = ANALYSIS_FILES) -> Path:
    """Create the output folder; refuse one where a file written (``writes``: paths relative
    to it) would replace an input file or land inside an input folder (a DICOM series)."""
    check_out_name(out_dir)
    out = Path(out_dir)
    try:
        _refuse_overwriting_inputs(out, inputs, writes)
    except OSError as exc:  # a name too long, a loop of links: no folder to write to
        raise InputError(f"cannot use output folder {out}: {exc.strerror or exc}; choose another --out") from None
    return make_out_dir(out)


def _refuse_overwriting_inputs(out: Path, inputs, writes: tuple[str, ...]) -> None:
    dst = out.resolve()
    for input_path in inputs:
        if input_path is None:
            continue
        src = Path(input_path).resolve()
        for rel in writes:
            target = dst / rel
            if target == src or (src.is_dir() and (src in target.parents or target in src.parents)) \
                    or (target.exists() and src.exists() and os.path.samefile(target, src)):
                raise InputError(f"output folder {out} would write {rel} over or inside the input {input_path}; "
                                 "choose another --out")


def remove_stale(out: Path, written: dict[str, Path], names: tuple[str, ...]) -> None:
    """Remove the files ``names`` in ``out`` that this run did not write: an earlier run's
    (call it only when :func:`~calcinosis.paths.earlier_output` said the folder held one: a user's own
    report.html beside the scan, with ``--out .``, is not ours to remove)."""
    keep = {Path(p).name for p in written.values()}
    for name in names:
        old = out / name
        if name not in keep and old.is_file():
            try:
                old.unlink()
            except OSError as exc:  # the folder's to fix (its permissions), not a bug
                raise InputError(f"cannot remove {old} of an earlier run: {exc.strerror or exc}; check the "
                                 "output folder's permissions or choose another --out") from None


def write_analysis(analysis: Analysis, out_dir: str | os.PathLike[str],
                   options: OutputOptions = OutputOptions()) -> dict[str, Path]:
    """Write the contract files for ``analysis`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = build_summary(analysis, keep_identifiers=options.keep_identifiers)
    if earlier_output(out, "summary.json"):
        # Cleared up front, not after: a run that failed while writing the report left the new
        # lesions.csv and label map beside the earlier run's summary.json and report.html, a
        # folder that looked whole and described another scan.
        remove_stale(out, {}, ("summary.json", *ANALYSIS_FILES))
    paths: dict[str, Path] = {}
    try:
        _write_files(analysis, out, options, summary, paths)
    except BaseException:
        # A run that fails midway takes back what it wrote: the folder holds a whole result
        # or none of this run's files (a reader of lesions.csv alone cannot tell it is orphaned).
        for path in paths.values():
            with contextlib.suppress(OSError):
                Path(path).unlink()
        raise
    return paths


def _write_files(analysis: Analysis, out: Path, options: OutputOptions, summary: dict,
                 paths: dict[str, Path]) -> None:
    """Write the files into ``out``, each path into ``paths`` as soon as it is written."""
    paths["lesions_csv"] = atomic.write_text(out / "lesions.csv", lesions_csv(analysis.lesions))
    paths["labels"] = write_label_map(analysis.labels, analysis.volume, out / "lesions.nii.gz")
    if options.dicom:
        _write_dicom(analysis, out, options.keep_identifiers, summary, paths)
    report_format = options.report_format
    if report_format:
        figures = _figures(analysis)
        paths["report"] = atomic.write_text(out / "report.html",
                                            render_report(summary, analysis.lesions, figures=figures))
        if report_format == "pdf":
            from calcinosis.report.html import print_pdf

            paths["report_pdf"] = print_pdf(paths["report"], out / "report.pdf")
    paths["summary"] = atomic.write_json(out / "summary.json", summary)


def _write_dicom(analysis: Analysis, out: Path, keep_identifiers: bool, summary: dict,
                 paths: dict[str, Path]) -> None:
    """SEG and SR for a DICOM input, into ``paths``; a failure becomes a summary warning, not a
    lost analysis."""
    from calcinosis.report.dicom_seg import is_dicom_input

    if not is_dicom_input(analysis.volume):
        return
    try:
        from calcinosis.report.dicom_seg import build_segmentation, source_headers, write_seg
        from calcinosis.report.dicom_sr import build_measurement_report, write_sr

        sources = source_headers(analysis.volume, keep_identifiers=keep_identifiers)
        seg = None
        if analysis.lesions:
            seg = build_segmentation(analysis.volume, analysis.labels, analysis.lesions, sources=sources)
            paths["seg"] = write_seg(seg, out / "lesions_seg.dcm")
        sr = build_measurement_report(analysis.volume, analysis.lesions, seg, sources)
        paths["sr"] = write_sr(sr, out / "lesions_sr.dcm")
    except (InputError, ValueError, TypeError, AttributeError, KeyError, OSError) as exc:
        # A library error may carry no text (a KeyError of an empty key): name its type then.
        reason = str(exc) if str(exc).strip("'\" ") else f"{type(exc).__name__} {exc}".strip()
        what = "DICOM SR" if "seg" in paths else "DICOM SEG/SR"
        log.warning("%s not written: %s", what, reason)
        summary["warnings"].append(f"{what} not written: {reason}")


def _figures(analysis: Analysis):
    try:
        from calcinosis.report.figures import report_figures
    except ImportError:
        return ()
    return report_figures(analysis)
