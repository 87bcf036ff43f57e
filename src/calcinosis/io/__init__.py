"""CT input and output: read any supported input as a :class:`~calcinosis.volume.Volume`.

Readers
-------
:func:`read_volume` reads NIfTI, NRRD and MetaImage files (SimpleITK) and DICOM
series folders (pydicom: one file per slice, or an enhanced multi-frame CT file).
Every volume is int16 HU indexed ``[z, y, x]`` with
spacing/origin/direction in ITK ``(x, y, z)`` order and LPS mm.

Volume metadata keys (present only when known):

* all inputs: ``modality`` (``"CT"`` assumed for non-DICOM files),
  ``source_format`` (``"dicom"``, ``"nifti"``, ``"nrrd"``, ``"metaimage"``), ``source_path``;
* NIfTI and NRRD: ``orientation_unknown`` (why), when the header names no patient axes (a
  NIfTI with neither qform nor sform, a NRRD without an anatomical space): ITK then takes
  the axes as LPS, and the analysis warns that the sides are a guess;
* DICOM pixels marked by PixelPaddingValue (outside the reconstruction circle) read as
  -1024 HU (:mod:`calcinosis.io.padding`);
* DICOM: ``kvp`` (kV), ``slice_thickness_mm``, ``convolution_kernel``,
  ``contrast_agent`` (ContrastBolusAgent or None), ``series_uid``, ``study_uid``,
  ``frame_of_reference_uid``, ``study_date``, ``manufacturer``,
  ``series_description``, ``dicom_files`` and ``sop_instance_uids`` (in sorted
  slice order), ``dicom_frames`` (each slice's frame in its file, when the series
  is an enhanced multi-frame CT), ``other_ct_series`` (when the folder held several CT
  series and the one with the most slices was read: the others' ``series_uid``,
  ``slices``, ``description``), and ``identifiers`` = ``{"patient_name",
  "patient_id", "patient_birth_date"}``, kept apart so that outputs can drop it.

Writers
-------
:func:`write_volume`, :func:`write_label_map` (NIfTI/NRRD/MetaImage) and
:func:`write_dicom_series` (CT Image Storage, one file per slice) write atomically.
"""

from calcinosis.io.dicom_read import read_dicom_series, read_dicom_slice_hu
from calcinosis.io.dicom_scan import DicomSeriesInfo, list_dicom_series
from calcinosis.io.dicom_write import write_dicom_series
from calcinosis.io.itk import sitk_to_volume, volume_to_sitk, write_label_map, write_volume
from calcinosis.io.read import read_volume

__all__ = [
    "DicomSeriesInfo",
    "list_dicom_series",
    "read_dicom_series",
    "read_dicom_slice_hu",
    "read_volume",
    "sitk_to_volume",
    "volume_to_sitk",
    "write_dicom_series",
    "write_label_map",
    "write_volume",
]
