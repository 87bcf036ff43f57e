"""Case files and imaging summaries built to hurt: alias bombs, deep nesting, huge values, pipes.

Each is bad input: exit code 2 and one short line, never a traceback, a hang or gigabytes.
"""

from __future__ import annotations

import json
import os
import threading

import pytest

from calcinosis.cli import main
from calcinosis.clinical import load_case, load_imaging_summary
from calcinosis.errors import InputError

GOOD = "case_id: demo\npatient: {age_years: 50, sex: female}\nlabs:\n  calcium: {value: 9.5, unit: mg/dL}\n"
#: A message quotes a user's value in at most 80 characters; the rest is the field and advice
#: (the longest advice lists the eleven SSc criteria items).
SHORT_MESSAGE = 600


def _alias_bomb(levels: int) -> str:
    """``levels`` lines of lists of nine aliases of the line above: 9**levels strings."""
    lines = ["a: &a [" + ", ".join(["lol"] * 9) + "]"]
    names = "abcdefghij"
    for above, name in zip(names, names[1:levels]):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{above}"] * 9) + "]")
    return "\n".join([*lines, "case_id: x", f"patient: *{names[levels - 1]}", ""])


def _cli_error(capsys, *args) -> str:
    code = main(["workup", *map(str, args)])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert "Traceback" not in captured.err + captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    return lines[0]


def test_yaml_aliases_are_refused_before_they_expand(write_case, capsys):
    # 5 levels: 59049 strings, each quoted in the old "got [...]" message (8 levels: 312 MB).
    path = write_case(_alias_bomb(5))
    with pytest.raises(InputError, match=r"line 2, column \d+: the alias \*a is not allowed") as info:
        load_case(path)
    assert len(str(info.value)) < SHORT_MESSAGE
    assert "alias" in _cli_error(capsys, path)


def test_a_merge_key_is_an_alias_too(write_case):
    text = "case_id: x\nbase: &p {age_years: 50}\npatient:\n  <<: *p\n  sex: female\n"
    with pytest.raises(InputError, match=r"alias \*p is not allowed"):
        load_case(write_case(text))


@pytest.mark.parametrize(
    "body",
    [
        "[" * 5000,  # flow sequences
        "case_id: x\nhistory: " + "{a: " * 3000 + "1" + "}" * 3000,  # flow mappings
        "case_id: x\nextra:\n" + "".join(" " * (i + 1) + "a:\n" for i in range(30)),  # block mappings
    ],
    ids=["sequences", "flow mappings", "block mappings"],
)
def test_deep_nesting_is_bad_input_not_a_recursion_error(body, write_case, capsys):
    path = write_case(body)
    with pytest.raises(InputError, match="nested more than 20 levels deep"):
        load_case(path)
    assert "nested" in _cli_error(capsys, path)


def test_an_integer_too_long_for_python_is_bad_input(write_case):
    # Python refuses to read an int of over 4300 digits (a ValueError, exit 1 before).
    path = write_case(GOOD.replace("age_years: 50", "age_years: " + "1" * 5000))
    with pytest.raises(InputError, match="line 2.*has too many digits") as info:
        load_case(path)
    assert len(str(info.value)) < SHORT_MESSAGE


def test_a_case_file_far_too_big_is_refused_unread(write_case):
    path = write_case(GOOD + "# " + "x" * (2 * 1024 * 1024) + "\n")
    with pytest.raises(InputError, match="too big for a case file"):
        load_case(path)


@pytest.mark.parametrize(
    "text, repeated",
    [
        (GOOD.replace("sex: female", "sex: " + "x" * 100_000), "x"),
        (GOOD.replace("unit: mg/dL", "unit: " + "m" * 100_000), "m"),
        # A key is at most 1024 characters in YAML.
        (GOOD + "  " + "k" * 1000 + ": {value: 1, unit: mg/dL, colour: red}\n", "k"),
        (GOOD + "history: {" + "d" * 1000 + ": true}\n", "d"),
        (GOOD + "ssc_criteria: {" + "r" * 1000 + ": true}\n", "r"),
        (GOOD + "medications: [[" + ", ".join(["xyz"] * 20_000) + "]]\n", "'xyz', "),
    ],
    ids=["sex", "unit", "lab key", "history key", "criteria item", "medication"],
)
def test_a_long_value_is_quoted_short(text, repeated, write_case):
    with pytest.raises(InputError) as info:
        load_case(write_case(text))
    message = str(info.value)
    # Cut to 80 characters with "..."; the message may still list the known fields.
    assert repeated * (80 // len(repeated) + 1) not in message and "..." in message
    assert len(message) < SHORT_MESSAGE and "\n" not in message


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
@pytest.mark.parametrize("which", ["case", "imaging"])
def test_a_named_pipe_is_refused_not_opened(which, tmp_path, write_case, capsys):
    # Opening a named pipe waits for a writer for ever: `workup pipe.yaml` hung.
    pipe = tmp_path / "pipe.yaml"
    os.mkfifo(pipe)
    args = [pipe] if which == "case" else [write_case(GOOD), "--imaging", pipe]
    found = {}
    worker = threading.Thread(target=lambda: found.update(err=_cli_error(capsys, *args)), daemon=True)
    worker.start()
    worker.join(30)
    if worker.is_alive():  # unblock the reader so that the failed test does not leave it waiting
        os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(10)
        pytest.fail("reading stopped at the named pipe")
    assert "is not a regular file (a named pipe, socket or device)" in found["err"]


def test_a_folder_is_refused_with_its_name(tmp_path):
    with pytest.raises(InputError, match="is a folder; the case file must be a file"):
        load_case(tmp_path)
    with pytest.raises(InputError, match="is a folder; the imaging summary must be a file"):
        load_imaging_summary(tmp_path)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (json.dumps({"totals": {"count": 0}})[:-3] + "1" * 5000 + "}}", "too many digits"),
    ],
    ids=["nesting", "long integer"],
)
def test_imaging_summary_that_python_cannot_read_is_bad_input(text, expected, tmp_path, write_case, capsys):
    summary = tmp_path / "summary.json"
    summary.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=expected):
        load_imaging_summary(summary)
    assert expected in _cli_error(capsys, write_case(GOOD), "--imaging", summary)
