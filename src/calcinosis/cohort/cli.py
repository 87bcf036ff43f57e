"""CLI subcommands ``batch`` and ``cohort status|export``."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

from calcinosis.errors import InputError

# Local workers (one process each) beyond this many per core only take memory.
MAX_WORKERS_PER_CORE = 4
# A settings hash is shown by its first characters, as git shows commits.
SHOWN_HASH_CHARS = 12


def register(subparsers) -> None:
    from calcinosis.ct_cli import add_settings

    b = subparsers.add_parser(
        "batch", help="analyse every CT study under a folder (Dask), results in a registry",
        description="Find every study under ROOT (each NIfTI/NRRD/MetaImage file, each DICOM "
        "series), analyse it into OUTROOT/<study key>/ and record it in a registry database "
        "(OUTROOT/registry.sqlite unless --db). Reruns skip finished studies.")
    b.add_argument("root", help="folder holding the studies (any layout)")
    b.add_argument("--out", required=True, metavar="OUTROOT", help="output folder")
    b.add_argument("--db", default=None, metavar="URL",
                   help="SQLAlchemy database URL (default: sqlite:///OUTROOT/registry.sqlite)")
    b.add_argument("--workers", type=int, default=None, metavar="N",
                   help="local workers (default: one per core, as many as memory allows)")
    b.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="existing Dask scheduler (tcp://host:port); its workers must see the same paths")
    b.add_argument("--memory-per-worker", type=float, default=None, metavar="GIB",
                   help="local worker memory limit in GiB (default: RAM / workers)")
    b.add_argument("--in-process", action="store_true",
                   help="run local workers as threads of this process (no memory limit)")
    b.add_argument("--retry-failed", action="store_true", help="redo studies that failed before")
    add_settings(b)
    b.set_defaults(func=cmd_batch)

    c = subparsers.add_parser("cohort", help="read a batch registry: status, export",
                              description="Read a registry written by calcinosis batch.")
    sub = c.add_subparsers(dest="cohort_command", metavar="ACTION", required=True)
    s = sub.add_parser("status", help="studies by status, failures with reasons")
    s.add_argument("--db", required=True, metavar="URL",
                   help="registry: SQLAlchemy URL, a registry.sqlite path or a batch OUTROOT folder")
    s.set_defaults(func=cmd_status)
    e = sub.add_parser("export", help="one CSV row per study with totals by compartment and region")
    e.add_argument("--db", required=True, metavar="URL",
                   help="registry: SQLAlchemy URL, a registry.sqlite path or a batch OUTROOT folder")
    e.add_argument("--out", required=True, metavar="FILE.csv",
                   help="CSV file to write: a new path or an earlier export (any other file is refused)")
    e.add_argument("--lesions", default=None, metavar="FILE.csv",
                   help="also write one row per lesion of every done study: its key, then its "
                   "lesions.csv row as written there (a new path or an earlier export)")
    e.set_defaults(func=cmd_export)


def cmd_batch(args) -> int:
    from calcinosis.cohort.batch import BatchSettings, run_batch
    from calcinosis.cohort.registry import database_url
    from calcinosis.ct_cli import config_from_args

    if args.workers is not None and args.workers < 1:
        raise InputError("--workers must be at least 1")
    from calcinosis.cohort.cluster import machine_cores

    cores = machine_cores()
    if args.workers is not None and args.workers > MAX_WORKERS_PER_CORE * cores:
        # Each worker is a process with its own interpreter: 100000 of them never started.
        raise InputError(f"--workers {args.workers}: this machine has {cores} cores; use at most "
                         f"{MAX_WORKERS_PER_CORE * cores} local workers (a larger cluster: --scheduler)")
    if args.memory_per_worker is not None and not (math.isfinite(args.memory_per_worker)
                                                   and args.memory_per_worker > 0):
        raise InputError("--memory-per-worker must be a positive number of GiB")
    if args.scheduler and (args.workers or args.in_process or args.memory_per_worker):
        raise InputError("--workers, --memory-per-worker and --in-process apply to the local "
                         "cluster; leave them out with --scheduler")
    settings = BatchSettings(
        config=config_from_args(args), report=not args.no_report,
        keep_identifiers=args.keep_identifiers, retry_failed=args.retry_failed,
        n_workers=args.workers, scheduler=args.scheduler,
        memory_per_worker_bytes=int(args.memory_per_worker * 1024**3) if args.memory_per_worker else None,
        processes=not args.in_process)
    bar = _ProgressBar() if sys.stderr.isatty() else None
    try:
        report = run_batch(args.root, args.out, db_url=database_url(args.db) if args.db else None,
                           settings=settings, progress=bar.update if bar else None)
    finally:
        if bar:
            bar.stop()
    parts = [f"{len(report.done)} done", f"{len(report.failed)} failed",
             f"{report.n_up_to_date} already up to date"]
    if report.not_finished:
        parts.append(f"{len(report.not_finished)} not finished (interrupted; rerun to continue)")
    print(f"{report.n_studies} studies: {', '.join(parts)}")
    for key, reason in report.failed:
        print(f"  failed {key}: {reason}")
    if report.skipped_series:
        print(f"  {len(report.skipped_series)} DICOM series without a volume to analyse skipped "
              "(no images, or only scouts)")
    return 130 if report.interrupted else 0


def cmd_status(args) -> int:
    from calcinosis.cohort.export import cohort_status
    from calcinosis.cohort.registry import Registry, database_url

    with Registry.open(database_url(args.db), create=False) as registry:
        status = cohort_status(registry)
    print(f"{status.total} studies: " + ", ".join(f"{n} {s}" for s, n in status.counts.items()))
    if len(status.done_by_settings) > 1:
        # A rerun with other settings redoes every study it finds; those it no longer finds,
        # or another batch's into the same --db, keep theirs.
        print(f"done studies were analysed with {len(status.done_by_settings)} different settings "
              "(the export's settings_hash column tells them apart): "
              + ", ".join(f"{n} with {h[:SHOWN_HASH_CHARS]}" for h, n in status.done_by_settings.items()))
    for key, input_path, reason in status.failures:
        print(f"failed {key} ({input_path}): {reason}")
    return 0


def cmd_export(args) -> int:
    from calcinosis.cohort.export import export_csv, export_lesions_csv
    from calcinosis.cohort.registry import Registry, database_url

    out = Path(args.out)
    lesions_out = Path(args.lesions) if args.lesions else None
    url = database_url(args.db)
    _check_export_out(out, url)
    if lesions_out is not None:
        _check_export_out(lesions_out, url, option="--lesions")
        if os.path.abspath(lesions_out) == os.path.abspath(out):
            raise InputError("--lesions names the same file as --out; give two .csv paths")
    with Registry.open(url, create=False) as registry:
        for option, path, write in (("--out", out, export_csv), ("--lesions", lesions_out, export_lesions_csv)):
            if path is None:
                continue
            try:
                write(registry, path)
            except OSError as exc:
                raise InputError(f"cannot write {option} {path}: {exc.strerror or exc}; "
                                 "give a .csv path in a folder you can write") from exc
    return 0


def _check_export_out(out: Path, url: str, option: str = "--out") -> None:
    """Export replaces only a file it may: a new path, an empty file or an earlier export.

    Anything else (the registry itself, another database, someone's CSV) is refused so that
    a slip on the command line never destroys results.
    """
    from calcinosis.cohort.export import is_cohort_export
    from calcinosis.cohort.registry import sqlite_file

    if out.is_dir():
        raise InputError(f"{option} {out} is a folder; give a .csv file path")
    if not out.exists():
        return
    db = sqlite_file(url)
    if db is not None and db.exists() and os.path.samefile(out, db):
        raise InputError(f"{option} {out} is the registry database itself; give another .csv path")
    if out.is_file() and out.stat().st_size > 0 and not is_cohort_export(out):
        raise InputError(f"{option} {out} exists and is not a cohort export; give a new .csv path "
                         "(export replaces only an earlier export)")


class _ProgressBar:
    """A rich progress bar over studies, on stderr (terminals only)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("calcinosis batch"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[failed]} failed"), TimeRemainingColumn(),
                                 console=Console(stderr=True), transient=False)
        self.task = None
        self.failed = 0

    def update(self, event) -> None:
        if event.kind == "start":
            self.progress.start()
            self.task = self.progress.add_task("studies", total=event.n_total, failed=0)
            return
        if event.error:
            self.failed += 1
        if self.task is not None:
            self.progress.update(self.task, completed=event.n_finished, failed=self.failed)

    def stop(self) -> None:
        self.progress.stop()
