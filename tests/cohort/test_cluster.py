"""Dask execution: an existing scheduler with two worker processes; memory bounds; the local cluster."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from calcinosis.cohort import BatchSettings, run_batch
from calcinosis.cohort.cluster import GIB, memory_estimate_bytes, plan_local_cluster


def _stop(procs) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_batch_through_an_existing_scheduler_with_two_workers(study_folder, tmp_path, checks):
    from distributed import Client

    sched_file = tmp_path / "scheduler.json"
    dask = [sys.executable, "-m", "dask"]
    procs = [subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(sched_file)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists():
            assert procs[0].poll() is None, "dask scheduler exited"
            assert time.monotonic() < deadline, "dask scheduler did not start"
            time.sleep(0.1)
        for _ in range(2):
            procs.append(subprocess.Popen(
                [*dask, "worker", "--scheduler-file", str(sched_file), "--nthreads", "1",
                 "--no-dashboard", "--no-nanny", "--host", "127.0.0.1", "--memory-limit", "2GiB"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
            workers = set(client.scheduler_info()["workers"])
        assert len(workers) == 2

        root = study_folder.good[0].parent.parent  # site_a: a NIfTI and an NRRD study
        out = tmp_path / "out"
        report = run_batch(root, out, settings=BatchSettings(scheduler=address))
        keys = checks.keys_by_input(root)
        assert set(report.done) == set(keys.values()) and report.failed == ()
        url = f"sqlite:///{out / 'registry.sqlite'}"
        rows = checks.registry_rows(url)
        assert {r["worker"] for r in rows.values()} <= workers  # ran on the cluster, not here
        checks.assert_registry_matches_outputs(url, out)
    finally:
        _stop(procs[::-1])


def test_study_too_big_for_a_worker_is_refused_up_front(study_folder, tmp_path):
    nifti = study_folder.good[0]
    root = nifti.parent
    # A real process cluster whose worker limit is below the study's estimate.
    limit = memory_estimate_bytes(1) - 1
    report = run_batch(root, tmp_path / "out", settings=BatchSettings(
        n_workers=1, memory_per_worker_bytes=limit))
    (key, reason), = report.failed
    assert report.done == () and "more than a worker's" in reason and "GiB" in reason
    assert not (tmp_path / "out" / key).exists()
    # The advice names --retry-failed: more memory alone left the study failed ("1 already
    # up to date"), and the message did not say why.
    assert "--retry-failed" in reason
    roomy = BatchSettings(n_workers=1, memory_per_worker_bytes=limit * 1000)
    assert run_batch(root, tmp_path / "out", settings=roomy).n_up_to_date == 1
    retry = run_batch(root, tmp_path / "out", settings=BatchSettings(
        n_workers=1, processes=False, retry_failed=True))
    assert retry.done == (key,)


def test_local_cluster_plan():
    est = memory_estimate_bytes(100_000_000)
    assert est == 512 * 1024**2 + 48 * 100_000_000
    assert memory_estimate_bytes(None) is None
    # One worker per core, capped by studies and by how many of the largest study fit in RAM.
    assert plan_local_cluster(50, None, cores=8, memory_bytes=64 * GIB).n_workers == 8
    assert plan_local_cluster(3, None, cores=8, memory_bytes=64 * GIB).n_workers == 3
    plan = plan_local_cluster(50, 10 * GIB, cores=8, memory_bytes=64 * GIB)
    assert plan.n_workers == 6 and plan.memory_per_worker_bytes == 64 * GIB // 6
    assert plan_local_cluster(50, 100 * GIB, cores=8, memory_bytes=64 * GIB).n_workers == 1
    assert plan_local_cluster(50, None, n_workers=2, cores=8, memory_bytes=64 * GIB) \
        .memory_per_worker_bytes == 32 * GIB
    with pytest.raises(ValueError, match="at least 1"):
        plan_local_cluster(5, None, n_workers=0, cores=8, memory_bytes=GIB)


def test_the_cluster_holds_no_more_studies_than_it_has_threads(study_folder, tmp_path, monkeypatch):
    # A worker that dies fails every task the scheduler had sent it, and the scheduler sends
    # a worker more than it runs: 1 worker process killed while analysing the first of 4
    # studies failed 2 (that one and the one queued behind it), each "died while analysing
    # this study". The batch now hands the cluster one study per thread; each study checks,
    # when it ends, how many the scheduler holds on its worker.
    import dataclasses

    from calcinosis.cohort import batch
    from calcinosis.cohort.task import run_study

    def run_and_count(task):
        from distributed import get_client

        outcome = run_study(task)
        held = max(len(keys) for keys in get_client().processing().values())
        return outcome if held == 1 else dataclasses.replace(outcome, error=f"its worker held {held}")

    monkeypatch.setattr(batch, "run_study", run_and_count)
    root = study_folder.good[0].parent.parent  # site_a: a NIfTI and an NRRD study
    report = run_batch(root, tmp_path / "out", settings=BatchSettings(n_workers=1, processes=False))
    assert report.failed == () and len(report.done) == 2


def test_a_local_process_cluster_gives_the_rows_of_the_in_process_path(study_folder, tmp_path):
    # Two worker processes and one in-process thread must give the same registry rows and the
    # same files: nothing a study's result depends on (thread pools, import order, which
    # worker) may leak into it.
    import sqlalchemy as sa

    from calcinosis.cohort.registry import lesions, summaries

    root = study_folder.good[0].parent.parent  # site_a: a NIfTI and an NRRD study
    results = []
    for name, settings in (("threads", BatchSettings(n_workers=1, processes=False)),
                           ("processes", BatchSettings(n_workers=2, processes=True))):
        out = tmp_path / name
        report = run_batch(root, out, settings=settings)
        assert len(report.done) == 2 and report.failed == ()
        engine = sa.create_engine(f"sqlite:///{out / 'registry.sqlite'}")
        try:
            with engine.connect() as conn:
                rows = ([r._asdict() for r in conn.execute(sa.select(lesions).order_by(
                            lesions.c.study_key, lesions.c.lesion_id))],
                        [r._asdict() for r in conn.execute(sa.select(summaries).order_by(summaries.c.study_key))])
        finally:
            engine.dispose()
        for summary in rows[1]:
            del summary["summary"]["run_time_s"]  # the one value that may differ: a time
        files = {key: (out / key / "lesions.csv").read_bytes() for key in report.done}
        results.append((rows, files))
    assert results[0][0][0] and results[0] == results[1]
