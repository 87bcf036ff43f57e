"""One entry point that reads any supported CT input as a :class:`Volume`."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from calcinosis.threads import n_threads
from calcinosis.errors import InputError
from calcinosis.io.dicom_read import read_dicom_series, read_multiframe_file
from calcinosis.io.dicom_scan import is_dicomdir, read_header
from calcinosis.io.headers import check_metaimage_data
from calcinosis.io.itk import itk_format, read_itk_volume
from calcinosis.paths import check_path_text
from calcinosis.volume import Volume

#: A CT, even one cropped round a single deposit, is at least this wide in-plane (mm); a
#: body's CT with its spacing written in metres is under a millimetre across.
MIN_FIELD_MM = 4.0
#: Voxels larger than this (mm) in-plane, or slices further apart, cannot show a deposit:
#: a header's spacing in the wrong units (or a thumbnail) rather than a CT to analyse.
MAX_PIXEL_MM = 10.0
MAX_SLICE_MM = 50.0
#: Voxels finer than this (mm) along any axis are no clinical CT's (pixels from 0.2 mm, slices
#: from 0.5 mm): a spacing in the wrong units, or one axis's written as 0; the analysis's
#: millimetre-sized kernels would span thousands of such voxels.
MIN_SPACING_MM = 0.05


def read_volume(path: str | os.PathLike[str], *, series_uid: str | None = None) -> Volume:
    """Read a CT volume in HU from a file or a DICOM folder.

    Parameters
    ----------
    path : path
        A NIfTI (``.nii``, ``.nii.gz``), NRRD (``.nrrd``, ``.nhdr``) or MetaImage
        (``.mha``, ``.mhd``) file, read through SimpleITK; a folder holding a
        DICOM series (searched recursively, see :func:`read_dicom_series`); or an
        enhanced (multi-frame) DICOM CT file.
    series_uid : str, optional
        For DICOM folders: the SeriesInstanceUID to read (default: the CT series
        with the most slices).

    Returns
    -------
    Volume
        int16 HU array ``[z, y, x]``; spacing, origin and direction in ITK
        ``(x, y, z)`` order, LPS mm. Float images with plausible HU are rounded.

    Raises
    ------
    InputError
        Missing path; unknown file type; a single-frame DICOM file (a whole series is
        needed); a 2-D image or a single slice; values that cannot be HU; a spacing
        that cannot be a CT's (:func:`check_geometry`); any DICOM series problem listed
        in :func:`read_dicom_series`.
    """
    path = Path(path)
    check_path_text(path, "input")
    volume = _read(path, series_uid)
    check_geometry(volume, str(path))
    return volume


def check_geometry(volume: Volume, source: str) -> None:
    """Raise :class:`InputError` when the voxel spacing cannot be a CT's: a field of view
    under ``MIN_FIELD_MM`` in-plane, a spacing under ``MIN_SPACING_MM`` along any axis, pixels
    over ``MAX_PIXEL_MM`` or slices over ``MAX_SLICE_MM`` apart (a header written in metres or
    micrometres, or a thumbnail)."""
    sx, sy, sz = volume.spacing
    _, ny, nx = volume.shape
    field = min(nx * sx, ny * sy)
    if field < MIN_FIELD_MM:
        raise InputError(
            f"cannot use {source}: it is {field:.3g} mm across ({nx} x {ny} pixels of {sx:.3g} x {sy:.3g} mm), "
            "too small for a CT; check the pixel spacing in the header (its units?)")
    if min(sx, sy, sz) < MIN_SPACING_MM:
        raise InputError(
            f"cannot use {source}: voxels of {sx:.3g} x {sy:.3g} x {sz:.3g} mm are finer than any CT's (at least "
            f"{MIN_SPACING_MM:g} mm along each axis); check the spacing in the header (its units?)")
    if max(sx, sy) > MAX_PIXEL_MM or sz > MAX_SLICE_MM:
        raise InputError(
            f"cannot use {source}: voxels of {sx:.3g} x {sy:.3g} x {sz:.3g} mm are too coarse to show a "
            f"deposit (at most {MAX_PIXEL_MM:g} mm in-plane and {MAX_SLICE_MM:g} mm between slices); "
            "check the spacing in the header (its units?)")


def _read(path: Path, series_uid: str | None) -> Volume:
    """:func:`read_volume` before the geometry check."""
    if not path.exists():
        raise InputError(f"{path} does not exist; give a DICOM folder or a .nii/.nii.gz/.nrrd/.mha file")
    if path.is_dir():
        return read_dicom_series(path, series_uid=series_uid)
    if not path.is_file():
        raise InputError(f"{path} is not a regular file (a named pipe, socket or device); give a DICOM folder "
                         "or a .nii/.nii.gz/.nrrd/.mha file")
    if series_uid is not None:
        raise InputError(f"series_uid applies to DICOM folders only, but {path} is a file")
    try:
        open(path, "rb").close()  # the readers below meet an unreadable file with a bug's exit or "unknown type"
    except OSError as exc:
        raise InputError(f"cannot read {path} ({exc.strerror or type(exc).__name__}); check its permissions") from None
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty (0 bytes): copy or export it again")
    if itk_format(path) is not None:
        return _read_itk_checked(path)
    multiframe = read_multiframe_file(path)
    if multiframe is not None:
        return multiframe
    if read_header(path) is not None:
        raise InputError(
            f"{path} is a single DICOM file (one slice); a 3-D volume is needed: "
            "give the folder that holds the whole series"
        )
    if is_dicomdir(path):
        raise InputError(f"{path} is a DICOMDIR (the index of a CD or an export), not an image: give the folder that "
                         f"holds the series ({path.parent}, or the folder of the series within it)")
    raise InputError(
        f"cannot read {path}: unknown file type; give a DICOM folder or a .nii/.nii.gz/.nrrd/.nhdr/.mha/.mhd file"
    )


def _read_itk_checked(path: Path) -> Volume:
    """Read an ITK-format file, refusing a truncated or damaged one.

    ITK fills the missing or damaged part of a NIfTI, and of a compressed MetaImage, with
    zeros. A NIfTI's voxels are read here in one pass that checks them
    (:func:`calcinosis.io.itk.read_itk_volume`); a MetaImage is checked by
    :func:`check_metaimage_data` (which decompresses it once), beside the read when there
    is more than one thread (zlib and ITK release the GIL), so a compressed file costs little
    more than SimpleITK's own read; a failed check wins over whatever the read gave. (NRRD:
    ITK's reader refuses a damaged file itself.)
    """
    if itk_format(path) != "metaimage":
        return read_itk_volume(path)
    if n_threads() < 2:
        check_metaimage_data(path)
        return read_itk_volume(path)
    with ThreadPoolExecutor(1) as pool:
        checked = pool.submit(check_metaimage_data, path)
        try:
            volume = read_itk_volume(path)
        except Exception:
            checked.result()  # a damaged file says so, rather than what ITK made of it
            raise
        checked.result()
    return volume
