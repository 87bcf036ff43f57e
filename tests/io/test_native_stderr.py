"""What native code writes to descriptor 2 is kept off the terminal and read back in one line."""

from __future__ import annotations

import os

from calcinosis.io.native_stderr import NativeStderr


def test_a_decoders_lines_come_back_as_one_and_a_status_lines_are_dropped(capfd):
    with NativeStderr() as native:
        with native.captured():
            # A decoder's complaint twice, between the redraws of a terminal's status line.
            os.write(2, b"\x1b[?25l\r\x1b[2K\xe2\xa0\x8b calcinosis: reading\x1b[0m\r"
                        b"Expected a SOC marker\nExpected a SOC marker\nCorrupt JPEG data\n")
        assert native.text == "Expected a SOC marker; Corrupt JPEG data"
        with native.captured():
            pass
        assert native.text == ""  # each call's own
    assert capfd.readouterr().err == ""
