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


def test_threads_other_than_the_main_one_leave_descriptor_2_and_pydicom_alone():
    # The web viewer loads studies in a thread pool: two threads swapping descriptor 2 at once
    # could leave it on a deleted file, and the logger's level and warnings filters are the
    # whole process's too.
    import logging
    from concurrent.futures import ThreadPoolExecutor

    from calcinosis.io.dicom_scan import quiet_pydicom

    def inside() -> tuple[int, int]:
        with NativeStderr() as native, native.captured(), quiet_pydicom():
            return os.fstat(2).st_ino, logging.getLogger("pydicom").level

    outside = (os.fstat(2).st_ino, logging.getLogger("pydicom").level)
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(inside).result() == outside
    assert inside() != outside  # the main thread does lend them
