"""``calcinosis radiograph`` and ``calcinosis radiograph-compare``: thin wrappers."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "radiograph",
        help="find, measure and score calcinosis on a plain radiograph",
        description="Analyse one radiograph (DICOM CR/DX, or PNG/JPEG/TIFF with --pixel-spacing).",
    )
    p.add_argument("image", help="radiograph file")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--pixel-spacing", type=pixel_spacing_mm, metavar="MM", help="detector pixel size in mm")
    p.add_argument("--invert", action="store_true", help="PNG/JPEG/TIFF is a negative (bright = air)")
    p.set_defaults(func=_run)
    c = subparsers.add_parser(
        "radiograph-compare",
        help="compare two radiographs (or output folders) by the 25%% rule",
        description="Progression / stable / improvement of the calcinosis score and total area (25%% rule).",
    )
    c.add_argument("before", help="image or 'calcinosis radiograph' output folder")
    c.add_argument("after", help="image or 'calcinosis radiograph' output folder")
    c.add_argument("--out", required=True, help="output folder (writes comparison.json)")
    c.add_argument("--pixel-spacing", type=pixel_spacing_mm, metavar="MM",
                   help="pixel size for image inputs without one")
    c.add_argument("--any-patients", action="store_true",
                   help="compare even when the DICOM headers give different patients or the after an earlier "
                        "date (identifiers changed by anonymisation)")
    c.set_defaults(func=_run_compare)


def pixel_spacing_mm(text: str) -> float:
    """``--pixel-spacing``: a detector's pixel size in mm, checked where the option is read, so
    the message names it (the reader's said "pixel spacing must be positive millimetres, got
    (0.0, 0.0)", a tuple the user never typed)."""
    from calcinosis.radiograph.io import PIXEL_MM_RANGE

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of millimetres") from None
    low, high = PIXEL_MM_RANGE
    if not low <= value <= high:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{text} mm is not a detector's pixel size; give it in mm ({low:g}-{high:g})")
    return value


def _run(args: argparse.Namespace) -> int:
    from calcinosis.radiograph.analysis import analyze_radiograph
    from calcinosis.radiograph.io import read_radiograph
    from calcinosis.radiograph.outputs import write_radiograph_outputs

    rg = read_radiograph(args.image, pixel_spacing_mm=args.pixel_spacing, invert=args.invert)
    result = analyze_radiograph(rg)
    write_radiograph_outputs(result, args.out)
    s = result.summary
    print(f"{s['totals']['count']} deposit(s); score {s['score']['image_score']}; outputs in {args.out}")
    _warn("calcinosis radiograph", s["warnings"])
    return 0


def _run_compare(args: argparse.Namespace) -> int:
    from calcinosis.atomic import write_json
    from calcinosis.radiograph.compare import check_same_patient, compare_summaries, load_or_analyze
    from calcinosis.radiograph.outputs import prepare_out_dir, write_outputs_into

    if not args.any_patients:
        check_same_patient(args.before, args.after)
    before = load_or_analyze(args.before, pixel_spacing_mm=args.pixel_spacing)
    after = load_or_analyze(args.after, pixel_spacing_mm=args.pixel_spacing)
    result = compare_summaries(before, after)
    write_outputs_into(prepare_out_dir(args.out), {"comparison.json": lambda f: write_json(f, result)},
                       inputs=[args.before, args.after])
    print(
        f"score {result['score']['before']} -> {result['score']['after']}: {result['score']['status']}; "
        f"area {result['total_area_mm2']['before']} -> {result['total_area_mm2']['after']} mm2: "
        f"{result['total_area_mm2']['status']}"
    )
    _warn("calcinosis radiograph-compare", result["warnings"])  # were in comparison.json only
    return 0


def _warn(prog: str, warnings: list[str]) -> None:
    """The warnings on stderr, as the other commands' (they were printed on stdout, mixed with
    the result line a script reads)."""
    for w in warnings:
        print(f"{prog}: warning: {w}", file=sys.stderr)
