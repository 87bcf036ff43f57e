"""``calcinosis phantom``: write a synthetic CT with its exact truth."""

from __future__ import annotations

import argparse

from calcinosis.errors import InputError
from calcinosis.paths import new_folder_removed_on_error
from calcinosis.phantom.ct import BODY_PARTS, make_ct_phantom
from calcinosis.phantom.distractors import DISTRACTOR_KINDS
from calcinosis.phantom.io import FORMATS, write_phantom


def register_phantom_command(subparsers) -> argparse.ArgumentParser:
    """Add the ``phantom`` subcommand to ``subparsers``; its ``func`` is :func:`cmd_phantom`."""
    p = subparsers.add_parser(
        "phantom", help="write a synthetic CT phantom with exact ground truth",
        description="Make a synthetic CT (thighs, trunk, elbow or fingers) with calcified deposits of known "
        "size, density, mass and compartment, and write phantom.<format>, truth_labels.<format> "
        "and truth.json into the output folder.")
    p.add_argument("--body-part", default="thighs", choices=BODY_PARTS)
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    p.add_argument("--noise-hu", type=float, default=15.0, help="noise standard deviation, HU (default 15)")
    p.add_argument("--slice-mm", type=float, default=1.5, help="slice thickness = spacing, mm (default 1.5)")
    p.add_argument("--pixel-mm", type=float, default=0.8, help="in-plane pixel size, mm (default 0.8)")
    p.add_argument("--length-mm", type=float, default=60.0, help="extent along z, mm (default 60)")
    p.add_argument("--matrix", type=int, default=None, metavar="N", help="square in-plane matrix N x N")
    p.add_argument("--deposits", type=int, default=None, metavar="N", help="number of deposits (default 8-14)")
    p.add_argument("--limb-side", default=None, choices=("left", "right"),
                   help="elbow, fingers: the arm's or hand's side (default left)")
    p.add_argument("--distractors", default="", metavar="LIST",
                   help=f"comma-separated distractors: {', '.join(DISTRACTOR_KINDS)}")
    p.add_argument("--no-table", action="store_true", help="no CT table under the patient")
    p.add_argument("--table-gap-mm", type=float, default=None, metavar="MM",
                   help="air gap between skin and table top, mm (default: drawn from 0.5-10; 0 lays the body on it)")
    p.add_argument("--no-external-objects", action="store_true", help="no objects lying on the skin")
    p.add_argument("--format", default="nii.gz", choices=FORMATS, help="image format (default nii.gz)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_phantom)
    return p


def cmd_phantom(args: argparse.Namespace) -> int:
    if args.limb_side is not None and args.body_part not in ("elbow", "fingers"):
        raise InputError(f"--limb-side applies to the elbow and fingers phantoms only, not {args.body_part}")
    distractors = tuple(k.strip() for k in args.distractors.split(",") if k.strip())
    phantom = make_ct_phantom(
        args.body_part, seed=args.seed, noise_hu=args.noise_hu, slice_thickness_mm=args.slice_mm,
        pixel_mm=args.pixel_mm, length_mm=args.length_mm,
        matrix=None if args.matrix is None else (args.matrix, args.matrix), n_deposits=args.deposits,
        distractors=distractors, external_objects=not args.no_external_objects, table=not args.no_table,
        limb_side=args.limb_side or "left", keep_noiseless=False, table_gap_mm=args.table_gap_mm)
    with new_folder_removed_on_error(args.out):  # Ctrl-C while writing left an empty folder
        write_phantom(phantom, args.out, fmt=args.format)
    return 0
