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
from calcinosis.io.dicom_scan import SliceHeader, as_list, float_or, floats_or_none

def frame_headers(header: SliceHeader, ds: Dataset) -> list[SliceHeader]:
    """One :class:`SliceHeader` per frame of the multi-frame file ``header`` (``ds``: its
    header, pixel data not needed), in the file's frame order; frames marked LOCALIZER are
    left out. Raises :class:`InputError` when the frames cannot be placed in space."""
    n = header.n_frames
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    if per_frame is not None and len(per_frame) != n:
        raise InputError(f"{header.path} says it holds {n} frames (NumberOfFrames) but has per-frame functional "
                         f"groups for {len(per_frame)}: the file is damaged; export the series again")
    if per_frame is None:
        raise InputError(
            f"{header.path} holds {n} frames without a position for each (no per-frame functional groups); "
            "export the series as one file per slice or convert it to NIfTI"
        )
    out = []
    for k, groups in enumerate(per_frame):
        kind = _item(groups, shared, "CTImageFrameTypeSequence", "FrameType")
        if kind is not None and "LOCALIZER" in [str(v).upper() for v in as_list(kind.FrameType)]:
            continue
        rescale = _item(groups, shared, "PixelValueTransformationSequence", "RescaleSlope")
        offset = _item(groups, shared, "PixelValueTransformationSequence", "RescaleIntercept")
        out.append(replace(
            header, frame=k, n_frames=1,
            position=_floats(groups, shared, "PlanePositionSequence", "ImagePositionPatient", 3),
            orientation=_floats(groups, shared, "PlaneOrientationSequence", "ImageOrientationPatient", 6),
            pixel_spacing=_floats(groups, shared, "PixelMeasuresSequence", "PixelSpacing", 2),
            slope=header.slope if rescale is None else float_or(rescale, "RescaleSlope", header.slope),
            intercept=header.intercept if offset is None else float_or(offset, "RescaleIntercept", header.intercept)))
    return out


def group_item(ds: Dataset, keyword: str) -> Dataset:
    """The data set that holds ``keyword``: ``ds`` itself when it has it at the top level, else
    the item of the shared, then the first frame's functional groups that has it (one level of
    sequences down, as CT X-Ray Details holds KVP; a legacy conversion's unassigned converted
    attributes among them); ``ds`` when none has it (the keyword then reads as absent)."""
    if ds.get(keyword) not in (None, ""):
        return ds
    for outer in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        seq = ds.get(outer)
        if not seq:
            continue
        for element in seq[0]:
            if element.VR != "SQ":
                continue
            for item in element.value:
                if item.get(keyword) not in (None, ""):
                    return item
    return ds


def _item(groups: Dataset, shared: Dataset | None, sequence: str, keyword: str) -> Dataset | None:
    """The first item of functional group ``sequence`` that holds ``keyword``: the frame's,
    else the shared one; None when neither does."""
    for source in (groups, shared):
        if source is None:
            continue
        seq = source.get(sequence)
        if seq and keyword in seq[0]:
            return seq[0]
    return None


def _floats(groups: Dataset, shared: Dataset | None, sequence: str, keyword: str, n: int) -> tuple[float, ...] | None:
    item = _item(groups, shared, sequence, keyword)
    return None if item is None else floats_or_none(item, keyword, n)
