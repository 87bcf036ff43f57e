"""NIfTI, NRRD and MetaImage reading and writing through SimpleITK.

Geometry stays in ITK conventions throughout: spacing, origin and direction in
``(x, y, z)`` index order and LPS millimetres (SimpleITK converts NIfTI's RAS).
NIfTI stores geometry in float32, so a NIfTI round trip keeps geometry to about
1e-6 relative; NRRD and MetaImage keep it to double precision.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from calcinosis.atomic import write_with
from calcinosis.errors import InputError
from calcinosis.io.headers import check_header, check_metaimage_data, orientation_unknown
from calcinosis.io.hu import to_int16_hu
from calcinosis.io.integrity import check_nifti_complete, read_nifti_voxels
from calcinosis.io.native_stderr import NativeStderr
from calcinosis.paths import check_path_text
from calcinosis.volume import Volume

#: File name endings read through SimpleITK, and the ``source_format`` each gives.
ITK_FORMATS: dict[str, str] = {
    ".nii.gz": "nifti",
    ".nii": "nifti",
    ".nrrd": "nrrd",
    ".nhdr": "nrrd",
    ".mha": "metaimage",
    ".mhd": "metaimage",
}
#: Endings the writers accept (``.mhd``/``.nhdr`` are left out: their detached data
#: file would not be renamed atomically with the header).
WRITE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")


def itk_format(path: str | os.PathLike[str]) -> str | None:
    """``source_format`` of ``path`` from its name ending, or None if not an ITK format."""
    name = Path(path).name.lower()
    for suffix, fmt in ITK_FORMATS.items():
        if name.endswith(suffix):
            return fmt
    return None


def volume_to_sitk(volume: Volume) -> sitk.Image:
    """A SimpleITK image holding ``volume.array`` with the volume's exact geometry."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.array))
    image.SetSpacing(tuple(float(s) for s in volume.spacing))
    image.SetOrigin(tuple(float(o) for o in volume.origin))
    # ITK's direction is row-major with columns = index axes, as in Volume.
    image.SetDirection(tuple(float(d) for d in np.asarray(volume.direction).ravel()))
    return image


def sitk_to_volume(
    image: sitk.Image,
    metadata: dict[str, Any] | None = None,
    *,
    source: str = "the image",
) -> Volume:
    """A :class:`Volume` (int16 HU) from a 3-D scalar SimpleITK image.

    Float images are rounded to int16. Raises :class:`InputError` when the image
    is not a 3-D scalar volume or its values cannot be HU (see
    :func:`calcinosis.io.hu.check_hu_range`).
    """
    _check_3d(image.GetDimension(), image.GetSize(), image.GetNumberOfComponentsPerPixel(), source)
    if image.GetPixelID() == sitk.sitkInt16:
        array = sitk.GetArrayFromImage(image)  # one copy, already the final type
        hu = to_int16_hu(array, source=source)
    else:
        # A view avoids a copy before the int16 conversion; ``image`` outlives it here.
        hu = to_int16_hu(sitk.GetArrayViewFromImage(image), source=source)
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    _check_geometry(direction, image.GetOrigin(), source)
    return Volume(hu, image.GetSpacing(), image.GetOrigin(), direction, dict(metadata or {}))


def _check_geometry(direction: np.ndarray, origin, source: str) -> None:
    """Refuse a sheared grid and an origin that is not a position."""
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise InputError(f"cannot use {source}: its axes are not at right angles to each other (a sheared grid); "
                         "resample it onto an orthogonal grid first")
    if not all(np.isfinite(origin)):
        raise InputError(f"cannot use {source}: its origin {origin} is not a position in mm; check the header")


def _check_3d(dimension: int, size: tuple[int, ...], components: int, source: str) -> None:
    if components != 1:
        raise InputError(
            f"cannot use {source}: it has {components} values per voxel (colour or vector image); "
            "a 3-D CT volume with one HU value per voxel is needed"
        )
    shape = " x ".join(str(s) for s in size)
    if dimension > 3:
        raise InputError(
            f"cannot use {source}: it is {dimension}-D of size {shape} (a time series?); "
            "a 3-D volume is needed: extract one time point first"
        )
    if dimension < 3 or min(size) < 2:
        raise InputError(
            f"cannot use {source}: it is a {dimension}-D image of size {shape}; a 3-D volume is needed "
            "(at least 2 voxels along each axis, not a single slice)"
        )


def read_itk_volume(path: str | os.PathLike[str]) -> Volume:
    """Read a NIfTI, NRRD or MetaImage file as an int16 HU :class:`Volume`.

    The modality is assumed to be CT (these formats do not record it). Metadata:
    ``source_format``, ``source_path`` and ``modality``; ``orientation_unknown`` (why) when
    the header names no patient axes (:func:`calcinosis.io.headers.orientation_unknown`).
    """
    path = Path(path)
    fmt = itk_format(path)
    if fmt is None:
        raise InputError(f"cannot read {path}: unknown file type; use .nii/.nii.gz/.nrrd/.nhdr/.mha/.mhd")
    check_path_text(path, "input")
    check_header(path, fmt)
    # ITK's readers (niftilib, VNL) print their complaints to descriptor 2 ("** ERROR:
    # nifti_convert_nhdr2nim: bad datatype", a matrix over eight lines): into the message instead.
    with NativeStderr() as native:
        return _read_itk(path, fmt, native)


