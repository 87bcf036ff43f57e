"""Enhanced (multi-frame) CT: one file holding every slice as a frame.

Enhanced CT Image Storage and its Legacy Converted form (which scanners and PACS export
more and more) keep each frame's position, orientation, pixel spacing and rescale in
functional groups: per frame (``PerFrameFunctionalGroupsSequence``) or shared by all
(``SharedFunctionalGroupsSequence``), the per-frame value first. Each frame becomes one
:class:`~calcinosis.io.dicom_scan.SliceHeader` with its ``frame`` index, so that the
series checks (equal spacing, no gaps, one orientation, no shear) and the sorting along
the slice normal are those of a series of single-frame files.

Where the facts a report shows (kVp, slice thickness, kernel) are not at the top level,
they are taken from the functional groups too (CT X-Ray Details, Pixel Measures, CT
Reconstruction), or from highdicom's Unassigned Shared Converted Attributes of a legacy
conversion.
"""

from __future__ import annotations

from dataclasses import replace

from pydicom.dataset import Dataset

from calcinosis.errors import InputError
from calcinosis.io.dicom_scan import SliceHeader, as_list, floats_or_none

#: SOP classes whose frames are slices of one CT volume.
ENHANCED_CT_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.2": "Legacy Converted Enhanced CT Image Storage",
}


def frame_headers(header: SliceHeader, ds: Dataset) -> list[SliceHeader]:
    """One :class:`SliceHeader` per frame of the multi-frame file ``header`` (``ds``: its
    header, pixel data not needed), in the file's frame order; frames marked LOCALIZER are
    left out. Raises :class:`InputError` when the frames cannot be placed in space."""
    n = header.n_frames
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    if per_frame is None or len(per_frame) != n:
        raise InputError(
            f"{header.path} holds {n} frames without a position for each (no per-frame functional groups); "
            "export the series as one file per slice or convert it to NIfTI"
        )
    out = []
    for k, groups in enumerate(per_frame):
        frame_type = [str(v).upper() for v in as_list(_value(groups, shared, "CTImageFrameTypeSequence", "FrameType"))]
        if "LOCALIZER" in frame_type:
            continue
        position = _floats(groups, shared, "PlanePositionSequence", "ImagePositionPatient", 3)
        orientation = _floats(groups, shared, "PlaneOrientationSequence", "ImageOrientationPatient", 6)
        spacing = _floats(groups, shared, "PixelMeasuresSequence", "PixelSpacing", 2)
        slope = _number(_value(groups, shared, "PixelValueTransformationSequence", "RescaleSlope"), header.slope)
        intercept = _number(_value(groups, shared, "PixelValueTransformationSequence", "RescaleIntercept"),
                            header.intercept)
        out.append(replace(header, frame=k, n_frames=1, position=position, orientation=orientation,
                           pixel_spacing=spacing, slope=slope, intercept=intercept))
    return out


def group_value(ds: Dataset, keyword: str) -> object | None:
    """``keyword``'s value at the top level of ``ds``, else in an item of the shared, then the
    first frame's functional groups (one level of sequences down, as CT X-Ray Details holds
    KVP), else in a legacy conversion's unassigned converted attributes; None when absent."""
    value = ds.get(keyword)
    if value not in (None, ""):
        return value
    for outer in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        seq = ds.get(outer)
        if not seq:
            continue
        for element in seq[0]:
            if element.VR != "SQ":
                continue
            for item in element.value:
                value = item.get(keyword)
                if value not in (None, ""):
                    return value
    return None


def _value(groups: Dataset, shared: Dataset | None, sequence: str, keyword: str) -> object | None:
    """``keyword`` in the first item of functional group ``sequence``: the frame's, else the
    shared one."""
    for source in (groups, shared):
        if source is None:
            continue
        seq = source.get(sequence)
        if seq and keyword in seq[0]:
            return seq[0].get(keyword)
    return None


def _floats(groups: Dataset, shared: Dataset | None, sequence: str, keyword: str, n: int) -> tuple[float, ...] | None:
    holder = Dataset()
    value = _value(groups, shared, sequence, keyword)
    if value is None:
        return None
    setattr(holder, keyword, value)
    return floats_or_none(holder, keyword, n)


def _number(value: object, default: float) -> float:
    try:
        return float(value) if value not in (None, "") else default  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
