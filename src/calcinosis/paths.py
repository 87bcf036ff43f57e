"""Path names the libraries below cannot take."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from calcinosis.errors import InputError


def check_path_text(path: str | os.PathLike[str], what: str) -> None:
    """Refuse a path whose name is not valid UTF-8 text (a byte of another encoding, which
    Python keeps as a surrogate): SimpleITK's C++ aborts the whole process on one."""
    try:
        os.fsdecode(os.fspath(path)).encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(os.fspath(path)).decode("utf-8", "backslashreplace")
        raise InputError(f"the {what} path {shown} is not valid UTF-8 text; rename it") from None


def check_out_name(out_dir: str | os.PathLike[str]) -> None:
    """Refuse an output folder named by an empty string (it would be the current folder) or
    by a name that is not UTF-8 text."""
    if not os.fspath(out_dir):
        raise InputError("the output folder is an empty string; give --out a folder name")
    check_path_text(out_dir, "output folder")


def make_out_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Create an output folder (and its parents); a path that is a file, or that cannot be
    made (no such place, no permission), is an :class:`InputError` naming it."""
    check_out_name(out_dir)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"output path {out} exists and is not a folder; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder {out}: {exc.strerror or exc}; choose another --out") from None
    return out


@contextmanager
def new_folder_removed_on_error(out_dir: str | os.PathLike[str]) -> Iterator[None]:
    """Run the block; when it fails and left ``out_dir`` as an empty folder it made (the output
    folder is made before the input is read), remove that folder again."""
    out = Path(out_dir) if os.fspath(out_dir) else None
    try:
        existed = out is None or out.exists()
    except OSError:  # a name the system refuses: nothing was made
        existed = True
    try:
        yield
    except BaseException:
        if not existed and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise


def check_regular_file(path: str | os.PathLike[str], what: str, fix: str) -> int:
    """Refuse a path that is missing, unreadable, a folder, or not a regular file (a named
    pipe, socket or device: opening a pipe waits for a writer for ever, a device may never
    end); its size in bytes. Called before opening. ``what`` names the file ("case file"),
    ``fix`` ends each message (what to give)."""
    try:
        info = Path(path).stat()
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found; {fix}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc.strerror or exc}); {fix}") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{path} is a folder; {fix}")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{path} is not a regular file (a named pipe, socket or device); {fix}")
    return info.st_size


def earlier_output(folder: Path, document: str) -> bool:
    """Whether ``folder`` holds the ``document`` (summary.json, comparison.json) of a calcinosis
    run: only then are files named like its outputs taken for that run's (a rerun removes
    them; a batch does not read the folder as studies)."""
    try:
        doc = json.loads((folder / document).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and isinstance(doc.get("software"), dict) and doc["software"].get("name") == "calcinosis"
