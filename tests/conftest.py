"""Fixtures shared by the test folders."""

from __future__ import annotations

from pathlib import Path

import pytest


def to_enhanced_ct(files, path: Path, *, reverse: bool = True, transfer_syntax_uid: str | None = None) -> Path:
    """A Legacy Converted Enhanced CT (one multi-frame file, by highdicom) of the single-frame
    CT files ``files``, written to ``path``; its frames in the files' order, reversed by
    default (so that a reader must sort them); ``transfer_syntax_uid``: e.g. RLE Lossless."""
    import highdicom as hd
    import pydicom

    datasets = [pydicom.dcmread(f) for f in files]
    if reverse:
        datasets = datasets[::-1]
    image = hd.legacy.LegacyConvertedEnhancedCTImage(
        datasets, series_instance_uid=hd.UID(), series_number=2, sop_instance_uid=hd.UID(), instance_number=1,
        transfer_syntax_uid=transfer_syntax_uid)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save_as(path)
    return path


@pytest.fixture(scope="session")
def enhanced_ct():
    """:func:`to_enhanced_ct`."""
    return to_enhanced_ct


@pytest.fixture(scope="session")
def png_declaring():
    """``png_declaring(path, image, width, height)``: a PNG of ``image`` (uint8 grey) whose
    header declares ``width`` x ``height`` pixels: its compressed data ends cleanly after the
    rows ``image`` has (a truncated file Pillow reads without complaint, or a huge one)."""
    import struct
    import zlib

    from PIL import Image

    def write(path, image, width: int, height: int):
        Image.fromarray(image).save(path)
        data = bytearray(path.read_bytes())
        data[16:24] = struct.pack(">II", width, height)  # IHDR width, height
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # IHDR CRC
        path.write_bytes(bytes(data))
        return path

    return write
