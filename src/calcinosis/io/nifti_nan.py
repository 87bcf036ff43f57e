"""Find NaN in float NIfTI files, which ITK's NIfTI reader silently turns into 0.

A NaN voxel read as 0 HU (water) would be a silent wrong answer, so float NIfTI
files are scanned on disk before they are read.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

_FLOAT_TYPES = {16: "f4", 64: "f8"}  # NIfTI datatype codes FLOAT32, FLOAT64
_CHUNK_BYTES = 1 << 22


def _open(path: Path):  # type: ignore[no-untyped-def]
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def nifti_has_nan(path: Path) -> bool:
    """Whether the voxel data of a float32/float64 NIfTI-1/-2 file holds NaN or infinity.

    Returns False for other data types and for files whose header it cannot parse
    (SimpleITK then reports those). Reads the data in chunks of 4 MiB.
    """
    with _open(path) as fh:
        head = fh.read(540)
        if len(head) < 348:
            return False
        for endian in "<>":
            size = struct.unpack(endian + "i", head[:4])[0]
            if size in (348, 540):
                break
        else:
            return False
        if size == 348:
            datatype = struct.unpack(endian + "h", head[70:72])[0]
            offset = int(struct.unpack(endian + "f", head[108:112])[0])
        else:
            datatype = struct.unpack(endian + "h", head[12:14])[0]
            offset = int(struct.unpack(endian + "q", head[168:176])[0])
        if datatype not in _FLOAT_TYPES:
            return False
        dtype = np.dtype(endian + _FLOAT_TYPES[datatype])
        fh.seek(max(offset, size))
        rest = b""
        while chunk := fh.read(_CHUNK_BYTES):
            data = rest + chunk
            usable = len(data) - len(data) % dtype.itemsize
            if not np.all(np.isfinite(np.frombuffer(data[:usable], dtype=dtype))):
                return True
            rest = data[usable:]
    return False
