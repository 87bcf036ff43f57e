"""One entry point that reads any supported CT input as a :class:`Volume`."""

from __future__ import annotations

import os
from pathlib import Path

from calcinosis.errors import InputError
from calcinosis.io.dicom_read import read_dicom_series
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
        (``.mha``, ``.mhd``) file, read through SimpleITK; or a folder holding a
        DICOM series (searched recursively, see :func:`read_dicom_series`).
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
        Missing path; unknown file type; a single DICOM file (a whole series is
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
    if itk_format(path) is not None:
        # ITK fills the missing part of a truncated NIfTI with zeros: refuse it instead.
        check_nifti_complete(path)
        return read_itk_volume(path)
    if read_header(path) is not None:
        raise InputError(
            f"{path} is a single DICOM file (one slice); a 3-D volume is needed: "
            "give the folder that holds the whole series"
        )
    raise InputError(
        f"cannot read {path}: unknown file type; give a DICOM folder or a .nii/.nii.gz/.nrrd/.nhdr/.mha/.mhd file"
    )
