"""``calcinosis batch``: analyse every study under a folder on Dask, keep results in a registry.

Resumable and idempotent: a study is skipped when the registry holds it ``done``
(its output folder complete) or ``failed`` with the same input checksum and
settings hash; ``retry_failed`` redoes failures; a changed input or setting redoes
the study. Only this client process writes the registry; a study is marked
``done`` only after its output folder is in place, in one transaction with its
lesions and summary. A kill loses at most the studies in flight (left
``running``, redone next time); leftover ``*.partial-*`` folders are removed at
the start of the next batch. One batch at a time per output folder (a lock file).

A registry holds each input once. Keys are paths relative to the batch root, so a study
already recorded under another key (the root was a sub-folder of this one) has that row
replaced; a key that the registry holds for another input that is still there (another
root laid out the same, batched into the same ``--db``) is not analysed and reported as
failed, leaving that input's result as it is.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calcinosis import __version__
from calcinosis.cohort.cluster import (
    GIB,
    dask_client,
    memory_estimate_bytes,
    plan_local_cluster,
    worker_memory_limit_bytes,
)
from calcinosis.cohort.discover import Study, discover_studies
from calcinosis.cohort.fingerprint import input_checksum, settings_document, settings_hash
from calcinosis.cohort.registry import Registry, StudyRow, database_url, utc_now
from calcinosis.cohort.task import (
    STOP_PREFIX,
    StudyOutcome,
    StudyTask,
    clean_leftovers,
    one_line,
    retire_output,
    run_study,
)
from calcinosis.config import AnalysisConfig
from calcinosis.errors import InputError

logger = logging.getLogger(__name__)
LOCK_NAME = ".calcinosis-batch.lock"
# A rerun keeps a study failed unless told so: advice to rerun with more memory names it.
RETRY_OPTION = "--retry-failed"


@dataclass(frozen=True)
class BatchSettings:
    """How a batch runs.

    Parameters
    ----------
    config : AnalysisConfig
        Analysis settings, the same for every study.
    report, keep_identifiers : bool
        Output options, as for ``calcinosis analyze``.
    retry_failed : bool
        Redo studies that failed before (otherwise they are kept as failed).
    n_workers : int, optional
        Local cluster workers (default: one per core, as many as memory allows).
    scheduler : str, optional
        Address (``tcp://host:port``) of an existing Dask scheduler; its workers
        must see the same paths and have calcinosis installed.
    memory_per_worker_bytes : int, optional
        Local worker memory limit (default: machine RAM / workers).
    processes : bool
        Local workers as processes (default) or as threads of this process
        (no memory limit; for debugging and tiny machines).
    """

    config: AnalysisConfig = field(default_factory=AnalysisConfig)
    report: bool = True
    keep_identifiers: bool = False
    retry_failed: bool = False
    n_workers: int | None = None
    scheduler: str | None = None
    memory_per_worker_bytes: int | None = None
    processes: bool = True


@dataclass(frozen=True)
class BatchEvent:
    """Progress: ``kind`` is ``"start"`` (``n_total`` studies to run) or ``"study"`` (one finished)."""

    kind: str
    n_total: int
    n_finished: int = 0
    key: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class BatchReport:
    """What a batch did. ``failed`` holds ``(key, reason)``; ``not_finished`` the keys left
    when it was interrupted; ``skipped_series`` the DICOM series passed over (no images, or
    only LOCALIZER ones)."""

    n_studies: int
    n_up_to_date: int
    done: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]
    not_finished: tuple[str, ...]
    skipped_series: tuple[str, ...]
    removed_leftovers: tuple[str, ...]
    interrupted: bool
    db_url: str


def run_batch(root: str | os.PathLike[str], out_root: str | os.PathLike[str], *,
              db_url: str | None = None, settings: BatchSettings = BatchSettings(),
              progress: Callable[[BatchEvent], None] | None = None) -> BatchReport:
    """Analyse every study under ``root`` into ``out_root/<key>/`` and record it in the registry.

    Raises
    ------
    InputError
        ``root`` is not a folder; ``out_root`` is not usable; another batch holds
        ``out_root``; the database cannot be opened.
    """
    root_p = Path(root)
    if not root_p.is_dir():
        raise InputError(f"{root} is not a folder; give the folder that holds the studies")
    out = _prepare_out_root(out_root, root_p)
    url = db_url or database_url(out / "registry.sqlite")
    emit = progress or (lambda _e: None)
    with _batch_lock(out), Registry.open(url) as registry:
        removed = tuple(clean_leftovers(out))
        if removed:
            logger.info("removed %d unfinished folders of an earlier batch", len(removed))
        discovery = discover_studies(root_p, exclude=(out,))
        settings_doc = settings_document(settings.config.to_dict(), report=settings.report,
                                         keep_identifiers=settings.keep_identifiers)
        run = _Run(registry, out, settings, settings_doc, settings_hash(settings_doc))
        todo, n_up_to_date = run.plan(discovery.studies)
        interrupted = False
        if todo:
            interrupted = run.execute(todo, emit)
    return BatchReport(
        n_studies=len(discovery.studies), n_up_to_date=n_up_to_date, done=tuple(run.done),
        failed=tuple(run.failed), not_finished=tuple(run.not_finished),
        skipped_series=discovery.skipped, removed_leftovers=removed, interrupted=interrupted,
        db_url=url)


class _Run:
    """The state of one batch run (client side)."""

    def __init__(self, registry: Registry, out: Path, settings: BatchSettings,
                 settings_doc: dict[str, Any], settings_hash: str) -> None:
        self.registry, self.out, self.settings = registry, out, settings
        self.settings_doc, self.settings_hash = settings_doc, settings_hash
        self.done: list[str] = []
        self.failed: list[tuple[str, str]] = []
        self.not_finished: list[str] = []

    def plan(self, studies: tuple[Study, ...]) -> tuple[list[Study], int]:
        """Record the studies that need work as running (or failed); returns (to run, up to date)."""
        rows = self.registry.study_rows()
        for row in rows.values():
            if row.status != "done":
                # A folder without a done row (a kill between publishing and recording,
                # a worker that outlived its client) is not a result: remove it.
                retire_output(self.out, row.key)
        rows = self._drop_earlier_names(studies, rows)
        todo: list[Study] = []
        fail_now: list[tuple[Study, str]] = []
        upserts: list[dict[str, Any]] = []
        n_up_to_date = 0
        for study in studies:
            other = rows.get(study.key)
            if other is not None and _another_study(other, study, self.out):
                # Not recorded: the row under this key is that other study's result.
                self.failed.append((study.key, (
                    f"{study.input_path} not analysed: its study key is taken in the registry by "
                    f"{other.input_path} (a root folder laid out the same, batched into this "
                    "registry before); give each root its own --out and --db, or batch the "
                    "folder that holds both")))
                continue
            problem = study.problem
            try:
                checksum = input_checksum(study.files, _checksum_base(study))
            except OSError as exc:
                checksum, problem = None, f"cannot read the input: {exc.strerror or exc}"
            prev = rows.get(study.key)
            if checksum is not None and self._up_to_date(study, prev, checksum):
                n_up_to_date += 1
                continue
            upserts.append(self._study_row(study, checksum, prev))
            if problem:
                fail_now.append((study, problem))
            else:
                todo.append(study)
        self.registry.upsert_studies(upserts)
        for row in upserts:
            # Its earlier result (other input or settings) goes now, not when the redo ends.
            retire_output(self.out, row["key"])
        for study, reason in fail_now:
            self._record_failure(study.key, reason, {})
        return todo, n_up_to_date

    def _drop_earlier_names(self, studies: tuple[Study, ...],
                            rows: dict[str, StudyRow]) -> dict[str, StudyRow]:
        """Remove the registry rows that hold one of ``studies`` under another key; returns the rest.

        Keys are paths relative to the batch root, so batching the parent of a folder
        batched before names each of its studies anew: the registry held them twice
        (under both keys) and an export counted each twice.
        """
        by_input = {(s.input_path, s.series_uid): s.key for s in studies}
        stale = [row.key for row in rows.values()
                 if by_input.get((row.input_path, row.series_uid), row.key) != row.key]
        if stale:
            logger.info("%d studies were recorded under another key before; their rows are replaced",
                        len(stale))
            self.registry.delete_studies(stale)
            for key in stale:
                retire_output(self.out, key)
        return {k: row for k, row in rows.items() if k not in stale}

    def _up_to_date(self, study: Study, prev: StudyRow | None, checksum: str) -> bool:
        if prev is None or prev.input_checksum != checksum or prev.settings_hash != self.settings_hash:
            return False
        if prev.status == "done":
            return (self.out / study.key / "summary.json").is_file()
        return prev.status == "failed" and not self.settings.retry_failed

    def _study_row(self, study: Study, checksum: str | None, prev: StudyRow | None) -> dict[str, Any]:
        return {
            "key": study.key, "input_path": study.input_path, "input_kind": study.kind,
            "series_uid": study.series_uid, "input_checksum": checksum,
            "settings": self.settings_doc, "settings_hash": self.settings_hash,
            "software_version": __version__, "status": "running", "error": None,
            "attempts": (prev.attempts if prev else 0) + 1, "queued_at": utc_now(),
            "started_at": None, "finished_at": None, "run_time_s": None, "output_dir": None,
            "worker": None, "memory_estimate_bytes": memory_estimate_bytes(study.n_voxels),
        }

    def execute(self, todo: list[Study], emit: Callable[[BatchEvent], None]) -> bool:
        """Run ``todo`` on Dask, recording each result as it comes; True if interrupted."""
        from distributed import as_completed

        s = self.settings
        estimates = [memory_estimate_bytes(st.n_voxels) or 0 for st in todo]
        plan = None if s.scheduler else plan_local_cluster(
            len(todo), max(estimates) or None, n_workers=s.n_workers,
            memory_per_worker_bytes=s.memory_per_worker_bytes)
        pending = {st.key for st in todo}
        stop_file = self.out / f"{STOP_PREFIX}{os.urandom(6).hex()}"
        n_total, n_finished = len(todo), 0
        emit(BatchEvent("start", n_total))
        try:
            with dask_client(scheduler=s.scheduler, plan=plan, processes=s.processes) as client:
                limit = worker_memory_limit_bytes(client) if (s.scheduler or s.processes) else None
                queue: list[Study] = []
                for study, estimate in zip(todo, estimates):
                    if limit and estimate > limit:
                        self._record_failure(study.key, (
                            f"needs about {estimate / GIB:.1f} GiB of memory, more than a worker's "
                            f"{limit / GIB:.1f} GiB limit; rerun with fewer --workers or more "
                            f"--memory-per-worker, and {RETRY_OPTION}"), {})
                        pending.discard(study.key)
                        n_finished += 1
                        emit(BatchEvent("study", n_total, n_finished, study.key, self.failed[-1][1]))
                    else:
                        queue.append(study)
                queue.reverse()  # popped from the end: in key order
                futures: dict[Any, str] = {}  # submitted, not yet recorded
                running = as_completed()

                def submit_while_threads_free() -> None:
                    # No more studies on the cluster than it has threads: the scheduler sends a
                    # worker more tasks than it runs, and a worker that dies (out of memory,
                    # killed) fails every study sent to it, each "died while analysing" though
                    # only one ran (1 worker, 4 studies, the worker killed in the first: 2 failed).
                    while queue and len(futures) < _cluster_threads(client):
                        study = queue.pop()
                        task = StudyTask(study.key, study.input_path, study.series_uid, str(self.out),
                                         s.config, s.report, s.keep_identifiers, str(stop_file))
                        fut = client.submit(run_study, task, pure=False, retries=0,
                                            key=f"calcinosis-study-{study.key}-{os.urandom(4).hex()}")
                        futures[fut] = study.key
                        running.add(fut)

                try:
                    submit_while_threads_free()
                    for fut in running:
                        key = futures.pop(fut)
                        outcome = _outcome_of(fut, key)
                        self._record(outcome)
                        pending.discard(key)
                        n_finished += 1
                        emit(BatchEvent("study", n_total, n_finished, key, outcome.error))
                        submit_while_threads_free()
                except KeyboardInterrupt:
                    stop_file.touch()  # studies still running publish nothing
                    client.cancel(list(futures))
                    raise
        except KeyboardInterrupt:
            stop_file.touch()
            # The interrupt may land between recording a study and noting it: the registry says.
            rows = self.registry.study_rows()
            self.not_finished = sorted(k for k in pending if rows[k].status == "running")
            for key in self.not_finished:
                retire_output(self.out, key)  # published just before the stop: not recorded
            self.registry.set_status(self.not_finished, "pending", "interrupted before it finished")
            return True
        return False

    def _record(self, outcome: StudyOutcome) -> None:
        times = {"started_at": _utc(outcome.started_at), "finished_at": _utc(outcome.finished_at),
                 "run_time_s": outcome.run_time_s, "worker": outcome.worker}
        if outcome.error is None:
            self.registry.record_done(outcome.key, {**times, "output_dir": outcome.output_dir},
                                      list(outcome.lesions), outcome.summary)
            self.done.append(outcome.key)
        else:
            self._record_failure(outcome.key, outcome.error, times)

    def _record_failure(self, key: str, reason: str, times: dict[str, Any]) -> None:
        retire_output(self.out, key)  # an earlier result must not outlive a failed redo
        self.registry.record_failed(key, reason, {"finished_at": utc_now(), **times})
        self.failed.append((key, reason))


def _cluster_threads(client) -> int:
    """Threads of the cluster's workers now (workers may come and go), at least 1.

    ``Client.nthreads`` lists every worker (``scheduler_info`` lists 5 by default in some
    Dask versions)."""
    return max(1, sum(int(n or 1) for n in client.nthreads().values()))


def _outcome_of(fut, key: str) -> StudyOutcome:
    """The worker's outcome, or a failure outcome when the task itself failed (worker lost ...)."""
    try:
        return fut.result()
    except Exception as exc:  # noqa: BLE001 - KilledWorker, CancelledError, comm errors ...
        reason = one_line(exc, with_type=True)
        if type(exc).__name__ == "KilledWorker":
            reason = ("the worker died while analysing this study (out of memory?); "
                      f"give workers more memory and rerun with {RETRY_OPTION} ({reason})")
        now = dt.datetime.now(dt.timezone.utc).timestamp()
        return StudyOutcome(key=key, error=reason, started_at=now, finished_at=now, run_time_s=0.0,
                            output_dir=None, worker="")


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)


