"""Keep what native decoders print off the terminal.

GDCM's JPEG and JPEG 2000 codecs (inside SimpleITK) print their complaints about damaged
data ("Expected a SOC marker", "Corrupt JPEG data: 7 extraneous bytes ...") straight to
file descriptor 2, below Python: a damaged compressed slice put a dozen such lines on
stderr before the one-line error. :class:`NativeStderr` lends descriptor 2 to a temporary
file around such a call and keeps what was written, for the error message and the debug
log. Only the main thread lends it (the others leave it alone: see :meth:`NativeStderr.captured`).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

logger = logging.getLogger(__name__)

#: At most this many characters of what a decoder printed are kept.
MAX_TEXT = 300


class NativeStderr:
    """``with NativeStderr() as native:`` holds one temporary file; ``with native.captured():``
    around each native call sends descriptor 2 there, and ``native.text`` is then what that
    call printed, on one line (``""`` when nothing)."""

    def __init__(self) -> None:
        self.text = ""
        self._file = tempfile.TemporaryFile("w+b")

    def __enter__(self) -> NativeStderr:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._file.close()

    @contextmanager
    def captured(self) -> Iterator[None]:
        self.text = ""
        if threading.current_thread() is not threading.main_thread():
            # Descriptor 2 belongs to the whole process: two threads lending it at once (the web
            # viewer loads studies in a pool) could leave it pointing at a deleted file.
            yield
            return
        sys.stderr.flush()
        self._file.seek(0)
        self._file.truncate()
        saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            self._file.seek(0)
            raw = self._file.read(4 * MAX_TEXT).decode("utf-8", "replace")
            # A terminal's status line (rich, from its own thread) may land here too: its lines
            # carry escape sequences, a decoder's do not.
            lines = ("".join(ch if ch.isprintable() else " " for ch in line).strip()
                     for line in raw.replace("\r", "\n").splitlines() if "\x1b" not in line)
            self.text = "; ".join(dict.fromkeys(line for line in lines if line))[:MAX_TEXT]
            if self.text:
                logger.debug("a decoder printed: %s", self.text)
