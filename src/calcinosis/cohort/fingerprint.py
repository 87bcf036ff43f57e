"""Fingerprints that decide whether a study must be (re)done: input checksum and settings hash.

Input checksum
--------------
SHA-256 over, for every file of the study in sorted order: its name relative to
the study's input folder, its size in bytes, its modification time (ns), and its
content — all of it for files up to :data:`FULL_HASH_MAX_BYTES` (256 KiB), the
first and last :data:`HEAD_TAIL_BYTES` (128 KiB) for larger ones. This reads at
most 256 KiB per file, so fingerprinting an archive costs little next to
analysing it, and it catches every ordinary change: a replaced or re-exported
file (new mtime, size or header), a gzip file (its CRC sits in the last bytes),
an added or removed DICOM slice. Copying the data without keeping mtimes
(``cp`` without ``-p``) makes every study look changed, so it is redone: the safe
direction.

Settings hash
-------------
SHA-256 of the canonical JSON of the analysis settings
(:meth:`AnalysisConfig.to_dict`) and the output options that change the output
folder (report, identifiers). The software version is recorded but not hashed: a
new calcinosis version does not by itself redo finished studies.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

FULL_HASH_MAX_BYTES = 256 * 1024
HEAD_TAIL_BYTES = 128 * 1024


def input_checksum(files: Iterable[str | os.PathLike[str]], base: str | os.PathLike[str]) -> str:
    """Fast checksum of a study's files (see the module docstring); hex SHA-256.

    Raises ``OSError`` when a file cannot be read (the caller records the study as failed).
    """
    base = Path(base)
    h = hashlib.sha256()
    for path in sorted(Path(f) for f in files):
        st = path.stat()
        try:
            name = path.relative_to(base).as_posix()
        except ValueError:
            name = path.name
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        with open(path, "rb") as fh:
            if st.st_size <= FULL_HASH_MAX_BYTES:
                h.update(fh.read())
            else:
                h.update(fh.read(HEAD_TAIL_BYTES))
                fh.seek(-HEAD_TAIL_BYTES, os.SEEK_END)
                h.update(fh.read(HEAD_TAIL_BYTES))
    return h.hexdigest()


def settings_document(config_dict: dict[str, Any], *, report: bool, keep_identifiers: bool) -> dict[str, Any]:
    """The settings that define a study's result, as stored in the registry."""
    return {"analysis": dict(config_dict), "outputs": {"report": bool(report),
                                                        "keep_identifiers": bool(keep_identifiers)}}


def settings_hash(settings: dict[str, Any]) -> str:
    """Hex SHA-256 of the canonical (sorted-key, compact) JSON of ``settings``."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
