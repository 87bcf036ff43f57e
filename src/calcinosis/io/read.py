"""One entry point that reads any supported CT input as a :class:`Volume`."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from calcinosis.threads import n_threads
from calcinosis.errors import InputError
from calcinosis.io.dicom_read import read_dicom_series, read_multiframe_file
from calcinosis.io.dicom_scan import read_header
from calcinosis.io.integrity import check_nifti_complete
from calcinosis.io.itk import itk_format, read_itk_volume
from calcinosis.volume import Volume


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
        needed); a 2-D image or a single slice; values that cannot be HU; any
        DICOM series problem listed in :func:`read_dicom_series`.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist; give a DICOM folder or a .nii/.nii.gz/.nrrd/.mha file")
    if path.is_dir():
        return read_dicom_series(path, series_uid=series_uid)
    if series_uid is not None:
        raise InputError(f"series_uid applies to DICOM folders only, but {path} is a file")
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
    raise InputError(
        f"cannot read {path}: unknown file type; give a DICOM folder or a .nii/.nii.gz/.nrrd/.nhdr/.mha/.mhd file"
    )


def _read_itk_checked(path: Path) -> Volume:
    """Read an ITK-format file, refusing a truncated NIfTI.

    ITK fills the missing part of a truncated NIfTI with zeros: the file is checked to be
    whole (:func:`check_nifti_complete`, which decompresses a ``.nii.gz`` once). With more
    than one thread the check runs beside the read (zlib and ITK release the GIL), so a
    ``.nii.gz`` costs little more than SimpleITK's own read; a failed check wins over
    whatever the read gave.
    """
    if n_threads() < 2 or not path.name.lower().endswith(".nii.gz"):
        check_nifti_complete(path)
        return read_itk_volume(path)
    with ThreadPoolExecutor(1) as pool:
        check = pool.submit(check_nifti_complete, path)
        try:
            volume = read_itk_volume(path)
        except Exception:
            check.result()  # a truncated file says so, rather than what ITK made of it
            raise
        check.result()
    return volume
