"""Refuse truncated or damaged NIfTI files, and float ones holding NaN.

SimpleITK reads a truncated ``.nii`` or ``.nii.gz`` without complaint and fills the
missing voxels with zeros, and reads NaN as 0: silent wrong answers. A batch over an
archive meets such files (interrupted copies), so a NIfTI study's header is parsed and
its voxel data read once (:func:`check_nifti_complete`): they must all be there (for
``.nii``, by the file size and the data themselves; for ``.nii.gz``, by decompressing
the stream, which also checks each member's CRC) and, in a float file, finite. The gzip
trailer's length field alone is not enough: a flipped bit in the middle of the stream
leaves it right, and ITK then reads zeros from the damage on, with no error. What ITK
reads well is not refused: a gzip file of several members, junk after the last member
(as ``gzip -d`` ignores it), an uncompressed file named ``.nii.gz``, a header whose
``bitpix`` disagrees with its data type (the data type sizes the voxels).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from calcinosis.errors import InputError

_CHUNK = 4 * 1024 * 1024
# The longest NIfTI header (NIfTI-2's 540 bytes and its extension flag).
_HEADER_BYTES = 544
_GZIP_MAGIC = b"\x1f\x8b"
# NIfTI data type codes -> bytes per voxel (nifti1.h); FLOAT32 and FLOAT64 are scanned for NaN.
_DATATYPE_BYTES = {2: 1, 4: 2, 8: 4, 16: 4, 32: 8, 64: 8, 128: 3, 256: 1, 512: 2, 768: 4, 1024: 8, 1280: 8,
                   1536: 16, 1792: 16, 2048: 32, 2304: 4}
_FLOAT_TYPES = {16: "f4", 64: "f8"}
# Data types :func:`read_nifti_voxels` reads itself (scalar numbers).
_PLAIN_TYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4", 1024: "i8",
                1280: "u8"}


class NiftiHeader:
    """A NIfTI-1 or NIfTI-2 header (either byte order): ``parsed`` when it is one; its voxel
    size fields (``pixdim``, ``sform``, ``srow``: the sform's rows, 12 numbers; ``qform`` and
    ``quatern``: the qform's code, then quatern_b, c, d and qoffset_x, y, z), the raw
    ``vox_offset`` and whether it is a single file (NIfTI-1 ``n+1``); and ``ok`` when its
    data layout is one the checks here can follow: ``data_start``, ``expected`` (bytes up to
    the end of the voxel data), the voxel ``dtype`` (None: not a plain number),
    ``float_dtype``, ``shape`` (``[.., z, y, x]``) and ``scaling`` (ITK's, or None)."""

    def __init__(self, head: bytes) -> None:
        self.parsed = self.ok = False
        for endian in "<>":
            if len(head) >= 348 and struct.unpack(f"{endian}i", head[:4])[0] == 348:
                dims = struct.unpack(f"{endian}8h", head[40:56])
                datatype, bitpix = struct.unpack(f"{endian}2h", head[70:74])
                self.pixdim = struct.unpack(f"{endian}8f", head[76:108])
                self.vox_offset = struct.unpack(f"{endian}f", head[108:112])[0]
                slope, inter = struct.unpack(f"{endian}2f", head[112:120])
                self.qform, self.sform = struct.unpack(f"{endian}2h", head[252:256])
                self.quatern = struct.unpack(f"{endian}6f", head[256:280])
                self.srow = struct.unpack(f"{endian}12f", head[280:328])
                self.single_file = head[344:347] == b"n+1"
                size = 348
            elif len(head) >= 540 and struct.unpack(f"{endian}i", head[:4])[0] == 540:
                datatype, bitpix = struct.unpack(f"{endian}2h", head[12:16])
                dims = struct.unpack(f"{endian}8q", head[16:80])
                self.pixdim = struct.unpack(f"{endian}8d", head[104:168])
                self.vox_offset = struct.unpack(f"{endian}q", head[168:176])[0]
                slope, inter = struct.unpack(f"{endian}2d", head[176:192])
                self.qform, self.sform = struct.unpack(f"{endian}2i", head[344:352])
                self.quatern = struct.unpack(f"{endian}6d", head[352:400])
                self.srow = struct.unpack(f"{endian}12d", head[400:496])
                self.single_file = False
                size = 540
            else:
                continue
            self.parsed = True
            ndim = int(dims[0])
            per_voxel = _DATATYPE_BYTES.get(int(datatype), bitpix // 8 if bitpix > 0 else 0)
            if not 1 <= ndim <= 7 or per_voxel <= 0 or not np.isfinite(self.vox_offset):
                return
            voxels = 1
            for d in dims[1:ndim + 1]:
                voxels *= max(int(d), 1)
            self.ok = True
            self.data_start = max(int(self.vox_offset), size)
            self.expected = self.data_start + voxels * per_voxel
            float_code = _FLOAT_TYPES.get(int(datatype))
            self.float_dtype = np.dtype(endian + float_code) if float_code else None
            code = _PLAIN_TYPES.get(int(datatype))
            self.dtype = np.dtype(endian + code) if code else None
            self.shape = tuple(max(int(d), 1) for d in dims[1:ndim + 1])[::-1]  # [.., z, y, x]
            # ITK's rule (measured): a slope of 0 or not a number counts as 1, an intercept
            # that is not a number as 0.
            slope = float(slope) if np.isfinite(slope) and slope != 0 else 1.0
            inter = float(inter) if np.isfinite(inter) else 0.0
            self.scaling = (slope, inter) if (slope, inter) != (1.0, 0.0) else None
            return


def read_nifti_header(path: str | Path) -> NiftiHeader | None:
    """The header of a NIfTI file, gzip-compressed or not (whatever its name); None when its
    first bytes cannot be read (the reader then says what is wrong)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEADER_BYTES)
            if head[:2] == _GZIP_MAGIC:
                fh.seek(0)
                with gzip.GzipFile(fileobj=fh) as gz:
                    head = gz.read(_HEADER_BYTES)
    except (OSError, EOFError, zlib.error):
        return None
    return NiftiHeader(head)


def check_nifti_complete(path: str | Path, *, finite: bool = True) -> None:
    """Raise :class:`InputError` when the NIfTI file at ``path`` is cut short, its gzip stream
    is damaged, or (with ``finite``) its float voxels hold NaN or infinity (read once, in
    chunks).

    Files that are not NIfTI (by name) are not checked; a header that cannot be parsed is
    left to the reader, which says what is wrong.
    """
    path = Path(path)
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        return
    scan = _Scan()
    _stream(path, scan)
    if scan.header is None or not scan.header.ok:
        return
    _check_length(path, scan.total, scan.header.expected)
    if finite and scan.non_finite:
        raise InputError(f"values cannot be HU in {path}: the image holds NaN or infinite values")


def read_nifti_voxels(path: str | Path) -> tuple[np.ndarray, tuple[float, float] | None] | None:
    """The voxels of a NIfTI file as stored (``[z, y, x]``; a 4-D file of one time point as
    3-D) and its scaling ``(scl_slope, scl_inter)`` (None: none), read in one pass that
    makes :func:`check_nifti_complete`'s checks of length and gzip damage on the way. None
    when the file's layout is not one read here (not 3-D, a data type that is not a plain
    number): then ITK reads it.

    ITK's own read decompresses a ``.nii.gz`` as this does, but says nothing of damage: with
    the check beside it the file was decompressed twice (2.3 times SimpleITK's read on one
    thread).
    """
    path = Path(path)
    sink = _Collect()
    try:
        _stream(path, sink)
    except _Unsupported:
        return None
    header = sink.header
    if header is None or not header.ok or header.dtype is None:
        return None
    _check_length(path, sink.total, header.expected)
    shape = header.shape
    if len(shape) < 3 or int(np.prod(shape[:-3])) != 1:
        return None
    array = np.frombuffer(sink.buffer, dtype=header.dtype).reshape(shape[-3:])
    if not header.dtype.isnative:
        array = array.astype(header.dtype.newbyteorder("="))
    return array, header.scaling


def _stream(path: Path, sink) -> None:
    """Feed ``sink`` the file's bytes, decompressed when it is gzip (whatever its name: ITK
    reads an uncompressed file named .nii.gz as it is); damage is bad input."""
    try:
        with open(path, "rb") as fh:
            if fh.read(2) == _GZIP_MAGIC:
                fh.seek(0)
                _inflate_members(fh, sink)
            else:
                fh.seek(0)
                while chunk := fh.read(_CHUNK):
                    sink.feed(chunk)
                sink.finish()
    except (zlib.error, _Truncated) as exc:
        raise InputError(f"{path} is truncated or corrupt ({exc}); copy or export it again") from None


def _check_length(path: Path, total: int, expected: int) -> None:
    if total < expected:
        raise InputError(f"{path} is truncated: {total} of {expected} bytes present; copy or export it again")


class _Unsupported(Exception):
    """A layout :func:`read_nifti_voxels` leaves to ITK (stops the stream early)."""


class _Truncated(Exception):
    pass


class _Scan:
    """Bytes of the decompressed file fed in order: their count, the header from the first
    544 of them, and whether a float file's voxels hold a value that is not finite."""

    def __init__(self) -> None:
        self.total = 0
        self.header: NiftiHeader | None = None
        self.non_finite = False
        self._buffer = b""  # the first bytes, until the header is read from them
        self._rest = b""  # a voxel's bytes cut by the end of the last piece

    def feed(self, data: bytes) -> None:
        if self.header is None:
            self._buffer += data
            if len(self._buffer) < _HEADER_BYTES:
                return
            data, self._buffer = self._buffer, b""
            self.header = NiftiHeader(data[:_HEADER_BYTES])
        self._scan(data)

    def finish(self) -> None:
        """After the last piece (a file shorter than the longest header)."""
        if self.header is None:
            data, self._buffer = self._buffer, b""
            self.header = NiftiHeader(data)
            self._scan(data)

    def _scan(self, data: bytes) -> None:
        start = self.total
        self.total += len(data)
        header = self.header
        if header is None or not self._follows(header):
            return
        # The voxel bytes in this piece (after the header, before the end of the data).
        lo = max(header.data_start - start, 0)
        hi = min(header.expected - start, len(data))
        if hi > lo:
            self._voxels(header, memoryview(data)[lo:hi])

    def _follows(self, header: NiftiHeader) -> bool:
        """Whether the voxel bytes are worth reading: a float file's, while none is found bad."""
        return header.ok and header.float_dtype is not None and not self.non_finite

    def _voxels(self, header: NiftiHeader, data: memoryview) -> None:
        piece = self._rest + bytes(data)
        usable = len(piece) - len(piece) % header.float_dtype.itemsize
        if not np.isfinite(np.frombuffer(piece[:usable], dtype=header.float_dtype)).all():
            self.non_finite = True
        self._rest = piece[usable:]


class _Collect(_Scan):
    """A :class:`_Scan` that keeps the voxel bytes. The buffer grows with what the file holds
    (not allocated at the size its header claims: a damaged header may claim terabytes)."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer = bytearray()

    def _follows(self, header: NiftiHeader) -> bool:
        if not header.ok or header.dtype is None:
            raise _Unsupported
        return True

    def _voxels(self, header: NiftiHeader, data: memoryview) -> None:
        self.buffer += data


def _inflate_members(fh, scan: _Scan) -> None:
    """Decompress every gzip member of ``fh`` into ``scan`` (each member's CRC and length are
    checked by zlib); stop at bytes after a member that do not start another (trailing junk,
    which ITK and ``gzip -d`` ignore). A stream that ends inside a member is truncated."""
    stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
    pending = b""
    while True:
        data = pending or stream.unconsumed_tail or fh.read(_CHUNK)
        pending = b""
        if not data:
            scan.feed(stream.flush())  # what zlib still holds when the input ran out with the output limit
            if not stream.eof:
                raise _Truncated("the compressed stream ends before its end marker")
            break
        scan.feed(stream.decompress(data, _CHUNK))  # bounded: zeros inflate 1000-fold
        if stream.eof:
            rest = stream.unused_data
            if rest[:2] != _GZIP_MAGIC:
                more = fh.read(2) if len(rest) < 2 else b""
                if (rest + more)[:2] != _GZIP_MAGIC:
                    break  # the end, or junk after the last member
                rest += more
            stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
            pending = rest
    scan.finish()
