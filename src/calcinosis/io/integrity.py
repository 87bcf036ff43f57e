"""Refuse truncated NIfTI files before reading them.

SimpleITK reads a truncated ``.nii`` or ``.nii.gz`` without complaint and fills the
missing voxels with zeros: a silent wrong answer. A batch over an archive meets
such files (interrupted copies), so before a NIfTI study is read its header is
parsed and the voxel data is checked to be all there: for ``.nii``, by the file size;
for ``.nii.gz``, by the gzip trailer's length field, else by decompressing the stream
once (which also checks the gzip CRC).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

from calcinosis.errors import InputError

_CHUNK = 4 * 1024 * 1024


def check_nifti_complete(path: str | Path) -> None:
    """Raise :class:`InputError` when the NIfTI file at ``path`` holds fewer voxel bytes than its header says.

    Files that are not NIfTI (by name) are not checked; a header that cannot be
    parsed is left to the reader, which says what is wrong.
    """
    path = Path(path)
    name = path.name.lower()
    if not name.endswith((".nii", ".nii.gz")):
        return
    compressed = name.endswith(".gz")
    if compressed and _gzip_trailer_says_complete(path):
        return
    try:
        if compressed:
            with gzip.open(path, "rb") as fh:
                header = fh.read(544)
                expected = _expected_bytes(header)
                total = len(header)
                while chunk := fh.read(_CHUNK):
                    total += len(chunk)
        else:
            with open(path, "rb") as fh:
                header = fh.read(544)
            expected = _expected_bytes(header)
            total = path.stat().st_size
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InputError(f"{path} is truncated or corrupt ({exc}); copy or export it again") from exc
    if expected is not None and total < expected:
        raise InputError(f"{path} is truncated: {total} of {expected} bytes present; "
                         "copy or export it again")


def _gzip_trailer_says_complete(path: Path) -> bool:
    """Whether a ``.nii.gz`` ends with the gzip trailer its header promises: the last four
    bytes (ISIZE) are the uncompressed length mod 2**32, which must equal the NIfTI
    header's voxel offset plus data size. A cut-off file ends inside the compressed data,
    where those bytes match by chance once in 4e9. Only the header (from the first few
    kB) and the trailer are read, not the whole stream: a match is taken as complete, and
    anything else (no match, a multi-member file, an odd header) gets the full check. A
    corrupted middle is left to zlib inside the reader, which fails on it.
    """
    try:
        with gzip.open(path, "rb") as fh:
            expected = _expected_bytes(fh.read(544))
        with open(path, "rb") as fh:
            fh.seek(-4, 2)
            isize = struct.unpack("<I", fh.read(4))[0]
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error, struct.error):
        return False
    return expected is not None and isize == expected % 2**32


def _expected_bytes(header: bytes) -> int | None:
    """vox_offset + voxels x bytes per voxel from a NIfTI-1 or NIfTI-2 header (either byte order)."""
    for endian in "<>":
        if len(header) >= 348 and struct.unpack(f"{endian}i", header[:4])[0] == 348:
            dims = struct.unpack(f"{endian}8h", header[40:56])
            bitpix = struct.unpack(f"{endian}h", header[72:74])[0]
            vox_offset = struct.unpack(f"{endian}f", header[108:112])[0]
            return _total(dims, bitpix, vox_offset)
        if len(header) >= 540 and struct.unpack(f"{endian}i", header[:4])[0] == 540:
            dims = struct.unpack(f"{endian}8q", header[16:80])
            bitpix = struct.unpack(f"{endian}h", header[14:16])[0]
            vox_offset = struct.unpack(f"{endian}q", header[168:176])[0]
            return _total(dims, bitpix, vox_offset)
    return None


def _total(dims, bitpix: int, vox_offset: float) -> int | None:
    ndim = int(dims[0])
    if not 1 <= ndim <= 7 or bitpix <= 0:
        return None
    n = 1
    for d in dims[1:ndim + 1]:
        n *= max(int(d), 1)
    return int(vox_offset) + n * bitpix // 8
