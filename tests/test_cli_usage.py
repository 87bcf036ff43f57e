"""The ``calcinosis`` command line as a new user meets it: wrong usage, the environment,
Ctrl-C and the status line. Bad input exits 2 with one line on stderr, everywhere."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import calcinosis
from calcinosis import cli, threads
from calcinosis.cli import main
from calcinosis.errors import InputError
from calcinosis.io import write_volume
from calcinosis.phantom import make_ct_phantom


def _run(*argv: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "calcinosis.cli", *argv], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=300, check=False)


@pytest.fixture(scope="module")
def scan(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("scan") / "scan.nii.gz"
    write_volume(make_ct_phantom("thighs", seed=3, slice_thickness_mm=3.0, length_mm=15,
                                 keep_noiseless=False).volume, path)
    return path


@pytest.mark.parametrize("argv, prog, fragment", [
    ([], "calcinosis", "give a command: analyze, demo"),  # was the whole --help on stderr
    (["analyz", "x"], "calcinosis", "invalid choice: 'analyz'"),
    (["analyze"], "calcinosis analyze", "required: input, --out"),
    (["analyze", "x", "--out", "y", "--bogus"], "calcinosis analyze", "unrecognized arguments: --bogus"),
    (["analyze", "x", "--out", "y", "--threshold-hu", "abc"], "calcinosis analyze", "invalid float value: 'abc'"),
    (["cohort", "stat"], "calcinosis cohort", "invalid choice: 'stat'"),
    (["cohort", "export", "--db", "x", "--out", "y.csv", "--zz"], "calcinosis cohort export",
     "unrecognized arguments: --zz"),
    (["serve", "--port", "eighty"], "calcinosis serve", "invalid int value: 'eighty'"),
    # demo listed --keep-identifiers and ignored it (a phantom has no identifiers)
    (["demo", "--keep-identifiers"], "calcinosis demo", "unrecognized arguments: --keep-identifiers"),
])
def test_wrong_usage_is_one_line_naming_the_help(argv, prog, fragment, capsys):
    # argparse printed its usage block and a line (and sys.exit(2) from inside main).
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"{prog}: error: ") and fragment in err and f"(see {prog} --help)" in err


@pytest.mark.parametrize("argv, option", [
    (["batch", "", "--out", "o"], "root"),  # "" was the current folder: every study in it analysed
    (["batch", "root", "--out", ""], "--out"),  # registry.sqlite written into the current folder
    (["workup", "case.yaml", "--out", ""], "--out"),  # workup.json and .html written there
    (["analyze", "", "--out", "o"], "input"),  # "would write lesions.csv over or inside the input "
    (["serve", "--study", "s", "--token", ""], "--token"),  # served with no token at all
])
def test_an_empty_value_is_refused_and_nothing_is_written(argv, option, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "root").mkdir()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"argument {option}: an empty string" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]


def test_an_empty_value_is_kept_where_it_is_the_default():
    args = cli.build_parser().parse_args(["phantom", "--out", "o", "--distractors", ""])
    assert args.distractors == ""


def test_usage_errors_exit_2_in_one_line_from_the_installed_command():
    proc = _run("analyze", "scan.nii.gz", "--out", "o", "--calibration", "x")
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("calcinosis analyze: error: argument --calibration: invalid float value: 'x' "
                                   "(see calcinosis analyze --help)")


def test_version_is_the_package_version():
    proc = _run("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"calcinosis {calcinosis.__version__}"
    assert calcinosis.__version__ == importlib.metadata.version("calcinosis")


@pytest.mark.parametrize("value", ["0", "-1", "abc", "2.5", "\u00b2", "99999999999999999999", "100000"])
def test_a_bad_calcinosis_threads_exits_2_before_the_output_folder_is_made(scan, tmp_path, value):
    # 100000 aborted the process inside edt (std::system_error), 20 digits were an internal
    # error (OverflowError); 0, -1 and abc were passed over without a word.
    out = tmp_path / "o"
    proc = _run("analyze", str(scan), "--out", str(out), env={"CALCINOSIS_THREADS": value})
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and f"CALCINOSIS_THREADS={value!r} is not a number of threads" in err
    assert not out.exists()


def test_threads_from_the_environment(monkeypatch):
    most = threads.MAX_THREADS_PER_CPU * threads._cpus()
    monkeypatch.delenv("CALCINOSIS_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "100000")  # another program's variable: cut, not refused
    assert threads.n_threads() == most
    monkeypatch.setenv("OMP_NUM_THREADS", "4,2")  # an OpenMP list: passed over
    assert threads.n_threads() == threads._cpus()
    monkeypatch.setenv("CALCINOSIS_THREADS", str(most))
    assert threads.n_threads() == most
    monkeypatch.setenv("CALCINOSIS_THREADS", str(most + 1))
    with pytest.raises(InputError, match="CALCINOSIS_THREADS"):
        threads.n_threads()


def test_ctrl_c_while_starting_is_one_line_and_130(monkeypatch, capsys):
    # Loading the subcommands takes a second or more: Ctrl-C then printed a long import traceback.
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert main(["analyze", "x", "--out", "y"]) == 130
    assert capsys.readouterr().err == "calcinosis: interrupted\n"


LOG_DURING_STATUS = """
import logging, sys, time
import calcinosis.pipeline as pipeline
from calcinosis.cli import main
analyze = pipeline.analyze
def logged(*args, **kwargs):
    time.sleep(0.5)  # the status line is drawn (rich redraws it 12.5 times a second)
    logging.getLogger("calcinosis.io").warning("MARKER in the middle of the run")
    return analyze(*args, **kwargs)
pipeline.analyze = logged
sys.exit(main(sys.argv[1:]))
"""


def test_a_warning_on_a_terminal_is_printed_above_the_status_line(scan, tmp_path):
    # The log handler held the terminal's stream, so a warning was written onto the status
    # line: "calcinosis: readingWARNING: ...".
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-c", LOG_DURING_STATUS, "analyze", str(scan), "--out",
                             str(tmp_path / "o"), "--no-report"],
                            stdout=subprocess.DEVNULL, stderr=slave, env={**os.environ, "TERM": "xterm"})
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=300) == 0
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode("utf-8", "replace"))
    lines = [line for line in re.split(r"[\r\n]", text) if "MARKER" in line]
    assert lines == ["WARNING: MARKER in the middle of the run"], lines


def test_python_m_calcinosis_is_the_command():
    # "No module named calcinosis.__main__; 'calcinosis' is a package and cannot be directly executed"
    proc = subprocess.run([sys.executable, "-m", "calcinosis", "--version"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == f"calcinosis {calcinosis.__version__}"


def test_errors_of_cohort_actions_name_the_action(tmp_path, capsys):
    # "calcinosis cohort: error: ..." did not say which of status and export failed.
    assert main(["cohort", "status", "--db", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("calcinosis cohort status: error: no registry at ")
