"""Header faults that SimpleITK reads without complaint, checked before it reads the file.

Where a NIfTI, NRRD or MetaImage header gives no usable voxel size (no spacing field, a
zero, NaN or infinite one), ITK takes 1 mm and reads on: every volume and mass is then
wrong by the ratio of the true voxel to 1 mm^3, silently. A NIfTI-1 file whose voxel data
offset points into its own header is read from there (the image shifted by two voxels).
A NIfTI whose qform and sform both place the image, but differently, is read by ITK through
one or the other by their codes (the sform for code 1, the qform when the sform's code is
2) and by nibabel through the sform: every position, and the side, depends on the reader,
so such a file is refused. And ITK's MetaImage reader meets damaged compressed voxel data
with a printed "Uncompress failed" and zeros for the rest: :func:`check_metaimage_data` decompresses
the data once (beside the read, as for ``.nii.gz``; see :mod:`calcinosis.io.integrity`).
"""

from __future__ import annotations

import math
import re
import zlib
from pathlib import Path

from calcinosis.errors import InputError
from calcinosis.io.integrity import read_nifti_header

# The first bytes of a NRRD or MetaImage file that may hold its header (a real one is a
# few hundred bytes).
_HEADER_BYTES = 1 << 16
_CHUNK = 4 * 1024 * 1024
# An sform's voxel size and the pixdim agree within this share (float32 rounding, and the
# rounding of converters, stay far below it).
SFORM_TOLERANCE = 1e-3
#: A qform and an sform agree when they place every corner of the image within this share of
#: its smallest voxel (converters write both from one geometry: float32 rounding apart).
QFORM_SFORM_TOLERANCE_VOXELS = 0.5
#: An sform's axes are at right angles when no two have a cosine above this (the rounding
#: of a DICOM orientation's decimals stays below; a 1-degree gantry tilt gives 0.017).
SHEAR_TOLERANCE = 1e-3
# MetaImage element types and their sizes (bytes).
_META_TYPE_BYTES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
                    "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
                    "MET_DOUBLE": 8}


def check_header(path: Path, fmt: str) -> None:
    """Raise :class:`InputError` for a header ITK would read with a made-up voxel size (see
    the module docstring). ``fmt`` is ``nifti``, ``nrrd`` or ``metaimage``; a header that
    cannot be parsed here is left to ITK, which says what is wrong."""
    if fmt == "nifti":
        _check_nifti(path)
    elif fmt == "nrrd":
        _check_nrrd(path)
    elif fmt == "metaimage":
        _check_metaimage(path)


#: NRRD spaces that name no patient axes: ITK reads their directions as LPS all the same.
_NRRD_NON_ANATOMICAL = ("scanner-xyz", "3d-right-handed", "3d-left-handed")


def orientation_unknown(path: Path, fmt: str) -> str | None:
    """Why the header of ``path`` gives no patient orientation, or None when it gives one.

    ITK reads such a file with its axes taken as LPS (a NIfTI with neither qform nor sform:
    origin 0 and identity axes, where nibabel takes the x axis as pointing right); volumes
    and masses are right, but left and right and each position are a guess.
    """
    if fmt == "nifti":
        header = read_nifti_header(path)
        if header is not None and header.parsed and header.qform <= 0 and header.sform <= 0:
            return "its NIfTI header has neither a qform nor an sform (qform_code and sform_code 0)"
    elif fmt == "nrrd":
        fields = {}
        for line in _text_header(path)[1:]:
            key, sep, value = line.partition(":")
            if sep and not line.startswith("#"):
                fields[key.strip().lower()] = value.lstrip("=").strip()
        space = fields.get("space", "").lower()
        if not space:
            return "its NRRD header names no space (no patient axes)"
        if space.removesuffix("-time") in _NRRD_NON_ANATOMICAL:
            return f"its NRRD space is {fields['space']!r}, which names no patient axes"
    return None


def _no_spacing(path: Path, detail: str) -> InputError:
    return InputError(f"cannot use {path}: its header gives no usable voxel size ({detail}); "
                      "write the spacing in mm into the header (or convert the scan again from its DICOM series)")


def _usable(values) -> bool:
    """Finite and not zero (ITK reads a negative spacing as a flipped axis)."""
    return all(math.isfinite(v) and v != 0 for v in values)


