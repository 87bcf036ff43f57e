"""One study on one worker: read, analyse, write into a partial folder, publish by rename.

The worker never touches the registry: it returns a :class:`StudyOutcome` (plain,
small data) and the batch client records it. The output folder appears under its
final name ``OUTROOT/<key>/`` only once ``summary.json`` (written last) is in it,
by a rename; a kill at any moment leaves at most a ``<key>.partial-*`` or
``<key>.old-*`` folder, which the next batch removes.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calcinosis.config import AnalysisConfig
from calcinosis.errors import CalcinosisError

PARTIAL_TAG = ".partial-"
OLD_TAG = ".old-"
STOP_PREFIX = ".calcinosis-stop-"


@dataclass(frozen=True)
class StudyTask:
    """What a worker needs to analyse one study (picklable, paths as strings)."""

    key: str
    input_path: str
    series_uid: str | None
    out_root: str
    config: AnalysisConfig
    report: bool = True
    keep_identifiers: bool = False
    stop_file: str | None = None  # when it exists, the batch was interrupted: publish nothing


@dataclass(frozen=True)
class StudyOutcome:
    """The result of one study as the worker returns it.

    ``error`` is None when the study is done; otherwise a one-line reason (the
    :class:`~calcinosis.errors.InputError` message, or ``Type: message`` for an
    unexpected exception). Times are UTC seconds since the epoch.
    """

    key: str
    error: str | None
    started_at: float
    finished_at: float
    run_time_s: float
    output_dir: str | None
    worker: str
    lesions: tuple[dict[str, Any], ...] = ()
    summary: dict[str, Any] = field(default_factory=dict)


def one_line(exc: BaseException, *, with_type: bool = False) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if with_type else text


def run_study(task: StudyTask) -> StudyOutcome:
    """Analyse one study; never raises for a bad study (the reason is in the outcome)."""
    from calcinosis.io import read_volume
    from calcinosis.outputs import OutputOptions, write_analysis
    from calcinosis.pipeline import analyze
    from calcinosis.report.tables import read_lesions_csv

    started = time.time()
    t0 = time.perf_counter()
    out_root = Path(task.out_root)
    partial = out_root / f"{task.key}{PARTIAL_TAG}{secrets.token_hex(4)}"
    error: str | None = None
    lesion_rows: tuple[dict[str, Any], ...] = ()
    summary: dict[str, Any] = {}
    final: Path | None = None
    try:
        volume = read_volume(task.input_path, series_uid=task.series_uid)
        analysis = analyze(volume, task.config)
        del volume  # the analysis holds it; drop our reference before writing
        write_analysis(analysis, partial, OutputOptions(report=task.report,
                                                        keep_identifiers=task.keep_identifiers))
        del analysis
        # The registry holds what the files say (rounded as in lesions.csv), not more.
        lesion_rows = tuple(read_lesions_csv(partial / "lesions.csv"))
        summary = json.loads((partial / "summary.json").read_text(encoding="utf-8"))
        if task.stop_file and Path(task.stop_file).exists():
            # The client stopped (Ctrl-C) and will not record this study: a result folder
            # would outlive a registry row that is not done.
            raise InterruptedError("the batch was interrupted")
        final = publish(partial, out_root / task.key)
    except CalcinosisError as exc:
        error = one_line(exc)
    except MemoryError:
        error = ("MemoryError: out of memory while analysing this study; give workers more memory "
                 "and rerun with --retry-failed")
    except Exception as exc:  # noqa: BLE001 - one study's bug must not stop the batch
        error = one_line(exc, with_type=True)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return StudyOutcome(
        key=task.key, error=error, started_at=started, finished_at=time.time(),
        run_time_s=round(time.perf_counter() - t0, 3),
        output_dir=str(final) if final is not None and error is None else None,
        worker=_worker_address(), lesions=lesion_rows if error is None else (),
        summary=summary if error is None else {})


def publish(partial: Path, final: Path) -> Path:
    """Rename ``partial`` onto ``final``, replacing an earlier result folder.

    An existing ``final`` is first renamed aside (``<key>.old-*``) and removed after,
    so the final name never holds a mix of old and new files.
    """
    old = None
    if final.exists():
        old = final.with_name(f"{final.name}{OLD_TAG}{secrets.token_hex(4)}")
        os.replace(final, old)
    os.replace(partial, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def retire_output(out_root: str | os.PathLike[str], key: str) -> None:
    """Remove ``OUTROOT/<key>/`` (a study that is no longer done must not look done)."""
    final = Path(out_root) / key
    if final.exists():
        old = final.with_name(f"{key}{OLD_TAG}{secrets.token_hex(4)}")
        os.replace(final, old)
        shutil.rmtree(old, ignore_errors=True)


def clean_leftovers(out_root: str | os.PathLike[str]) -> list[str]:
    """Remove ``*.partial-*`` / ``*.old-*`` folders and stop markers of an earlier batch; returns their names."""
    removed = []
    root = Path(out_root)
    if not root.is_dir():
        return removed
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and (PARTIAL_TAG in entry.name or OLD_TAG in entry.name):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
        elif entry.is_file() and entry.name.startswith(STOP_PREFIX):
            entry.unlink(missing_ok=True)
    return removed


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"local:{os.getpid()}"