def _read_itk(path: Path, fmt: str, native: NativeStderr) -> Volume:
    """:func:`read_itk_volume` once the header checks passed."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        with native.captured():
            reader.ReadImageInformation()
    except RuntimeError as exc:
        if fmt == "nifti":
            check_nifti_complete(path)  # a damaged file says so, rather than what ITK made of it
        raise InputError(f"cannot read {path}: {_first_line(exc)}{_said(native.text)}") from None
    size = reader.GetSize()
    dimension = reader.GetDimension()
    if dimension == 4 and size[3] == 1:
        # A 4-D NIfTI with one time point is a 3-D volume; drop the extra axis below.
        size, dimension = size[:3], 3
    _check_3d(dimension, size, reader.GetNumberOfComponents(), str(path))
    metadata: dict[str, Any] = {"modality": "CT", "source_format": fmt, "source_path": str(path)}
    why = orientation_unknown(path, fmt)
    if why is not None:
        metadata["orientation_unknown"] = why
    if fmt == "nifti":
        # The voxels in one pass with the checks of length and damage; the geometry is ITK's.
        voxels = read_nifti_voxels(path)
        if voxels is not None:
            return _nifti_volume(reader, *voxels, metadata, str(path))
        check_nifti_complete(path)  # a layout left to ITK: checked first
    try:
        with native.captured():
            image = reader.Execute()
    except RuntimeError as exc:
        # The header was read: the voxel data are what fails (ITK's MetaImage reader says only
        # "Reason: No such file or directory" for data cut short).
        raise InputError(f"cannot read the voxel data of {path} ({_first_line(exc)}{_said(native.text)}): the file "
                         "(or its data file) may be missing, truncated or damaged; copy or export it again") from None
    if image.GetDimension() == 4:
        image = image[:, :, :, 0]
    return sitk_to_volume(image, metadata, source=str(path))


def _nifti_volume(reader: sitk.ImageFileReader, array: np.ndarray, scaling, metadata, source: str) -> Volume:
    """A :class:`Volume` of NIfTI voxels read by :func:`read_nifti_voxels` with the geometry
    ITK read from the header (its first three axes): what ``reader.Execute()`` then
    :func:`sitk_to_volume` give, with the scaling applied as ITK applies it (in float)."""
    if scaling is not None:
        slope, inter = scaling
        scaled = np.empty(array.shape, np.float32)
        for k in range(array.shape[0]):  # in double, slice by slice, then float (as ITK)
            scaled[k] = array[k] * slope + inter
        array = scaled
    hu = to_int16_hu(array, source=source)
    n = reader.GetDimension()
    direction = np.asarray(reader.GetDirection(), dtype=float).reshape(n, n)[:3, :3]
    spacing, origin = reader.GetSpacing()[:3], reader.GetOrigin()[:3]
    _check_geometry(direction, origin, source)
    return Volume(hu, spacing, origin, direction, dict(metadata))


def _said(text: str) -> str:
    return f"; the reader said: {text}" if text else ""


def _first_line(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    # ITK messages start with a file/line banner; the useful part is the last line.
    return lines[-1] if lines else type(exc).__name__


def _check_write_suffix(path: Path) -> None:
    if not path.name.lower().endswith(WRITE_SUFFIXES):
        raise ValueError(f"path must end with one of {', '.join(WRITE_SUFFIXES)}, got {path.name!r}")


def _write_image(image: sitk.Image, path: Path) -> Path:
    _check_write_suffix(path)

    def write(tmp: Path) -> None:
        sitk.WriteImage(image, str(tmp), useCompression=not tmp.name.lower().endswith(".nii"))
        _check_written(tmp)

    return write_with(path, write)


def _check_written(path: Path) -> None:
    """Raise ``OSError`` when ITK left ``path`` short: on a full disk its writers print a
    warning ("wrote only 0 of N bytes") and return as if all went well."""
    try:
        if itk_format(path) == "nifti":
            check_nifti_complete(path, finite=False)  # a float image written may hold NaN
        elif itk_format(path) == "metaimage":
            check_metaimage_data(path)
        else:
            sitk.ReadImage(str(path))  # NRRD: its reader fails on data cut short
    except (InputError, RuntimeError):
        raise OSError("the file came out incomplete (is the disk full?)") from None


def write_volume(volume: Volume, path: str | os.PathLike[str]) -> Path:
    """Write ``volume`` to ``.nii.gz``, ``.nii``, ``.nrrd`` or ``.mha`` atomically.

    The array type is kept (int16 HU for volumes from :func:`read_volume`).
    Geometry is written exactly (NIfTI: to float32 precision). Returns the path.
    """
    return _write_image(volume_to_sitk(volume), Path(path))


def write_label_map(labels: np.ndarray, like: Volume, path: str | os.PathLike[str]) -> Path:
    """Write an integer label map on ``like``'s grid (same shape and geometry).

    ``labels`` is indexed ``[z, y, x]`` like ``like.array``; it is stored as uint8
    when its values fit, else uint16. Booleans are written as 0/1. Raises
    ``ValueError`` for a shape mismatch, non-integer or negative labels, or
    labels above 65535.
    """
    labels = np.asarray(labels)
    if labels.shape != like.array.shape:
        raise ValueError(f"labels shape {labels.shape} differs from the volume's {like.array.shape}")
    if labels.dtype.kind not in "biu":
        raise ValueError(f"labels must be integers or booleans, got {labels.dtype}")
    lo = int(labels.min()) if labels.size else 0
    hi = int(labels.max()) if labels.size else 0
    if lo < 0 or hi > np.iinfo(np.uint16).max:
        raise ValueError(f"labels must lie in 0..65535, got {lo}..{hi}")
    dtype = np.uint8 if hi <= np.iinfo(np.uint8).max else np.uint16
    image = sitk.GetImageFromArray(np.ascontiguousarray(labels, dtype=dtype))
    image.SetSpacing(like.spacing)
    image.SetOrigin(like.origin)
    image.SetDirection(tuple(float(d) for d in like.direction.ravel()))
    return _write_image(image, Path(path))
