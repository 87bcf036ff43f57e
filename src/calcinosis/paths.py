"""Path names the libraries below cannot take."""

from __future__ import annotations

import os
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
