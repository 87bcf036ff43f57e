"""Write a :class:`Volume` as a DICOM CT Image Storage series (one file per slice).

Used to turn phantoms into DICOM for tests and to give DICOM SEG/SR outputs a
source series. Files are explicit VR little endian, written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

from calcinosis import __version__
from calcinosis.atomic import write_with
from calcinosis.volume import Volume

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
_SOP_CLASS_BY_MODALITY = {
    "CT": CT_IMAGE_STORAGE,
    "MR": "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
    "PT": "1.2.840.10008.5.1.4.1.1.128",  # PET Image Storage
}
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def _ds(value: float) -> str:
    """A DS string (at most 16 characters) as precise as DICOM allows."""
    return format_number_as_ds(float(value) + 0.0)  # + 0.0 turns -0.0 into 0.0


def _stored_values(volume: Volume, rescale_intercept: float) -> tuple[np.ndarray, int]:
    """The int stored values ``HU - intercept`` as ``(array, PixelRepresentation)``."""
    if float(rescale_intercept) != round(rescale_intercept):
        raise ValueError(f"rescale_intercept must be a whole number, got {rescale_intercept}")
    hu = volume.array
    if hu.dtype.kind == "f":
        if not np.all(np.isfinite(hu)):
            raise ValueError("volume holds NaN or infinite values; cannot write them as DICOM")
    elif hu.dtype.kind not in "iub":
        raise ValueError(f"volume array type {hu.dtype} cannot be written as DICOM")
    intercept = int(round(rescale_intercept))
    lo = int(np.floor(np.min(hu))) - intercept
    hi = int(np.ceil(np.max(hu))) - intercept
    if lo >= 0 and hi <= 65535:
        return np.dtype("<u2"), 0  # type: ignore[return-value]
    if lo >= -32768 and hi <= 32767:
        return np.dtype("<i2"), 1  # type: ignore[return-value]
    raise ValueError(
        f"HU - intercept spans {lo}..{hi}, which fits neither uint16 nor int16; "
        "choose another rescale_intercept"
    )


def write_dicom_series(
    volume: Volume,
    folder: str | os.PathLike[str],
    *,
    patient_name: str = "Phantom^Test",
    patient_id: str = "PHANTOM001",
    patient_birth_date: str = "19700101",
    patient_sex: str = "O",
    series_uid: str | None = None,
    study_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    kvp: float = 120.0,
    slice_thickness_mm: float | None = None,
    rescale_intercept: float = -1024.0,
    convolution_kernel: str = "STANDARD",
    contrast_agent: str | None = None,
    modality: str = "CT",
    study_date: str = "20000101",
    study_time: str = "120000",
    series_number: int = 1,
    series_description: str = "calcinosis phantom",
    manufacturer: str = "calcinosis",
    file_prefix: str = "IM",
) -> list[Path]:
    """Write ``volume`` as one DICOM file per slice (``z`` index) into ``folder``.

    Parameters
    ----------
    volume : Volume
        HU values (int or float, rounded) and geometry. Slice ``k`` is written at
        ``ImagePositionPatient = origin + direction[:, 2] * spacing[2] * k`` with
        ``ImageOrientationPatient = (direction[:, 0], direction[:, 1])``, so any
        oblique or flipped direction is kept. When ``direction`` is left-handed
        (third column = minus the cross product of the first two), a reader that
        sorts slices along the DICOM normal gets the slices in reverse order; every
        voxel keeps its LPS position.
    folder : path
        Created if missing; files ``{file_prefix}00001.dcm``... are (over)written atomically.
    series_uid, study_uid, frame_of_reference_uid : str, optional
        New UIDs are generated when not given. SOPInstanceUIDs derive from the
        series UID and the slice index, so a given ``series_uid`` gives the same files.
    kvp : float
        Tube voltage (KVP), kV.
    slice_thickness_mm : float, optional
        SliceThickness; the slice spacing when not given.
    rescale_intercept : float
        Whole number; stored value = HU - intercept with RescaleSlope 1, as uint16
        when all stored values fit, else int16.
    contrast_agent : str, optional
        ContrastBolusAgent; the Contrast/Bolus module is left out when None.
    modality : str
        ``"CT"`` (CT Image Storage); other values are for test inputs (``"MR"``
        gives MR Image Storage, anything else Secondary Capture) and keep the CT attributes.

    Returns
    -------
    list of Path
        The files written, in slice (``z`` index) order.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dtype, pixel_representation = _stored_values(volume, rescale_intercept)
    intercept = int(round(rescale_intercept))
    series_uid = series_uid or generate_uid()
    study_uid = study_uid or generate_uid()
    frame_of_reference_uid = frame_of_reference_uid or generate_uid(entropy_srcs=[series_uid, "frame"])
    modality = modality.upper()
    sop_class = _SOP_CLASS_BY_MODALITY.get(modality, _SECONDARY_CAPTURE)
    direction = np.asarray(volume.direction, dtype=float)
    row_cosine, column_cosine = direction[:, 0], direction[:, 1]
    normal = np.cross(row_cosine, column_cosine)
    step = direction[:, 2] * volume.spacing[2]
    origin = np.asarray(volume.origin, dtype=float)
    n_slices, rows, columns = volume.array.shape
    thickness = volume.spacing[2] if slice_thickness_mm is None else float(slice_thickness_mm)
    orientation = [_ds(v) for v in (*row_cosine, *column_cosine)]

    written: list[Path] = []
    for k in range(n_slices):
        sop_uid = generate_uid(entropy_srcs=[series_uid, "slice", str(k)])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        meta.ImplementationVersionName = f"CALCINOSIS_{__version__}"[:16]
        ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = sop_uid
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = study_date
        ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = study_time
        ds.AccessionNumber = ""
        ds.Modality = modality
        ds.Manufacturer = manufacturer
        ds.InstitutionName = ""
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = "calcinosis"
        ds.SeriesDescription = series_description
        ds.ManufacturerModelName = "calcinosis.io"
        ds.PatientName = patient_name
        ds.PatientID = patient_id
        ds.PatientBirthDate = patient_birth_date
        ds.PatientSex = patient_sex
        if contrast_agent is not None:
            ds.ContrastBolusAgent = contrast_agent
        ds.BodyPartExamined = ""
        ds.SliceThickness = _ds(thickness)
        ds.KVP = _ds(kvp)
        ds.SpacingBetweenSlices = _ds(volume.spacing[2])
        ds.SoftwareVersions = f"calcinosis {__version__}"
        ds.ConvolutionKernel = convolution_kernel
        ds.PatientPosition = "HFS"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.StudyID = "1"
        ds.SeriesNumber = int(series_number)
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = k + 1
        position = origin + step * k
        ds.ImagePositionPatient = [_ds(v) for v in position]
        ds.ImageOrientationPatient = orientation
        ds.FrameOfReferenceUID = frame_of_reference_uid
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = _ds(float(position @ normal))
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = rows
        ds.Columns = columns
        # PixelSpacing is (between rows = y, between columns = x).
        ds.PixelSpacing = [_ds(volume.spacing[1]), _ds(volume.spacing[0])]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = pixel_representation
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
        ds.RescaleIntercept = _ds(intercept)
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        plane = volume.array[k]
        if plane.dtype.kind == "f":
            plane = np.rint(plane)
        stored = (plane.astype(np.int32) - intercept).astype(dtype)
        ds.PixelData = stored.tobytes()
        path = folder / f"{file_prefix}{k + 1:05d}.dcm"
        write_with(path, lambda tmp, ds=ds: ds.save_as(tmp, enforce_file_format=True))
        written.append(path)
    return written