def _check_nifti(path: Path) -> None:
    header = read_nifti_header(path)
    if header is None or not header.parsed:
        return
    if header.single_file and not header.vox_offset >= 352:
        raise InputError(f"cannot use {path}: its header puts the voxel data at byte {header.vox_offset:g}, inside "
                         "the header (NIfTI-1 data start at byte 352 or later); the file is damaged: "
                         "convert the scan again")
    # ITK takes the voxel size from pixdim (a missing one as 1 mm), even where an sform gives
    # another (it warns "unexpected scales in sform" and goes on): refused, not guessed.
    pixdim = header.pixdim[1:4]
    if not _usable(pixdim):
        raise _no_spacing(path, f"pixdim {', '.join(f'{v:g}' for v in pixdim)}")
    for code, numbers, name in ((header.sform, header.srow, "sform"), (header.qform, header.quatern, "qform")):
        if code > 0 and not all(math.isfinite(v) for v in numbers):
            raise InputError(f"cannot use {path}: its {name} holds values that are not numbers (NaN or infinite), "
                             "so where the image lies is unknown; convert the scan again")
    if header.sform > 0 and _sform_shear(header) > SHEAR_TOLERANCE:
        raise InputError(f"cannot use {path}: its sform's axes are not at right angles to each other (a sheared "
                         "grid, as a gantry-tilted series converted without correcting the tilt); resample it onto "
                         "an orthogonal grid first (dcm2niix corrects the tilt)")
    if header.sform > 0:
        srow = header.srow
        columns = [math.sqrt(sum(srow[4 * r + c] ** 2 for r in range(3))) for c in range(3)]
        if any(abs(a - abs(b)) > SFORM_TOLERANCE * abs(b) for a, b in zip(columns, pixdim)):
            raise InputError(f"cannot use {path}: its sform gives voxels of "
                             f"{' x '.join(f'{v:.4g}' for v in columns)} mm but its pixdim "
                             f"{' x '.join(f'{abs(v):.4g}' for v in pixdim)} mm (ITK reads the pixdim); "
                             "make them agree (or convert the scan again)")
    if header.sform > 0 and header.qform > 0 and header.ok:
        apart = _qform_sform_apart_mm(header)
        if not apart <= QFORM_SFORM_TOLERANCE_VOXELS * min(abs(v) for v in pixdim):
            raise InputError(f"cannot use {path}: its qform and sform place the image differently (its corners "
                             f"up to {apart:.3g} mm apart), so readers that take one or the other put every deposit "
                             "in another place, even on the other side; make them agree (e.g. with nibabel, "
                             "set the qform from the right one) or convert the scan again from its DICOM series")


def _sform_shear(header) -> float:
    """The largest cosine between two of the sform's axes (0 for an orthogonal grid)."""
    srow = header.srow
    axes = [[srow[4 * r + c] for r in range(3)] for c in range(3)]
    norms = [math.sqrt(sum(v * v for v in axis)) or 1.0 for axis in axes]
    return max(abs(sum(a * b for a, b in zip(axes[i], axes[j]))) / (norms[i] * norms[j])
               for i, j in ((0, 1), (0, 2), (1, 2)))


