"""DICOM SR (TID 1500 Measurement Report) of the deposits, referencing the SEG.

One *Volumetric ROI measurements* group (TID 1411) per deposit, each pointing at
its SEG segment (segment number = ``lesion_id``) and holding

* the tracking identifier: UID stable for the same deposit within a study
  (:func:`calcinosis.report.dicom_seg.tracking_uid`) and the human id
  ``lesion-N``, both also on the SEG segment;
* finding type *Pathologic calcification*; finding sites: the body region
  (when known) and the tissue compartment, with laterality when left or right;
* measurements: volume (mm3), hydroxyapatite-equivalent mass (mg, coded as
  DCM *Calcium Mass*), Agatston score (DCM *Calcium score*, method *Agatston
  scoring method*), peak and mean attenuation (HU, derivation maximum / mean)
  and maximum diameter (mm).

The document is built with highdicom, whose constructors check the template
(required items, value types, relationships); writing fails rather than
produce an invalid SR. Patient identifiers follow the SEG's evidence headers
(anonymous unless ``keep_identifiers``).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from calcinosis import __version__, atomic
from calcinosis.measure.lesion import Lesion
from calcinosis.report.dicom_seg import region_code, tracking_uids

SR_SERIES_NUMBER = 902
MILLIGRAM = Code("mg", "UCUM", "milligram")
MILLIMETER = Code("mm", "UCUM", "millimeter")
NO_UNITS = Code("1", "UCUM", "no units")
FINDING_TYPE = codes.SCT.PathologicCalcification
#: Tissue compartment -> SNOMED CT site. juxta_osseous deposits lie in soft tissue next to bone.
COMPARTMENT_CODES = {
    "cutaneous": codes.SCT.Skin, "subcutaneous": codes.SCT.SubcutaneousTissue,
    "intramuscular": codes.SCT.SkeletalMuscle, "juxta_osseous": codes.SCT.SoftTissue,
    "vascular": codes.SCT.BloodVessel, "visceral": codes.SCT.Organ,
}
LATERALITY_CODES = {"left": codes.SCT.Left, "right": codes.SCT.Right}


def _uid(key: str) -> str:
    """A deterministic 2.25 UID from ``key``."""
    return "2.25." + str(int(hashlib.sha256(key.encode()).hexdigest()[:32], 16))


def _device_uid() -> str:
    return _uid("calcinosis device")


def finding_sites(lesion: Lesion) -> list:
    """Region (when known) and compartment of ``lesion`` as TID 1419 finding sites."""
    import highdicom as hd

    laterality = LATERALITY_CODES.get(lesion.side)
    sites = []
    region = region_code(lesion.region)
    if region is not None:
        sites.append(hd.sr.FindingSite(region, laterality=laterality))
    compartment = COMPARTMENT_CODES.get(lesion.compartment)
    if compartment is not None:
        sites.append(hd.sr.FindingSite(compartment, laterality=laterality))
    return sites


def lesion_measurements(lesion: Lesion) -> list:
    """The TID 300 measurements of one deposit (values as in ``lesions.csv``)."""
    import highdicom as hd

    values = [
        (codes.SCT.Volume, lesion.volume_mm3, codes.UCUM.CubicMillimeter, {}),
        (codes.DCM.CalciumMass, lesion.mass_mg, MILLIGRAM, {}),
        (codes.DCM.CalciumScore, lesion.agatston, NO_UNITS, {"method": codes.DCM.AgatstonScoringMethod}),
        (codes.DCM.AttenuationCoefficient, lesion.peak_hu, codes.UCUM.HounsfieldUnit,
         {"derivation": codes.SCT.Maximum}),
        (codes.DCM.AttenuationCoefficient, lesion.mean_hu, codes.UCUM.HounsfieldUnit,
         {"derivation": codes.SCT.Mean}),
        (codes.SCT.Diameter, lesion.max_diameter_mm, MILLIMETER, {"derivation": codes.SCT.Maximum}),
    ]
    return [hd.sr.Measurement(name=name, value=float(value), unit=unit, **extra)
            for name, value, unit, extra in values if math.isfinite(value)]  # NaN: not measured


def build_measurement_report(volume, lesions: Sequence[Lesion], seg: Dataset | None,
                             sources: Sequence[Dataset]):
    """A ``highdicom.sr.Comprehensive3DSR`` holding a TID 1500 report of ``lesions``.

    Parameters
    ----------
    volume : Volume
        The analysed CT (its study and frame-of-reference UIDs seed the tracking UIDs).
    lesions : sequence of Lesion
    seg : Dataset or None
        The SEG from :func:`calcinosis.report.dicom_seg.build_segmentation`; None
        only when there are no lesions: the report then holds one TID 1501 group
        saying *pathologic calcification: absent*.
    sources : sequence of Dataset
        The source CT headers the SEG was built from (same identifier handling).
    """
    import highdicom as hd

    if lesions and seg is None:
        raise ValueError("a SEG is needed to report lesions")
    uids = tracking_uids(volume, lesions)
    algorithm = hd.sr.AlgorithmIdentification(name="calcinosis", version=__version__)
    groups = []
    for lesion in lesions:
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=uids[lesion.lesion_id],
                                                         identifier=f"lesion-{lesion.lesion_id}"),
            referenced_segment=_referenced_segment(seg, lesion.lesion_id),
            finding_type=FINDING_TYPE,
            algorithm_id=algorithm,
            finding_sites=finding_sites(lesion) or None,
            measurements=lesion_measurements(lesion),
        ))
    if not groups:
        # why: TID 1500 needs a measurement group; a negative result is worth filing too
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=_uid(f"{volume.metadata.get('study_uid')}|{volume.metadata.get('series_uid')}|none"),
                identifier="no deposits"),
            finding_type=FINDING_TYPE,
            algorithm_id=algorithm,
            qualitative_evaluations=[hd.sr.QualitativeEvaluation(FINDING_TYPE, codes.SCT.Absent)],
        ))
    observer = hd.sr.ObserverContext(
        observer_type=codes.cid270.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=_device_uid(), name="calcinosis", manufacturer_name="calcinosis",
            model_name=f"calcinosis {__version__}"),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=groups,
    )
    return hd.sr.Comprehensive3DSR(
        evidence=[seg, *sources] if seg is not None else list(sources),
        content=report,
        series_instance_uid=hd.UID(),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="calcinosis",
        is_complete=True,
        series_description="calcinosis measurements",
    )


def write_sr(sr, path: str | os.PathLike[str]) -> Path:
    """Write ``sr`` atomically to ``path``."""
    return atomic.write_with(path, lambda tmp: sr.save_as(tmp))


def _referenced_segment(seg: Dataset, number: int):
    """``highdicom.sr.ReferencedSegment.from_segmentation(seg, number)``, also for a SEG of one
    segment: highdicom writes that segment's identification once, in the shared functional
    groups, and its ``from_segmentation`` (0.28) looks for it in each frame's groups only
    (an AttributeError, and no SR for any DICOM study with one deposit). Then every frame is
    the segment's, and its source images are those the frames derive from."""
    import highdicom as hd

    shared = seg.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in seg else None
    if shared is None or "SegmentIdentificationSequence" not in shared:
        return hd.sr.ReferencedSegment.from_segmentation(seg, number)
    sources: dict[str, hd.sr.SourceImageForSegmentation] = {}
    for frame in seg.PerFrameFunctionalGroupsSequence:
        for derivation in frame.get("DerivationImageSequence", []):
            for image in derivation.get("SourceImageSequence", []):
                sources.setdefault(image.ReferencedSOPInstanceUID, hd.sr.SourceImageForSegmentation(
                    referenced_sop_class_uid=image.ReferencedSOPClassUID,
                    referenced_sop_instance_uid=image.ReferencedSOPInstanceUID))
    return hd.sr.ReferencedSegment(sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID,
                                   segment_number=number, source_images=list(sources.values()))
