"""Findings that cannot be told from something else because of how the scan was taken.

Cut by the scan's edge
    A finding that reaches the first or last slice, or the border of the image where the
    body runs on past it, is seen only in part: its size, density and place cannot be
    measured, and what lies beyond may be a bone it belongs to (the chin's jaw on the top
    slice of a chest scan). At the image border, moreover, a body wider than the field of
    view brightens the image (the truncation artefact). Excluded as ``scan_edge``: listed
    among the excluded objects, not counted. Its voxels on the edge count unless they are
    both noise (none rises ``EDGE_NOISE_SIGMA`` times the image noise over the lesion's
    background) and faint beside the lesion (none rises half its peak contrast): a whole
    deposit a few slices from the edge whose component reaches it only through a chain of
    noise voxels just over the threshold (an 8 mm, 1071 HU deposit two slices from the end of
    a 3 mm, 30 HU scan: 132 and 138 HU in muscle) is not cut; a thin bone leaving the scan (a
    styloid process, 340-375 HU on the last slice of a head CT) is, and so is a faint finding
    (a bone's partial volume of 190 HU) whose every voxel is near noise. A deposit whose
    faint end lies on the slice next to the edge and whose component reaches the edge
    through noise alone (a 3.8 mm deposit on slices 1-2 of a 3 mm scan) is whole.

Partial volume of bone on thick slices
    On slices too thick for the bone split (over ``MAX_SPLIT_SLICE_MM`` of
    :mod:`calcinosis.detect.bones`) a bone's rounded end or cortex cut obliquely
    (the dome of the humeral head) is averaged with the tissue round it, and pieces of it
    just reach the threshold apart from the bone (the bone is not split on such slices:
    :mod:`calcinosis.detect.candidates`). A finding near bone that peaks less than
    ``FRINGE_MARGIN_HU`` above the threshold cannot be told from such a piece; a deposit
    that dense is also no more than the slice's partial volume of a tiny one. Excluded as
    ``bone_partial_volume``. The same on pixels too coarse for the bone split (over
    ``MAX_SPLIT_PIXEL_MM``: :func:`~calcinosis.detect.bones.splits_bone` says no), whatever the
    slices: there the pixel averages the bone's edge
    in-plane (a real CT resampled to 3 mm voxels: single voxels of 159-161 HU by the sacrum,
    "intramuscular").

Noise on a bone's blur
    On any slices, the bone's blur within a millimetre or two of it stands a few noise SDs
    under the threshold; on thin, noisy slices noise lifts specks of a voxel or two of it
    over the threshold, apart from the bone (30 HU noise on 0.6 mm slices: up to four
    1 mm3 specks of 133-168 HU 1.0-1.2 mm from the trunk phantom's bones per scan). A finding
    within ``SPECK_BONE_DISTANCE_MM`` of bone that is both small and of low contrast (its
    flags ``small`` and ``low_contrast``: under 3 mm3, peak under 4 noise SDs above its
    background) cannot be told from such a speck; a deposit of 2 mm holds more voxels, or
    stands higher. Excluded as ``bone_blur_noise``, in the body's cavity too (beside the
    spine: 30 HU, 0.6 mm slices, seeds 15-17 of the trunk phantom).

Noise in tissue denser than muscle
    The seed rules (:func:`calcinosis.detect.candidates.detect_lesions`) measure a finding
    against the scan's soft-tissue level (muscle). An organ that contrast has enhanced (the
    liver, spleen or kidneys in the portal-venous phase: 90-200 HU) stands closer to the
    threshold than that, and its noise lifts specks of a voxel or three over it (the real
    abdominal series, 16 HU noise: five specks of 137-158 HU in 94-106 HU liver, two of them
    beside the spine, where the cavity model stops, read as intramuscular). A finding no
    larger than a point's blur (``POINT_BLUR_MAX_VOXELS``) that is of low contrast (flag
    ``low_contrast``: peak under 4 noise SDs above its background) in tissue
    ``DENSE_TISSUE_MARGIN_HU`` or more above the soft-tissue level cannot be told from such
    a speck. Excluded as ``dense_tissue_noise``, in the cavity too. In muscle and fat the
    rule does not apply: there the seed rules already measured the speck against its own
    surroundings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from calcinosis.detect.bones import splits_bone
from calcinosis.detect.dense_tissue import POINT_BLUR_MAX_VOXELS
from calcinosis.measure.lesion import Lesion

FRINGE_MARGIN_HU = 50.0
# Within this distance (mm) of bone a faint piece on thick slices may be the bone's own.
FRINGE_BONE_DISTANCE_MM = 10.0
# A finding's voxels on the scan's edge are more than noise when one rises this many times
# the image noise over its background (noise alone: once in 3 million voxels), and not faint
# beside it when one rises this share of its peak contrast.
EDGE_NOISE_SIGMA = 5.0
EDGE_CONTRAST_SHARE = 0.5
# Within this distance (mm) of bone a small, low-contrast speck may be noise on the bone's blur.
SPECK_BONE_DISTANCE_MM = 2.0
# Tissue this many HU above the scan's soft-tissue level is denser than muscle (an enhanced
# organ): there a point-sized finding of low contrast may be noise.
DENSE_TISSUE_MARGIN_HU = 25.0


def scan_limited_findings(
    lesions: Sequence[Lesion], labels: np.ndarray, offset: Sequence[int], full_shape: Sequence[int],
    body: np.ndarray, spacing_zyx, threshold_hu: float, *, hu: np.ndarray, noise_hu: float,
    boxes: Sequence | None = None, tissue_level_hu: float | None = None,
) -> dict[int, str]:
    """Lesion ids to exclude, with the reason (``scan_edge``, ``bone_partial_volume``,
    ``bone_blur_noise`` or ``dense_tissue_noise``).

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
    hu : array
        The image (HU) on the same crop.
    noise_hu : float
        The image noise (standard deviation, HU).
    boxes : sequence of slice tuples, optional
        Each label's bounding box (index = label - 1), when known; else found here.
    tissue_level_hu : float, optional
        The scan's soft-tissue level (HU); without it, no finding is ``dense_tissue_noise``.
    """
    out: dict[int, str] = {}
    if not len(lesions):
        return out
    edges = _edge_faces(labels.shape, offset, full_shape, body)
    boxes = ndi.find_objects(labels) if boxes is None else boxes
    unsplit = not splits_bone(spacing_zyx)  # slices or pixels too coarse for the bone split
    for lesion in lesions:
        box = boxes[lesion.lesion_id - 1] if lesion.lesion_id - 1 < len(boxes) else None
        if box is None:
            continue
        touched = [(axis, side) for axis, side in edges if _touches(box, axis, side, labels.shape)]
        if touched and _reaches_edge(lesion, labels, hu, box, touched, noise_hu):
            out[lesion.lesion_id] = "scan_edge"
        elif (unsplit and lesion.peak_hu < threshold_hu + FRINGE_MARGIN_HU
              and lesion.bone_distance_mm <= FRINGE_BONE_DISTANCE_MM):
            out[lesion.lesion_id] = "bone_partial_volume"
        elif {"small", "low_contrast"} <= set(lesion.flags.split(";")) \
                and lesion.bone_distance_mm <= SPECK_BONE_DISTANCE_MM:
            out[lesion.lesion_id] = "bone_blur_noise"
        elif (tissue_level_hu is not None and lesion.n_voxels <= POINT_BLUR_MAX_VOXELS
              and "low_contrast" in lesion.flags.split(";")
              and lesion.background_hu >= tissue_level_hu + DENSE_TISSUE_MARGIN_HU):
            out[lesion.lesion_id] = "dense_tissue_noise"
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


def _reaches_edge(lesion: Lesion, labels: np.ndarray, hu: np.ndarray, box, faces, noise_hu: float) -> bool:
    """Whether one of the lesion's voxels on the ``faces`` its ``box`` touches rises
    ``EDGE_NOISE_SIGMA`` times ``noise_hu`` or ``EDGE_CONTRAST_SHARE`` of its peak contrast
    over its background."""
    contrast = lesion.peak_hu - lesion.background_hu
    level = lesion.background_hu + min(EDGE_NOISE_SIGMA * noise_hu, EDGE_CONTRAST_SHARE * contrast)
    for axis, side in faces:
        face = list(box)
        index = box[axis].start if side == 0 else box[axis].stop - 1
        face[axis] = slice(index, index + 1)
        face = tuple(face)
        on_face = labels[face] == lesion.lesion_id
        if on_face.any() and float(hu[face][on_face].max()) >= level:
            return True
    return False


def _touches(box, axis: int, side: int, shape) -> bool:
    return box[axis].start == 0 if side == 0 else box[axis].stop == shape[axis]