def _qform_sform_apart_mm(header) -> float:
    """How far apart (mm) the qform and the sform put the image's corner voxels (NIfTI's
    quaternion to matrix, as nifti1_io's ``nifti_quatern_to_mat44``)."""
    b, c, d, *offset = header.quatern
    a = math.sqrt(max(1.0 - (b * b + c * c + d * d), 0.0))
    rotation = [[a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
                [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
                [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b]]
    steps = [v if v > 0 else 1.0 for v in header.pixdim[1:4]]
    if header.pixdim[0] < 0:  # qfac: the third axis flipped
        steps[2] = -steps[2]
    srow = header.srow
    nz, ny, nx = ((1, 1, 1) + tuple(header.shape))[-3:]  # [.., z, y, x]
    apart = 0.0
    for i in (0, nx - 1):
        for j in (0, ny - 1):
            for k in (0, nz - 1):
                q = [sum(rotation[r][col] * steps[col] * n for col, n in enumerate((i, j, k))) + offset[r]
                     for r in range(3)]
                s = [srow[4 * r] * i + srow[4 * r + 1] * j + srow[4 * r + 2] * k + srow[4 * r + 3] for r in range(3)]
                apart = max(apart, math.dist(q, s))
    return apart


def _text_header(path: Path) -> list[str]:
    """The header lines of a NRRD or MetaImage file (up to the first blank line, or up to and
    including MetaImage's ElementDataFile line)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(_HEADER_BYTES)
    except OSError:
        return []
    lines = []
    for line in raw.split(b"\n"):
        text = line.decode("latin-1").strip()
        if not text:
            break
        lines.append(text)
        if text.lower().startswith("elementdatafile"):
            break
    return lines


def _numbers(text: str) -> list[float]:
    try:
        return [float(v) for v in re.split(r"[\s,()]+", text) if v]
    except ValueError:
        return [math.nan]


def _check_nrrd(path: Path) -> None:
    fields = {}
    for line in _text_header(path)[1:]:
        key, sep, value = line.partition(":")
        if sep and not line.startswith("#"):
            fields[key.strip().lower()] = value.lstrip("=").strip()
    try:
        dimension = int(fields.get("dimension", "0"))
    except ValueError:
        return
    if dimension != 3:
        return  # a time series or a 2-D image: the reader's own checks say what is wrong
    if "space directions" in fields:
        vectors = re.findall(r"\(([^)]*)\)|none", fields["space directions"])
        norms = [math.sqrt(sum(v * v for v in _numbers(vec))) if vec else math.nan for vec in vectors]
        if len(norms) != 3 or not _usable(norms):
            raise _no_spacing(path, f"space directions: {fields['space directions'][:80]}")
    elif "spacings" in fields:
        if not _usable(_numbers(fields["spacings"])[:3]) or len(_numbers(fields["spacings"])) < 3:
            raise _no_spacing(path, f"spacings: {fields['spacings'][:80]}")
    else:
        raise _no_spacing(path, "neither 'spacings' nor 'space directions'")


def _meta_fields(path: Path) -> dict[str, str]:
    fields = {}
    for line in _text_header(path):
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip().lower()] = value.strip()
    return fields


def _check_metaimage(path: Path) -> None:
    fields = _meta_fields(path)
    if "elementdatafile" not in fields:
        return
    # ITK's MetaImage reader crashes the whole process (a segmentation fault, no message) on
    # an NDims that is not a positive whole number ("-1 -1 -1"), and aborts on 99.
    ndims = fields.get("ndims", "")
    if not re.fullmatch(r"[1-9]", ndims):  # 99: an abort
        raise InputError(f"cannot use {path}: its header's NDims {ndims[:40]!r} is not a number of dimensions; "
                         "check the header (a CT volume has NDims = 3)")
    spacing = fields.get("elementspacing") or fields.get("elementsize")
    if spacing is None:
        raise _no_spacing(path, "no ElementSpacing")
    if not _usable(_numbers(spacing)):
        raise _no_spacing(path, f"ElementSpacing {spacing[:80]}")
    # ITK reads a NaN origin as 0 and says only "(0 0 0)" of a NaN or all-zero direction.
    for key in ("offset", "position", "origin"):
        if key in fields and not all(math.isfinite(v) for v in _numbers(fields[key])):
            raise InputError(f"cannot use {path}: its header's origin ({key.capitalize()} {fields[key][:80]}) is not "
                             "a position in mm; check the header")
    for key in ("transformmatrix", "rotation", "orientation"):
        if key in fields:
            matrix = _numbers(fields[key])
            if not all(math.isfinite(v) for v in matrix) or not any(matrix):
                raise InputError(f"cannot use {path}: its header's axes (TransformMatrix {fields[key][:80]}) are not "
                                 "directions; check the header")


def check_metaimage_data(path: Path) -> None:
    """Raise :class:`InputError` when a MetaImage's compressed voxel data (zlib, in the file
    itself or in one data file) is damaged or cut short: decompressed once, it must end
    where the stream says and hold the voxels its header promises. Other MetaImages are
    not checked here."""
    fields = _meta_fields(path)
    if fields.get("compresseddata", "false").lower() != "true":
        return
    try:
        count = math.prod(int(v) for v in fields.get("dimsize", "").split())
        count *= int(fields.get("elementnumberofchannels", "1"))
        expected = count * _META_TYPE_BYTES[fields.get("elementtype", "").upper()]
    except (ValueError, KeyError):
        return
    name = fields.get("elementdatafile", "")
    if name.upper() == "LOCAL" and "compresseddatasize" not in fields:
        # ITK's reader then says only "Uncompress failed" and returns what memory held.
        raise InputError(f"cannot use {path}: its compressed voxel data have no CompressedDataSize, without which "
                         "ITK cannot read them; write the file again (e.g. with SimpleITK)")
    try:
        if name.upper() == "LOCAL":
            with open(path, "rb") as fh:
                raw = fh.read(_HEADER_BYTES)
                start = raw.lower().index(b"elementdatafile")
                fh.seek(raw.index(b"\n", start) + 1)
                total, complete = _inflate(fh)
        elif name and " " not in name and not name.upper().startswith("LIST"):
            with open(path.parent / name, "rb") as fh:
                total, complete = _inflate(fh)
        else:
            return
    except (OSError, ValueError):
        return  # no data file, or an odd header: the reader says what is wrong
    except zlib.error as exc:
        raise InputError(f"the compressed voxel data of {path} are damaged ({exc}); copy or export it again") from None
    if not complete or total < expected:
        raise InputError(f"the compressed voxel data of {path} are cut short ({total} of {expected} bytes); "
                         "copy or export it again")


def _inflate(fh) -> tuple[int, bool]:
    """Decompress a zlib stream from ``fh`` (discarding the output): bytes it holds, and
    whether the stream ended properly (its checksum read and right)."""
    stream = zlib.decompressobj(32 + zlib.MAX_WBITS)  # zlib or gzip, as ITK's MetaIO reads either
    total = 0
    while not stream.eof and (data := stream.unconsumed_tail or fh.read(_CHUNK)):
        total += len(stream.decompress(data, _CHUNK))  # bounded: a chunk of zeros inflates 1000-fold
    if not stream.eof:
        total += len(stream.flush())  # what zlib still holds when the input ran out with the output limit
    return total, stream.eof
