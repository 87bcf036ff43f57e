"""Atomic output writing: write to a temporary name in the same folder, then rename.

A crash never leaves a half-written file under its final name. A file that cannot be
written (no such folder, no permission, a full disk) is an :class:`InputError` naming it:
the output location is the user's to change, not a bug. Files get the mode the user's
umask gives new files (the temporary file's own is 0600).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from calcinosis.errors import InputError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Read once: setting and restoring the umask is not safe while other threads create files.
_UMASK = _umask()


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name keeps the final suffixes (``.nii.gz`` ...) so writers that pick
    the format from the name still work.
    """
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        suffix = "".join(final.suffixes)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".part{suffix}", dir=final.parent)
        os.close(fd)
    except OSError as exc:
        raise _cannot_write(final, exc) from None
    tmp = Path(tmp_name)
    try:
        try:
            yield tmp
            os.chmod(tmp, 0o666 & ~_UMASK)
            os.replace(tmp, final)
        except OSError as exc:
            raise _cannot_write(final, exc) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def _cannot_write(path: Path, exc: OSError) -> InputError:
    return InputError(f"cannot write {path}: {exc.strerror or exc}; check the output folder (its space and "
                      "permissions) or choose another")


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Deterministic JSON (sorted keys are not forced: dict order is kept; 2-space indent)."""
    return write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def write_with(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` and rename the result onto ``path``."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)
