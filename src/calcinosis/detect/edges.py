"""Findings that cannot be told from something else because of how the scan was taken.

Cut by the scan's edge
    A finding that reaches the first or last slice, or the border of the image where the
    body runs on past it, is seen only in part: its size, density and place cannot be
    measured, and what lies beyond may be a bone it belongs to (the chin's jaw on the top
    slice of a chest scan). At the image border, moreover, a body wider than the field of
    view brightens the image (the truncation artefact). Excluded as ``scan_edge``: listed
    among the excluded objects, not counted.

Partial volume of bone on thick slices
    On slices thicker than ``THICK_SLICE_MM`` a bone's rounded end or cortex cut obliquely
    (the dome of the humeral head) is averaged with the tissue round it, and pieces of it
    just reach the threshold apart from the bone (the bone is not split on such slices:
    :mod:`calcinosis.detect.candidates`). A finding near bone that peaks less than
    ``FRINGE_MARGIN_HU`` above the threshold cannot be told from such a piece; a deposit
    that dense is also no more than the slice's partial volume of a tiny one. Excluded as
    ``bone_partial_volume``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from calcinosis.measure.lesion import Lesion

THICK_SLICE_MM = 3.5
FRINGE_MARGIN_HU = 50.0
# Within this distance (mm) of bone a faint piece on thick slices may be the bone's own.
FRINGE_BONE_DISTANCE_MM = 10.0


def scan_limited_findings(
    lesions: Sequence[Lesion], labels: np.ndarray, offset: Sequence[int], full_shape: Sequence[int],
    body: np.ndarray, spacing_zyx, threshold_hu: float, boxes: Sequence | None = None,
) -> dict[int, str]:
    """Lesion ids to exclude, with the reason (``scan_edge`` or ``bone_partial_volume``).

    Parameters
    ----------
    lesions : sequence of Lesion
        Measured findings; ``lesion_id`` is their value in ``labels``.
    labels : array, ``[z, y, x]``
        Label map on the body crop, which starts at ``offset`` in the full image of shape
        ``full_shape``.
    body : bool array
        Body mask on the same crop.
    spacing_zyx : sequence of float
        Voxel spacing (mm).
    threshold_hu : float
        The detection threshold.
    boxes : sequence of slice tuples, optional
        Each label's bounding box (index = label - 1), when known; else found here.
    """
    out: dict[int, str] = {}
    if not len(lesions):
        return out
    edges = _edge_faces(labels.shape, offset, full_shape, body)
    boxes = ndi.find_objects(labels) if boxes is None else boxes
    thick = float(spacing_zyx[0]) > THICK_SLICE_MM
    for lesion in lesions:
        box = boxes[lesion.lesion_id - 1] if lesion.lesion_id - 1 < len(boxes) else None
        if box is None:
            continue
        if any(_touches(box, axis, side, labels.shape) for axis, side in edges):
            out[lesion.lesion_id] = "scan_edge"
        elif (thick and lesion.peak_hu < threshold_hu + FRINGE_MARGIN_HU
              and lesion.bone_distance_mm <= FRINGE_BONE_DISTANCE_MM):
            out[lesion.lesion_id] = "bone_partial_volume"
    return out


def _edge_faces(shape, offset, full_shape, body) -> list[tuple[int, int]]:
    """(axis, 0 | 1) faces of the crop that are faces of the full image, and that the body
    reaches: there the scan, not the body, ends."""
    faces = []
    for axis in range(3):
        for side in (0, 1):
            at_image_edge = offset[axis] == 0 if side == 0 else offset[axis] + shape[axis] == full_shape[axis]
            if not at_image_edge:
                continue
            index = 0 if side == 0 else shape[axis] - 1
            if np.take(body, index, axis=axis).any():
                faces.append((axis, side))
    return faces


def _touches(box, axis: int, side: int, shape) -> bool:
    return box[axis].start == 0 if side == 0 else box[axis].stop == shape[axis]
