"""Batch over a folder of phantom studies, against SQLite and PostgreSQL: outcome, rerun, redo, kill."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from calcinosis.cohort import BatchSettings, run_batch
from calcinosis.cohort.registry import lesions, studies, summaries
from calcinosis.config import AnalysisConfig

# Workers as threads of the test process: the same code path on the worker side,
# without the seconds a process cluster takes to start.
THREADS = BatchSettings(n_workers=2, processes=False)


def test_batch_outcome_rerun_retry_and_changed_input(study_folder, db_url, tmp_path, checks):
    root, out = study_folder.root, tmp_path / "out"
    keys = checks.keys_by_input(root)
    good = {keys[p] for p in study_folder.good}
    bad = {keys[p]: why for p, why in study_folder.bad.items()}
    assert len(keys) == len(good) + len(bad)  # README.txt is no study; the split series is one

    report = run_batch(root, out, db_url=db_url, settings=THREADS)
    assert set(report.done) == good
    assert dict(report.failed).keys() == bad.keys()
    for key, reason in report.failed:
        assert bad[key] in reason and "\n" not in reason
    rows = checks.registry_rows(db_url)
    assert {k: r["status"] for k, r in rows.items()} == {**dict.fromkeys(good, "done"),
                                                          **dict.fromkeys(bad, "failed")}
    assert all(rows[k]["input_checksum"] and rows[k]["settings_hash"] for k in rows)
    checks.assert_registry_matches_outputs(db_url, out)
    assert not [p for p in out.iterdir() if ".partial-" in p.name]

    # Rerun: nothing to do, nothing touched.
    mtimes = {k: (out / k / "summary.json").stat().st_mtime_ns for k in good}
    again = run_batch(root, out, db_url=db_url, settings=THREADS)
    assert (again.done, again.failed, again.n_up_to_date) == ((), (), len(keys))
    assert checks.registry_rows(db_url) == rows
    assert {k: (out / k / "summary.json").stat().st_mtime_ns for k in good} == mtimes

    # --retry-failed redoes the failures only (they fail again, with the same reasons).
    retry = run_batch(root, out, db_url=db_url,
                      settings=BatchSettings(n_workers=2, processes=False, retry_failed=True))
    assert retry.done == () and dict(retry.failed).keys() == bad.keys()
    after = checks.registry_rows(db_url)
    assert all(after[k]["attempts"] == 2 for k in bad) and all(after[k]["attempts"] == 1 for k in good)

    # A changed input is redone; the others are not.
    changed = study_folder.good[1]
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    redo = run_batch(root, out, db_url=db_url, settings=THREADS)
    assert redo.done == (keys[changed],) and redo.failed == ()
    assert checks.registry_rows(db_url)[keys[changed]]["attempts"] == 2
    checks.assert_registry_matches_outputs(db_url, out)

    # New settings redo everything that can be done.
    stricter = run_batch(root, out, db_url=db_url, settings=BatchSettings(
        n_workers=2, processes=False, config=AnalysisConfig(threshold_hu=160.0)))
    assert set(stricter.done) == good
    checks.assert_registry_matches_outputs(db_url, out)


def test_unexpected_exception_is_recorded_and_batch_goes_on(study_folder, tmp_path, monkeypatch, checks):
    import calcinosis.pipeline as pipeline

    real = pipeline.analyze
    victim = study_folder.good[0]

    def analyze(volume, config=None, **kwargs):
        if Path(str(volume.metadata.get("source_path"))).name == victim.name:
            raise ZeroDivisionError("injected fault")
        return real(volume, config, **kwargs)

    monkeypatch.setattr(pipeline, "analyze", analyze)
    root = victim.parent.parent  # site_a: this study and the NRRD one
    report = run_batch(root, tmp_path / "out", settings=BatchSettings(n_workers=1, processes=False))
    keys = checks.keys_by_input(root)
    assert dict(report.failed) == {keys[victim]: "ZeroDivisionError: injected fault"}
    assert report.done == (keys[study_folder.good[1]],)


def _count_done(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(studies)
                                .where(studies.c.status == "done")).scalar_one()
    except sa.exc.DBAPIError:  # tables not there yet, or SQLite busy
        return 0
    finally:
        engine.dispose()


def test_kill_mid_run_then_rerun_finishes_each_study_once(study_folder, db_url, tmp_path, checks):
    root, out = study_folder.root, tmp_path / "out"
    cmd = [sys.executable, "-m", "calcinosis.cli", "batch", str(root), "--out", str(out),
           "--db", db_url, "--workers", "1", "--in-process"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while _count_done(db_url) == 0:
            assert proc.poll() is None, f"batch ended early: {proc.stderr.read().decode()}"
            assert time.monotonic() < deadline, "no study finished in time"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    killed = checks.registry_rows(db_url)
    done_at_kill = {k for k, r in killed.items() if r["status"] == "done"}
    assert 0 < len(done_at_kill) < len(study_folder.good), "the kill did not land mid-run"
    checks.assert_registry_matches_outputs(db_url, out)  # nothing half-written looks done

    report = run_batch(root, out, db_url=db_url, settings=THREADS)
    keys = checks.keys_by_input(root)
    good = {keys[p] for p in study_folder.good}
    assert set(report.done) == good - done_at_kill  # finished ones are not redone
    rows = checks.registry_rows(db_url)
    assert {k for k, r in rows.items() if r["status"] == "done"} == good
    for key in done_at_kill:
        assert rows[key]["attempts"] == 1 and rows[key]["finished_at"] == killed[key]["finished_at"]
    checks.assert_registry_matches_outputs(db_url, out)
    assert not [p for p in out.iterdir() if ".partial-" in p.name or ".old-" in p.name]


def test_ctrl_c_stops_cleanly_and_keeps_what_finished(study_folder, tmp_path, checks):
    root, out = study_folder.root, tmp_path / "out"
    url = f"sqlite:///{out / 'registry.sqlite'}"
    cmd = [sys.executable, "-m", "calcinosis.cli", "batch", str(root), "--out", str(out),
           "--workers", "1", "--in-process"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while _count_done(url) == 0:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr.decode()
    assert b"Traceback" not in stderr and b"not finished (interrupted" in stdout
    rows = checks.registry_rows(url)
    statuses = {r["status"] for r in rows.values()}
    assert "done" in statuses and "running" not in statuses and "pending" in statuses
    checks.assert_registry_matches_outputs(url, out)


def test_a_redo_killed_before_it_ends_leaves_no_result_of_the_old_settings(study_folder, db_url, tmp_path,
                                                                           monkeypatch, checks):
    # A rerun with new settings queues a done study again (its row then records the new
    # settings). Killed before the redo finished, the row used to keep the old settings'
    # lesions, summary and output folder: a query joining them read old results under new
    # settings. They go when the study is queued.
    from calcinosis.cohort import batch

    root, out, url = study_folder.good[0].parent, tmp_path / "out", db_url
    first = run_batch(root, out, db_url=url, settings=THREADS)
    (key,) = first.done

    class Killed(BaseException):
        pass

    def killed(self, todo, emit):
        raise Killed

    monkeypatch.setattr(batch._Run, "execute", killed)
    stricter = BatchSettings(n_workers=2, processes=False, config=AnalysisConfig(threshold_hu=160.0))
    try:
        run_batch(root, out, db_url=url, settings=stricter)
    except Killed:
        pass
    row = checks.registry_rows(url)[key]
    assert row["status"] == "running" and row["settings"]["analysis"]["threshold_hu"] == 160.0
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            n_lesions = conn.execute(sa.select(sa.func.count()).select_from(lesions)
                                     .where(lesions.c.study_key == key)).scalar_one()
            n_summaries = conn.execute(sa.select(sa.func.count()).select_from(summaries)
                                       .where(summaries.c.study_key == key)).scalar_one()
    finally:
        engine.dispose()
    assert (n_lesions, n_summaries) == (0, 0)
    assert not (out / key).exists()
    checks.assert_registry_matches_outputs(url, out)

    monkeypatch.undo()
    assert run_batch(root, out, db_url=url, settings=stricter).done == (key,)
    checks.assert_registry_matches_outputs(url, out)


def test_two_roots_laid_out_alike_in_one_registry_do_not_overwrite_each_other(study_folder, db_url,
                                                                              tmp_path, checks):
    # Keys are paths relative to the root: site1/patient01/ct.nii.gz and
    # site2/patient01/ct.nii.gz get the same key. Batched into one registry (one --db for
    # every site), the second batch overwrote the first one's row, and rerunning the first
    # redid it (and overwrote the second's): the registry never held both.
    nifti = study_folder.good[0]
    for site in ("site1", "site2"):
        (tmp_path / site / "patient01").mkdir(parents=True)
        shutil.copy2(nifti, tmp_path / site / "patient01" / "ct.nii.gz")
    url = db_url  # one registry for every site
    first = run_batch(tmp_path / "site1", tmp_path / "out1", db_url=url, settings=THREADS)
    (key,) = first.done
    before = checks.registry_rows(url)

    second = run_batch(tmp_path / "site2", tmp_path / "out2", db_url=url, settings=THREADS)
    assert second.done == () and [k for k, _ in second.failed] == [key]
    reason = second.failed[0][1]
    assert "site2" in reason and "taken in the registry by" in reason and "\n" not in reason
    assert checks.registry_rows(url) == before  # the first site's result stands
    assert not (tmp_path / "out2" / key).exists()
    checks.assert_registry_matches_outputs(url, tmp_path / "out1")

    again = run_batch(tmp_path / "site1", tmp_path / "out1", db_url=url, settings=THREADS)
    assert (again.done, again.failed, again.n_up_to_date) == ((), (), 1)


def test_batching_the_parent_of_a_batched_folder_keeps_each_study_once(study_folder, tmp_path, checks):
    # The parent's batch names the child's studies anew (child_ct-...): the registry held each
    # twice, both done, and an export counted the patient twice.
    child = tmp_path / "root" / "child"
    child.mkdir(parents=True)
    shutil.copy2(study_folder.good[0], child / "ct.nii.gz")
    out = tmp_path / "out"
    url = f"sqlite:///{out / 'registry.sqlite'}"
    (old_key,) = run_batch(child, out, settings=THREADS).done
    (new_key,) = run_batch(tmp_path / "root", out, settings=THREADS).done
    assert new_key != old_key
    rows = checks.registry_rows(url)
    assert list(rows) == [new_key] and rows[new_key]["status"] == "done"
    assert not (out / old_key).exists()
    checks.assert_registry_matches_outputs(url, out)
