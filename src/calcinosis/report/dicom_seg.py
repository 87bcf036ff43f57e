"""DICOM Segmentation (SEG) of the deposits, referencing the source CT series.

Design choice: one segment per deposit
--------------------------------------
The SEG holds one BINARY segment per deposit: segment number = ``lesion_id``
(the value in ``lesions.nii.gz`` and the row in ``lesions.csv``), label
``"calcified deposit N"``, property category *Morphologically abnormal
structure* and type *Pathologic calcification* (SNOMED CT), the body region
as anatomic region, and the deposit's tracking UID/ID. We chose this over one
segment with labelled instances because

* DICOM has no standard way to say "instance N" inside one BINARY segment (a
  LABELMAP SEG also maps each value to its own segment), so per-deposit
  identity needs per-deposit segments anyway;
* the SR (TID 1500) refers to a region by SEG segment number: each
  measurement group then points at exactly its deposit;
* viewers (3D Slicer, OHIF) list, colour and toggle segments one by one, so a
  reader can find deposit 7 of the table.

The cost is one bit-packed frame per deposit per slice it touches (empty frames
are omitted); a few hundred small deposits stay in the tens of megabytes.

Slice order: ``analysis.labels`` is ``[z, y, x]`` in the volume's sorted slice
order, which is the order of ``metadata["dicom_files"]``; rows and columns are
those of the files (the reader does not flip in-plane), so frame ``k`` of the
label array is segmentation of source image ``k``. An enhanced (multi-frame) CT
source is one image whose frames are the slices (``metadata["dicom_frames"]``:
each slice's frame): the SEG's frames then follow the source's frame order.

Patient identifiers: unless ``keep_identifiers``, the patient module is
replaced by anonymous values (:func:`source_headers`) while Study, Series and
Frame of Reference UIDs are kept, so the SEG still files with its study.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from calcinosis import __version__, atomic
from calcinosis.errors import InputError
from calcinosis.measure.lesion import Lesion

#: What replaces the patient's name and ID in outputs written without ``keep_identifiers``.
ANONYMOUS = "ANONYMOUS"
#: Patient-module and visit attributes that identify a person (or lead to one).
IDENTIFYING_KEYWORDS = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientBirthTime", "OtherPatientIDs",
    "OtherPatientNames", "OtherPatientIDsSequence", "PatientAddress", "PatientTelephoneNumbers",
    "PatientMotherBirthName", "IssuerOfPatientID", "MedicalRecordLocator", "AccessionNumber",
    "ReferringPhysicianName", "PatientBirthName", "EthnicGroup", "PatientComments",
    # Free text, and what places or describes the patient (DICOM PS3.15's basic profile removes
    # them too): a study description held the patient's surname, and the SEG copied the
    # institution's name and address.
    "StudyDescription", "SeriesDescription", "PatientAge", "PatientWeight", "PatientSize",
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "InstitutionCodeSequence",
    "StationName", "OperatorsName", "PerformingPhysicianName", "PhysiciansOfRecord",
    "RequestingPhysician", "NameOfPhysiciansReadingStudy", "DeviceSerialNumber", "StudyID",
)
SEG_SERIES_NUMBER = 901
CATEGORY = codes.SCT.MorphologicallyAbnormalStructure
PROPERTY_TYPE = codes.SCT.PathologicCalcification


def is_dicom_input(volume) -> bool:
    """True when the volume was read from a DICOM series whose files are known."""
    meta = volume.metadata
    return meta.get("source_format") == "dicom" and bool(meta.get("dicom_files"))


# UIDs a SEG and an SR take from their source slices.
REFERENCED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID", "SOPInstanceUID", "FrameOfReferenceUID")


def source_headers(volume, *, keep_identifiers: bool = False) -> list[Dataset]:
    """Headers (no pixel data) of the source images, in the volume's slice order: one per
    slice, or one per file when the slices are frames of multi-frame files.

    Without ``keep_identifiers`` the identifying attributes are removed (name and
    ID become ``"ANONYMOUS"``; birth date etc. are emptied), only in memory. Empty SOP
    Class and Instance UIDs are taken from the file meta; other missing UIDs the SEG and
    SR must reference (``REFERENCED_UIDS``) raise :class:`InputError`.
    """
    files = volume.metadata.get("dicom_files") or ()
    if len(files) != volume.shape[0]:
        raise InputError(f"the volume has {volume.shape[0]} slices but {len(files)} DICOM files are listed; "
                         "read the series with calcinosis.io.read_volume")
    headers = []
    for path in dict.fromkeys(files):  # each file once (the frames of a multi-frame file share it)
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (OSError, pydicom.errors.InvalidDicomError) as exc:
            # The file's name only, as below: the message is a summary.json warning, and the
            # folders above a series are often named after the patient.
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise InputError(f"cannot re-read source DICOM file {Path(path).name} ({reason}); keep the input in "
                             "place while the outputs are written") from exc
        meta = getattr(ds, "file_meta", None)
        # An anonymiser may empty the dataset's own SOP UIDs and keep them in the file meta
        # (the UIDs the file is stored under): the same UIDs.
        for keyword, meta_keyword in (("SOPClassUID", "MediaStorageSOPClassUID"),
                                      ("SOPInstanceUID", "MediaStorageSOPInstanceUID")):
            if not ds.get(keyword) and meta is not None and meta.get(meta_keyword):
                setattr(ds, keyword, meta.get(meta_keyword))
        missing = [k for k in REFERENCED_UIDS if not ds.get(k)]
        if missing:
            raise InputError(f"source DICOM file {Path(path).name} has no {', '.join(missing)} (emptied by "
                             "anonymisation?): DICOM SEG and SR must reference the study, series and slices they "
                             "describe; the other outputs are complete")
        if not keep_identifiers:
            anonymize(ds)
        headers.append(ds)
    return headers


#: Attributes of the patient and study modules that stay: the UIDs the outputs file under, the
#: study's date and time (a follow-up's order) and the sex (no identifier on its own).
KEPT_PATIENT_STUDY_KEYWORDS = ("StudyInstanceUID", "StudyDate", "StudyTime", "PatientSex")
#: What was done, said in the outputs (LO: at most 64 characters).
DEIDENTIFICATION_METHOD = "calcinosis: patient/study data removed; UIDs, date, sex kept"


def anonymize(ds: Dataset) -> None:
    """Replace the identifying attributes of ``ds`` in place (UIDs are kept).

    Every attribute that highdicom copies from a source image into the SEG (and from it into
    the SR) is removed, save ``KEPT_PATIENT_STUDY_KEYWORDS``: it copies the whole patient and
    study modules (occupation, allergies, admission ID, responsible person, clinical-trial
    subject ID ... went into both files while only a list of names was removed).
    """
    for keyword in (*_copied_patient_and_study_keywords(ds), *IDENTIFYING_KEYWORDS):
        if keyword in ds and keyword not in KEPT_PATIENT_STUDY_KEYWORDS:
            delattr(ds, keyword)
    ds.PatientName = ANONYMOUS + "^"  # one-component person name (no given name)
    ds.PatientID = ANONYMOUS
    ds.PatientBirthDate = ""
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = ""  # type 2: present, empty
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = DEIDENTIFICATION_METHOD


def _copied_patient_and_study_keywords(ds: Dataset) -> list[str]:
    """Keywords of the attributes of ``ds`` that highdicom copies into a SEG or SR made from it:
    its own copier, run onto an empty probe (the same modules as the version installed)."""
    import highdicom as hd

    class _Probe(hd.SOPClass):
        def __init__(self) -> None:  # why: an empty dataset that only collects the copies
            Dataset.__init__(self)

    probe = _Probe()
    probe.copy_patient_and_study_information(ds)
    return [element.keyword for element in probe if element.keyword]


def tracking_uid(study_uid: str, frame_of_reference_uid: str, lesion: Lesion, grid_mm: float = 2.0) -> str:
    """A UID for ``lesion`` that is the same for the same deposit within a study.

    Derived from the Study and Frame of Reference UIDs and the deposit's LPS
    centroid rounded to ``grid_mm`` (a 2.25 UUID-derived UID): analysing the same
    series again, with any settings, gives the same UID to a deposit whose
    centroid stays within the same grid cell.
    """
    cell = tuple(round(float(v) / grid_mm) for v in (lesion.x_mm, lesion.y_mm, lesion.z_mm))
    key = f"{study_uid}|{frame_of_reference_uid}|{cell}".encode()
    return "2.25." + str(int(hashlib.sha256(key).hexdigest()[:32], 16))


def tracking_uids(volume, lesions: Sequence[Lesion]) -> dict[int, str]:
    """Tracking UID per lesion id; two deposits in one grid cell get the lesion id mixed in."""
    meta = volume.metadata
    study = str(meta.get("study_uid") or "")
    frame = str(meta.get("frame_of_reference_uid") or "")
    out: dict[int, str] = {}
    seen: set[str] = set()
    for lesion in lesions:
        uid = tracking_uid(study, frame, lesion)
        if uid in seen:  # why: tracking UIDs must be unique within the report
            key = f"{uid}|{lesion.lesion_id}".encode()
            uid = "2.25." + str(int(hashlib.sha256(key).hexdigest()[:32], 16))
        seen.add(uid)
        out[lesion.lesion_id] = uid
    return out


#: SNOMED CT codes (pydicom's code dictionary) of the body-region names of ``lesions.csv``.
REGION_CODES = {
    "head_neck": codes.SCT.HeadAndNeck, "chest": codes.SCT.Chest, "abdomen": codes.SCT.Abdomen,
    "pelvis": codes.SCT.Pelvis, "back": codes.SCT.Back, "shoulder": codes.SCT.Shoulder,
    "upper_arm": codes.SCT.UpperArm, "elbow": codes.SCT.ElbowJoint, "forearm": codes.SCT.Forearm,
    "wrist_hand": codes.SCT.Hand, "hip_gluteal": codes.SCT.Buttock, "thigh": codes.SCT.Thigh,
    "knee": codes.SCT.Knee, "leg": codes.SCT.LowerLeg, "ankle_foot": codes.SCT.Foot,
}


def region_code(region: str):
    """SNOMED CT code of a body-region name, or None (``unknown`` and unmapped names)."""
    return REGION_CODES.get(region)


def build_segmentation(volume, labels: np.ndarray, lesions: Sequence[Lesion], *,
                       keep_identifiers: bool = False, sources: Sequence[Dataset] | None = None):
    """A ``highdicom.seg.Segmentation`` with one segment per lesion (see module docstring).

    Parameters
    ----------
    volume : Volume
        The analysed CT, read from DICOM (``metadata["dicom_files"]`` in slice order).
    labels : ndarray of uint16, [z, y, x]
        Label map on the volume's grid; value = ``lesion_id``.
    lesions : sequence of Lesion
        Lesions 1..N in label order.
    sources : sequence of Dataset, optional
        Source headers as from :func:`source_headers` (read when not given).
    """
    import highdicom as hd

    if labels.shape != volume.shape:
        raise ValueError(f"labels shape {labels.shape} differs from the volume's {volume.shape}")
    if sources is None:
        sources = source_headers(volume, keep_identifiers=keep_identifiers)
    ids = [lesion.lesion_id for lesion in lesions]
    if ids != list(range(1, len(ids) + 1)):
        raise ValueError("lesion ids must be 1..N in order to be SEG segment numbers")
    uids = tracking_uids(volume, lesions)
    descriptions = []
    for lesion in lesions:
        region = region_code(lesion.region)
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=lesion.lesion_id,
            segment_label=f"calcified deposit {lesion.lesion_id}",
            segmented_property_category=CATEGORY,
            segmented_property_type=PROPERTY_TYPE,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm_identification(),
            tracking_uid=uids[lesion.lesion_id],
            tracking_id=f"lesion-{lesion.lesion_id}",
            anatomic_regions=[region] if region is not None else None,
        ))
    pixels = labels.astype(np.uint16, copy=False)
    frames = volume.metadata.get("dicom_frames")
    if frames is not None:
        pixels = _in_frame_order(pixels, frames, sources)
    if not descriptions:
        raise ValueError("no lesions: a SEG needs at least one segment")
    if int(pixels.max()) > len(descriptions):
        raise ValueError("labels hold values without a lesion")
    return hd.seg.Segmentation(
        source_images=list(sources),
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="calcinosis",
        manufacturer_model_name="calcinosis",
        software_versions=__version__,
        device_serial_number="0",
        series_description="calcinosis deposits",
        content_label="DEPOSITS",
        content_description="Calcified soft-tissue deposits found by calcinosis",
    )


def _in_frame_order(pixels: np.ndarray, frames: Sequence[int | None], sources: Sequence[Dataset]) -> np.ndarray:
    """The label slices as the frames of one multi-frame source image: slice ``z`` at frame
    ``frames[z]``; frames that are no slice (a localizer) stay empty."""
    if len(sources) != 1 or any(f is None for f in frames):
        raise InputError("the series is split over several multi-frame files (or mixes them with single-frame "
                         "files): a DICOM SEG references one multi-frame source; the other outputs are complete")
    n = int(sources[0].get("NumberOfFrames", 1) or 1)
    out = np.zeros((n,) + pixels.shape[1:], pixels.dtype)
    out[np.asarray(frames, dtype=np.int64)] = pixels
    return out


def algorithm_identification():
    import highdicom as hd

    return hd.AlgorithmIdentificationSequence(
        name="calcinosis", version=__version__, family=codes.cid7162.HistogramAnalysis,
    )


def write_seg(seg, path: str | os.PathLike[str]) -> Path:
    """Write ``seg`` atomically to ``path``."""
    return atomic.write_with(path, lambda tmp: seg.save_as(tmp))
