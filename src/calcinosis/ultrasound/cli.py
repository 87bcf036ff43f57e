"""``calcinosis ultrasound IMAGE --out DIR``: calcified deposits on B-mode ultrasound."""

from __future__ import annotations

import argparse
import logging

__all__ = ["register", "run_ultrasound"]

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ultrasound",
        help="find calcified deposits (hyperechoic foci with acoustic shadows) on B-mode ultrasound",
        description="Find and measure calcified deposits on a DICOM US image or cine loop, or on a "
                    "PNG/JPEG screen capture (give --pixel-spacing MM for sizes in mm). Writes "
                    "deposits.csv, summary.json, overlay.png and report.html into --out.",
    )
    p.add_argument("image", help="DICOM US file (single or multi-frame) or PNG/JPEG image")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--pixel-spacing", type=float, default=None, metavar="MM",
                   help="pixel size in mm, for PNG/JPEG or DICOM without ultrasound regions")
    p.add_argument("--max-shadow-ratio", type=float, default=None, metavar="R",
                   help="largest mean-grey ratio beneath/beside a focus that counts as a shadow (default 0.8; "
                        "a drop of 18 grey levels or more beneath counts too)")
    p.set_defaults(func=run_ultrasound)


def run_ultrasound(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from rich.console import Console

    from calcinosis.errors import InputError
    from calcinosis.ultrasound.analysis import analyze_ultrasound
    from calcinosis.ultrasound.config import UltrasoundConfig
    from calcinosis.ultrasound.io import read_ultrasound
    from calcinosis.ultrasound.report import check_out_dir, write_ultrasound_outputs

    config = UltrasoundConfig()
    if args.max_shadow_ratio is not None:
        # Checked here, in the option's words: UltrasoundConfig's own error named its field
        # ("UltrasoundConfig.max_shadow_ratio must be in (0, 1)"), which the user never typed.
        ratio = args.max_shadow_ratio
        if not 0 < ratio < 1:
            raise InputError(f"--max-shadow-ratio {ratio:g}: must be a ratio between 0 and 1, both excluded "
                             f"(default {config.max_shadow_ratio:g}; lower asks a darker shadow)")
        config = replace(config, max_shadow_ratio=ratio)
    console = Console(stderr=True)
    check_out_dir(args.out, args.image)
    image = read_ultrasound(args.image, pixel_spacing_mm=args.pixel_spacing)
    result = analyze_ultrasound(image, config)
    write_ultrasound_outputs(result, args.out, args.image)
    for w in result.warnings:
        log.warning("%s", w)
    unit = "mm" if result.has_physical_scale else "px"
    console.print(f"{result.n_tracks} deposit(s), {len(result.deposits)} detection(s) over "
                  f"{image.n_frames} frame(s) (units: {unit}) -> {args.out}", soft_wrap=True)
    return 0
