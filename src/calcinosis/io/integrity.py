"""Refuse truncated or damaged NIfTI files.

SimpleITK reads a truncated ``.nii`` or ``.nii.gz`` without complaint and fills the
missing voxels with zeros: a silent wrong answer. A batch over an archive meets
such files (interrupted copies), so a NIfTI study's header is parsed and its voxel
data checked to be all there: for ``.nii``, by the file size; for ``.nii.gz``, by
decompressing the stream once, which also checks the gzip CRC. (The gzip trailer's
length field alone is not enough: a flipped bit in the middle of the stream leaves it
right, and ITK then reads zeros from the damage on, with no error.)
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
    compressed = name.endswith(".gz") and _starts_with(path, b"\x1f\x8b")  # else read as it is, like ITK
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


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(magic)) == magic
    except OSError:
        return False


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
