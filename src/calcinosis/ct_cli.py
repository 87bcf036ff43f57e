"""CLI subcommands of the CT path: ``analyze``, ``demo`` and ``phantom``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from calcinosis.config import AnalysisConfig
from calcinosis.errors import InputError


def register(subparsers) -> None:
    p = subparsers.add_parser("analyze", help="find and measure calcinosis on a CT",
                              description="Analyse a CT (DICOM folder, NIfTI, NRRD or MetaImage) "
                              "and write lesions.csv, summary.json, lesions.nii.gz and report.html.")
    p.add_argument("input", help="CT input: DICOM series folder, .nii/.nii.gz, .nrrd or .mha/.mhd")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--series", default=None, metavar="UID", help="DICOM SeriesInstanceUID to analyse")
    add_settings(p)
    p.set_defaults(func=cmd_analyze)

    d = subparsers.add_parser("demo", help="make a phantom (thighs by default) and analyse it",
                              description="Make a synthetic CT (by default of both thighs with "
                              "injection-site deposits), analyse it and write a report folder.")
    d.add_argument("--out", default="demo-out", help="output folder (default: demo-out)")
    d.add_argument("--seed", type=int, default=0, help="random seed of the phantom (default 0)")
    d.add_argument("--body-part", default="thighs", choices=("thighs", "trunk", "elbow"),
                   help="the phantom's body part (default thighs)")
    add_settings(d, identifiers=False)  # a phantom has none: --keep-identifiers did nothing
    d.set_defaults(func=cmd_demo)

    try:
        from calcinosis.phantom.cli import register_phantom_command
    except ImportError:
        return
    register_phantom_command(subparsers)


def add_settings(p: argparse.ArgumentParser, *, identifiers: bool = True) -> None:
    p.add_argument("--threshold-hu", type=float, default=130.0,
                   help="detection threshold, HU (default 130)")
    p.add_argument("--calibration", type=float, default=0.8, metavar="MG_PER_HU_CM3",
                   help="mass calibration c in mg/(cm³·HU) (default 0.8)")
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    p.add_argument("--report", choices=("html", "pdf"), default="html",
                   help="report format: html (default) or pdf (report.html plus report.pdf; needs Chromium)")
    if identifiers:
        p.add_argument("--keep-identifiers", action="store_true",
                       help="keep patient identifiers in the outputs (off by default)")


def _report_choice(args) -> bool | str:
    """``run_analysis``'s ``report``: False (--no-report), "html" or "pdf"."""
    return False if args.no_report else getattr(args, "report", "html")


def config_from_args(args) -> AnalysisConfig:
    return AnalysisConfig(threshold_hu=args.threshold_hu,
                          mass_calibration_mg_per_hu_cm3=args.calibration)


def _progress():
    """A rich status line on a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        return None, None
    from rich.console import Console

    console = Console(stderr=True)
    status = console.status("starting")
    status.start()
    return status, (lambda msg: status.update(f"calcinosis: {msg}"))


def run_analysis(input_path, out_dir, config: AnalysisConfig, *, series=None, report=True,
                 keep_identifiers=False, progress=None):
    """Read, analyse and write: the library function behind ``calcinosis analyze``."""
    from calcinosis.io import read_volume
    from calcinosis.outputs import OutputOptions, prepare_out_dir, write_analysis
    from calcinosis.pipeline import analyze

    if report == "pdf":
        from calcinosis.report.html import find_chromium

        if find_chromium() is None:  # why: say so before minutes of analysis, not after
            raise InputError("--report pdf needs Chromium (Debian: apt-get install chromium); "
                             "use --report html instead")
    out = prepare_out_dir(out_dir, input_path)
    step = progress or (lambda _m: None)
    step("reading")
    volume = read_volume(input_path, series_uid=series)
    analysis = analyze(volume, config, progress=step)
    step("writing")
    write_analysis(analysis, out, OutputOptions(report=report, keep_identifiers=keep_identifiers))
    return analysis


def cmd_analyze(args) -> int:
    from calcinosis.paths import new_folder_removed_on_error

    if not Path(args.input).exists():
        raise InputError(f"input {args.input} does not exist")
    config = config_from_args(args)
    status, step = _progress()
    try:
        with new_folder_removed_on_error(args.out):
            analysis = run_analysis(args.input, args.out, config, series=args.series,
                                    report=_report_choice(args), keep_identifiers=args.keep_identifiers,
                                    progress=step)
    finally:
        if status:
            status.stop()
    _print_done(analysis, args.out)
    return 0


# The analysis's warning when it found no body (see calcinosis.pipeline.analyze).
NOTHING_ANALYSED = "no body found"


def cmd_demo(args) -> int:
    from calcinosis.paths import make_out_dir
    from calcinosis.phantom import make_ct_phantom, write_phantom

    config = config_from_args(args)
    out = make_out_dir(args.out)
    phantom = make_ct_phantom(args.body_part, seed=args.seed)
    paths = write_phantom(phantom, out / "phantom")
    image = next(p for p in (paths.values() if isinstance(paths, dict) else paths)
                 if str(p).endswith((".nii.gz", ".nrrd", ".mha")))
    status, step = _progress()
    try:
        analysis = run_analysis(image, out, config, report=_report_choice(args), progress=step)
    finally:
        if status:
            status.stop()
    _print_done(analysis, out)
    return 0


def _print_done(analysis, out) -> None:
    for warning in analysis.warnings:
        if warning.startswith(NOTHING_ANALYSED):
            # Exit 0 (the image was read), but a run that analysed nothing must not pass unseen.
            print(f"calcinosis: warning: {warning}", file=sys.stderr)
    if sys.stdout.isatty():
        n = len(analysis.lesions)
        print(f"{n} deposit{'s' if n != 1 else ''} found; results in {out}")
