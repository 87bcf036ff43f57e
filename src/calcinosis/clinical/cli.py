"""``calcinosis workup CASE.yaml [--imaging summary.json] [--out DIR]``: thin CLI over the library."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

from calcinosis.clinical.case import CaseFormatWarning, load_case
from calcinosis.clinical.imaging import load_imaging_summary
from calcinosis.clinical.report import write_workup
from calcinosis.clinical.workup import Workup, run_workup


def register(subparsers: Any) -> None:
    """Add the ``workup`` subcommand."""
    parser = subparsers.add_parser(
        "workup",
        help="classify calcinosis from a case file and list criteria, tests and treatments",
        description=(
            "Read a structured case file (YAML), classify the calcinosis (dystrophic, metastatic, "
            "iatrogenic, idiopathic, calciphylaxis) with its reasons, score the 2013 ACR/EULAR SSc "
            "criteria (and the 2017 EULAR/ACR myositis criteria when given or myositis is named), "
            "and list suggested tests and treatment options. Decision support for a "
            "clinician, not a diagnosis. Without --out, prints a summary and writes nothing."
        ),
    )
    parser.add_argument(
        "case", type=Path, help="case file (YAML), see shared/cases/ for the format"
    )
    parser.add_argument(
        "--imaging", type=Path, default=None,
        help="summary.json of `calcinosis analyze` to use the deposit distribution as evidence "
             "(default: imaging.summary of the case file, if set)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for workup.json and workup.html"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CaseFormatWarning)
        case = load_case(args.case)
    for warning in caught:
        print(f"calcinosis workup: warning: {args.case}: {warning.message}", file=sys.stderr)
    summary_path = args.imaging or (Path(case.imaging.summary) if case.imaging.summary else None)
    summary = None if summary_path is None else load_imaging_summary(summary_path)
    workup = run_workup(case, summary, imaging_source="--imaging" if args.imaging else None)
    if args.out is None:
        print_summary(workup)
        return 0
    paths = write_workup(workup, args.out, inputs=(summary_path,))
    print(f"wrote {paths['json']} and {paths['html']}")
    return 0


def print_summary(workup: Workup) -> None:
    """A short readable summary on stdout (rich)."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False, soft_wrap=True)
    d = workup.to_dict()
    c = d["classification"]
    console.print(f"[bold]Calcinosis work-up: {escape(d['case_id'])}[/bold]")
    console.print(f"[yellow]{escape(d['disclaimer'])}[/yellow]")
    console.print(
        f"Primary type: [bold]{c['primary']}[/bold] ({c['confidence']}); alternatives: "
        + ", ".join(f"{a['type']} {a['score']:g}" for a in c["alternatives"])
    )
    if c["tied_with"]:
        console.print(
            f"Undecided: {', '.join([c['primary'], *c['tied_with']])} have the same score; the "
            "first is shown only because of a fixed order (see the missing facts and tests)."
        )
    for r in c["reasons"]:
        facts = "; ".join(f"{e['field']}={e['value']}" for e in r["evidence"])
        console.print(f"  - [{escape(r['rule'])}] {escape(r['text'])} ({escape(facts)})")
        if "note" in r:
            console.print(f"    note: {escape(r['note'])}")
    console.print("Imaging summary used." if c["imaging_used"] else "No imaging summary used.")
    for m in c["missing"]:
        console.print(f"  missing: {escape(m['description'])} -> {m['primary_would_be']}")
    if d["calcium_phosphate_product"]:
        console.print(f"Ca x P product: {d['calcium_phosphate_product']['value']:g} mg2/dL2")
    ssc = d["ssc_criteria"]
    if ssc is not None:
        console.print(
            f"2013 ACR/EULAR SSc criteria: score {ssc['score']} (>= {ssc['threshold']}), "
            f"{'classified' if ssc['classified'] else 'not classified'}"
            f"{'' if ssc['applicable'] else ' (criteria not applicable: ' + ', '.join(ssc['excluded_by']) + ')'}"
            "; unknown items: "
            f"{', '.join(ssc['unknown_items']) or 'none'}"
        )
    iim = d["iim_criteria"]
    if iim is not None:
        verdict = "classified" if iim["classified"] else "not classified"
        if not iim["applicable"]:
            verdict = "not applicable (" + ", ".join(iim["excluded_by"]) + ")"
        elif iim["not_classified_because"]:
            verdict += f" ({iim['not_classified_because']})"
        console.print(
            f"2017 EULAR/ACR IIM criteria: score {iim['score']:g} "
            f"({'with' if iim['model'] == 'with_biopsy' else 'without'} biopsy; {iim['category']}, "
            f"{escape(iim['probability_band'])}), {escape(verdict)}; unknown items: "
            f"{', '.join(iim['unknown_items']) or 'none'}"
        )
    if d["crest_features"]:
        console.print(
            "CREST: " + ", ".join(f"{f['feature']} {f['status']}" for f in d["crest_features"])
        )
    if d["suggested_tests"]:
        console.print(
            "Suggested tests: " + "; ".join(escape(t["name"]) for t in d["suggested_tests"])
        )
    console.print("Treatment options:")
    for t in d["treatments"]:
        extra = [
            *([t["remark"]] if "remark" in t else []),
            *t["already_tried"],
            *(f"caution: {x}" for x in t["cautions"]),
        ]
        # The level alone misleads: low-dose warfarin's level 2 is evidence *against* benefit,
        # the best level listed, so the description (which says so) goes with it, as in the HTML.
        evidence = t["evidence"]
        console.print(
            f"  - {escape(t['name'])} (evidence level {escape(evidence['level'])}: "
            f"{escape(evidence['description'])})"
            + (f": {escape('; '.join(extra))}" if extra else "")
        )