def _another_study(row: StudyRow, study: Study, out: Path) -> bool:
    """Whether the registry's ``row`` under ``study``'s key is another study rather than this one.

    Keys are paths relative to the batch root: two roots laid out alike (site1/patient01/ct.nii.gz,
    site2/patient01/ct.nii.gz) batched into one registry give their studies the same key, and
    the second batch overwrote the first one's results. A row of another input path is this
    study moved (same data under a new root) unless that input, or its result folder in
    another batch output, is still there.
    """
    if row.input_path == study.input_path:
        return False
    if Path(row.input_path).exists():
        return True
    return bool(row.output_dir) and Path(row.output_dir).parent != out and Path(row.output_dir).exists()


def _checksum_base(study: Study) -> Path:
    return Path(study.input_path) if study.kind == "dicom" else Path(study.input_path).parent


def _prepare_out_root(out_root: str | os.PathLike[str], root: Path) -> Path:
    out = Path(out_root)
    if out.exists() and not out.is_dir():
        raise InputError(f"output path {out} exists and is not a folder; choose another --out")
    if out.resolve() == root.resolve():
        raise InputError(f"--out {out} is the input folder itself; choose another folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder {out}: {exc.strerror}") from exc
    return out.resolve()


@contextmanager
def _batch_lock(out: Path) -> Iterator[None]:
    """Hold ``OUTROOT/.calcinosis-batch.lock`` (POSIX advisory lock) for the whole batch."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(out / LOCK_NAME, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise InputError(f"another calcinosis batch is running on {out}; wait for it or "
                             "choose another --out") from exc
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
