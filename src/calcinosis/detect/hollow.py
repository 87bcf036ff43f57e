"""Deposits joined at the threshold to a small piece of bone.

A rib or a process cut across by the slices is a small dense object with a marrow
space: hollow (:func:`calcinosis.detect.candidates.is_hollow`), so bone. A deposit
a millimetre from it joins it at the threshold through the partial-volume blur of
the gap (on thick slices, through the next slice) and would be rejected with it.

Such a deposit is a basin of the smoothed intensity of its own, split from the bone
piece at a valley (:func:`calcinosis.anatomy.valley.valley_split`). The cortex of the
bone piece splits into basins too (its noise and partial volume make shallow
valleys along it); those are arcs of one shell at the bone's density. A deposit is
taken only when its piece is solid (not hollow), what is left of the object is
still a hollow bone piece, and the deposit's peak differs from everything left by
more than ``h_hu``: denser than the bone it touches, or fainter than it while standing
outside the bone piece's outline (a deposit of a few hundred HU next to a rib: on 3 mm
slices it joins the rib at the threshold). Either way not a part of that bone.
"""

from __future__ import annotations

import cc3d
import numpy as np
from scipy import ndimage as ndi

from calcinosis.anatomy.basins import saddle_between
from calcinosis.anatomy.bone import THIN_SLICE_MM, is_speck
from calcinosis.anatomy.valley import (INT_H_MAXIMA_RANGE, WEAK_H_FRACTION, ValleyMarkers, label_26, valley_image,
                                       valley_markers, valley_split)
from calcinosis.anatomy.disk import core_in_plane, dilate_disk, erode_disk
from calcinosis.anatomy.morphology import grow
from calcinosis.anatomy.raw_peak import raw_peak_pieces

# The in-plane 4-neighbourhood as a 3-D structure: components never cross slices.
_IN_PLANE_4 = np.zeros((3, 3, 3), bool)
_IN_PLANE_4[1] = [[False, True, False], [True, True, True], [False, True, False]]


def fill_holes_in_plane_box(mask: np.ndarray) -> np.ndarray:
    """:func:`calcinosis.anatomy.morphology.fill_holes_in_plane` for a small box: the same
    holes (4-connected background components of a slice that do not touch its border),
    found by one labelling of every slice's background at once, the box's rim as the border
    (a loop over the slices costs more than the work on a deposit's box)."""
    background = np.pad(~np.asarray(mask, bool), ((0, 0), (1, 1), (1, 1)), constant_values=True)
    labels, n = ndi.label(background, structure=_IN_PLANE_4)
    outside = np.zeros(n + 1, bool)
    outside[0] = True  # the mask itself
    for rim in (labels[:, 0, :], labels[:, -1, :], labels[:, :, 0], labels[:, :, -1]):
        outside[rim] = True
    return mask | ~outside[labels[:, 1:-1, 1:-1]]


# A deposit fainter than the bone it touches: at least this share of it outside the bone
# piece's outline, smoothed slice by slice with a disk of OUTLINE_DISK_MM.
OUTSIDE_MIN_SHARE = 0.5
OUTLINE_DISK_MM = 3.0


def _outside_share(piece: np.ndarray, solid: np.ndarray, spacing_zyx) -> float:
    """Share of ``piece`` outside ``solid`` (the bone piece with it) opened slice by slice with
    a disk of ``OUTLINE_DISK_MM``: the bone piece's smooth outline. An arc of the cortex lies
    on it; a deposit a few millimetres across stands out of it (the opening cuts it off)."""
    sp = (float(spacing_zyx[1]), float(spacing_zyx[2]))
    outline = dilate_disk(erode_disk(solid, sp, OUTLINE_DISK_MM), sp, OUTLINE_DISK_MM)
    return float((piece & ~outline).sum()) / max(int(piece.sum()), 1)


def deposits_on_bone_piece(
    hu: np.ndarray,
    smooth_hu: np.ndarray,
    mask: np.ndarray,
    spacing_zyx,
    *,
    threshold_hu: float,
    h_hu: float,
    max_deposit_volume_mm3: float,
    is_hollow,
    screen: bool = True,
    raw_h_hu: float | None = None,
) -> list[np.ndarray]:
    """Masks (on the object's box) of deposits joined to a hollow bone piece.

    Parameters
    ----------
    hu, smooth_hu : arrays
        Raw and smoothed HU on a box round the object.
    mask : bool array
        The object's voxels (>= ``threshold_hu``), known to be hollow.
    h_hu : float
        Depth (HU) of a valley that separates two objects (from the noise model), and
        how far a deposit's peak must rise above the bone piece.
    max_deposit_volume_mm3 : float
        Larger basins are bone.
    is_hollow : callable
        ``is_hollow(hu, mask, spacing_zyx, threshold_hu) -> bool``.
    screen : bool
        Skip the flooding when its markers show that no piece can differ from the rest
        by ``h_hu`` (:func:`_no_peak_apart`, and before the markers are made,
        :func:`_two_marker_plateaus`) and no piece can be joined to the rest below
        ``threshold_hu + h_hu`` (:func:`_no_low_saddle`); the same result, for tests to
        compare.
    raw_h_hu : float, optional
        A rise (HU, several times the raw noise): on slices of ``THIN_SLICE_MM`` or more,
        small dense deposits whose valley the smoothing filled are looked for at the raw
        peaks that rise this much above their valley (:mod:`calcinosis.anatomy.raw_peak`),
        as on large bones (a 2.8 mm 1286 HU deposit 1 mm from a rib on 3 mm slices, its
        gap just above the threshold: the smoothed valley split took it for an arc of the
        rib's cortex).

    Returns
    -------
    list of bool arrays
        One mask per deposit, on the box; empty when there is none.
    """
    out = _split_at_valleys(hu, smooth_hu, mask, spacing_zyx, threshold_hu, h_hu, max_deposit_volume_mm3,
                            is_hollow, screen)
    if raw_h_hu is None or float(spacing_zyx[0]) < THIN_SLICE_MM:
        # On thinner slices no such deposit was found on a rib piece (trunk phantoms, 12 seeds
        # each at 20 HU / 1.5 mm and 15 HU / 0.8 mm), and the step costs ~1 ms on each of a
        # whole-trunk scan's hundred rib pieces.
        return out
    taken = np.zeros(mask.shape, bool)
    for dep in out:
        taken |= dep
    max_voxels = max_deposit_volume_mm3 / float(np.prod(spacing_zyx))
    solid = None
    for sub, piece in raw_peak_pieces(mask, hu, taken.copy(), spacing_zyx, raw_h_hu, threshold_hu, max_voxels):
        full = np.zeros(mask.shape, bool)
        full[sub] = piece
        rest = mask & ~taken & ~full
        if is_hollow(hu, full, spacing_zyx, threshold_hu) or not is_hollow(hu, rest, spacing_zyx, threshold_hu):
            continue
        if solid is None:
            solid = fill_holes_in_plane_box(mask)
        if _outside_share(full, solid, spacing_zyx) < OUTSIDE_MIN_SHARE \
                and saddle_between(full, rest, smooth_hu) >= threshold_hu + h_hu:
            # A raw peak of the cortex itself (textured bone: its density varies by hundreds
            # of HU along a rib), on the bone's outline and joined to the rest through cortex.
            # The deposits this step is for stand out of the outline, their gap to the rib just
            # above the threshold.
            continue
        taken |= full
        out.append(full)
    return out


def _split_at_valleys(hu, smooth_hu, mask, spacing_zyx, threshold_hu, h_hu, max_deposit_volume_mm3, is_hollow,
                      screen) -> list[np.ndarray]:
    """:func:`deposits_on_bone_piece` less the raw peaks."""
    solid = fill_holes_in_plane_box(mask)
    screen = (screen and np.issubdtype(smooth_hu.dtype, np.integer)
              and _no_low_saddle(mask, smooth_hu, threshold_hu, h_hu))
    beyond = (hu, smooth_hu, mask, solid, spacing_zyx, threshold_hu, h_hu, max_deposit_volume_mm3, is_hollow)
    if screen and _two_marker_plateaus(solid, mask, smooth_hu, h_hu):
        return _and_beyond_end([], *beyond)
    markers = valley_markers(solid, mask, smooth_hu, h_hu)
    if screen and _no_peak_apart(markers, float(smooth_hu[mask].max()), h_hu):
        return _and_beyond_end([], *beyond)
    out: list[np.ndarray] = []
    for sub, basin in valley_split(solid, mask, smooth_hu, spacing_zyx, h_hu, max_deposit_volume_mm3,
                                   markers=markers):
        piece = basin & mask[sub]
        if not piece.any() or is_hollow(hu[sub], piece, spacing_zyx, threshold_hu):
            continue
        full = np.zeros(mask.shape, bool)
        full[sub] = piece
        rest = mask & ~full
        if not rest.any():
            continue
        peak, bone_peak = float(smooth_hu[full].max()), float(smooth_hu[rest].max())
        if abs(peak - bone_peak) < h_hu and saddle_between(full, rest, smooth_hu) >= threshold_hu + h_hu:
            # An arc of the cortex, at the bone's own density, joined to the rest through
            # cortex. A deposit as dense as the bone, joined to it only through the blur's
            # fringe or noise just over the threshold (a 5.3 mm, 592 HU deposit a slice
            # beyond a rib's end on 3 mm slices, 30 HU noise), is apart from it.
            continue
        if peak < bone_peak and _outside_share(full, solid, spacing_zyx) < OUTSIDE_MIN_SHARE:
            continue  # fainter than the bone and on its outline: its partial volume
        if is_hollow(hu, rest, spacing_zyx, threshold_hu):
            out.append(full)
    return _and_beyond_end(out, *beyond)


def _no_low_saddle(mask: np.ndarray, smooth_hu: np.ndarray, threshold_hu: float, h_hu: float) -> bool:
    """True when no piece of ``mask`` whose peak lies within ``h_hu`` of the rest's can meet
    the rest only below ``threshold_hu + h_hu`` (their saddle:
    :func:`~calcinosis.anatomy.basins.saddle_between`): the object's peak is at
    least ``threshold_hu + 2 h_hu`` and its voxels at or above ``threshold_hu + h_hu`` are
    face-connected (one piece).

    Such a piece and its rest then each hold a voxel at that level (the higher of the two
    holds the peak, the other lies within ``h_hu`` of it), and the face-connected path
    between those voxels through that level crosses from the piece to the rest: a face
    pair whose lower value is at that level. (With the peaks ``h_hu`` or more apart the
    piece differs from the bone anyway: :func:`_no_peak_apart` screens that.)"""
    level = threshold_hu + h_hu
    if not mask.any() or float(smooth_hu[mask].max()) < level + h_hu:
        return False
    _, n = cc3d.connected_components(np.ascontiguousarray(mask & (smooth_hu >= level)), connectivity=6,
                                     return_N=True)
    return n <= 1


def _and_beyond_end(out, hu, smooth_hu, mask, solid, spacing_zyx, threshold_hu, h_hu, max_deposit_volume_mm3,
                    is_hollow) -> list[np.ndarray]:
    """``out`` (deposits split at valleys) and the deposits beyond the bone piece's end
    (:func:`beyond_bone_end`) among the rest, each solid (not hollow) and leaving a hollow
    bone piece."""
    taken = np.zeros(mask.shape, bool)
    for dep in out:
        taken |= dep
    for full in beyond_bone_end(smooth_hu, mask & ~taken, solid, spacing_zyx, min_peak_hu=threshold_hu + h_hu,
                                max_deposit_volume_mm3=max_deposit_volume_mm3):
        if is_hollow(hu, full, spacing_zyx, threshold_hu) or not is_hollow(hu, mask & ~full, spacing_zyx, threshold_hu):
            continue
        out.append(full)
    return out


# Slices holding the bone piece's marrow: its filled section has a core this deep (mm) in plane.
MARROW_DEPTH_MM = 2.0
# The partial volume of the bone's end, in the slice beyond its last marrow slice, stays below
# this fraction of the bone's smoothed peak right over it (at most 0.30 on the trunk phantoms'
# ribs at 3 mm); a deposit there reaches past it (0.62-0.69).
END_CAP_MAX_FRACTION = 0.5


def beyond_bone_end(smooth_hu: np.ndarray, mask: np.ndarray, solid: np.ndarray, spacing_zyx, *,
                    min_peak_hu: float, max_deposit_volume_mm3: float) -> list[np.ndarray]:
    """Masks (on the box) of deposits joined to a bone piece across its end along z.

    On thick slices (``THIN_SLICE_MM`` or more; nothing on thinner ones) a deposit just
    beyond the end of a rib joins it at the threshold through the slices' partial volume,
    with no valley between them (its intensity rises into the rib). The parts of ``mask``
    in the slices beyond the bone piece's marrow slices (those whose filled section
    ``solid`` has a core ``MARROW_DEPTH_MM`` deep that holds a voxel under the threshold:
    marrow, not the solid section of a deposit as dense as the rib) are
    the bone's partial-volume end, fainter than ``END_CAP_MAX_FRACTION`` of the bone right
    over them in its last marrow slice, or a deposit, which rises past that, and above
    ``min_peak_hu`` (the threshold and a valley depth: specks of noise on the faint end
    do not).
    """
    if float(spacing_zyx[0]) < THIN_SLICE_MM:
        return []  # on thin slices a valley parts them (:func:`valley_split`)
    marrow = (core_in_plane(solid, spacing_zyx, MARROW_DEPTH_MM) & ~mask).any(axis=(1, 2))
    zs = np.flatnonzero(marrow)
    if not len(zs):
        return []
    beyond = mask.copy()
    beyond[zs[0]:zs[-1] + 1] = False
    parts, n = ndi.label(beyond, structure=np.ones((3, 3, 3), bool))
    vv = float(np.prod(spacing_zyx))
    out = []
    for k, box in enumerate(ndi.find_objects(parts), start=1):
        part = parts == k
        if is_speck(int(part.sum()), vv) or part.sum() * vv > max_deposit_volume_mm3:
            continue  # a speck of the end's partial volume or noise; or bone
        end = zs[-1] if box[0].start > zs[-1] else zs[0]
        over = smooth_hu[end][part.any(axis=0)].max()
        peak = smooth_hu[part].max()
        if peak >= min_peak_hu and peak >= END_CAP_MAX_FRACTION * over:
            out.append(part)
    return out


def _no_peak_apart(markers: ValleyMarkers, peak_hu: float, h_hu: float) -> bool:
    """True when no piece :func:`valley_split` can give differs from the rest of the object
    by ``h_hu`` at its peak (so none is a deposit), read off the flooding's markers alone.

    A piece holds its basin's marker (its densest voxel is kept), so its peak is at least the
    marker's value; when every marker lies within ``h_hu`` of the object's peak, so does
    every piece's peak, and the piece can differ from the rest only if the rest has no
    voxel within ``h_hu`` of the peak: no marker. A piece is its basin and at most a layer
    of voxels face to face with it; the rest keeps a marker whose voxels have no voxel at
    least as high within two face steps (other than its own): the face neighbours of such
    a marker are flooded from it before any other basin can reach them (the flooding runs
    from the highest value down, markers first at a tie), so they are its own, and the
    marker is neither in another basin nor face to face with one. Two such markers: one of
    them is in the rest of any piece. (Whole-HU images only: the flooding's float32 copy of
    the image then has no ties the integers do not have.)
    """
    if markers.n < 2:
        return True  # nothing is split off
    img, labels = markers.img, markers.labels
    if float(img[labels > 0].min()) <= peak_hu - h_hu + 1e-3:  # (an allowance for rounding)
        return False  # a marker h below the peak: its piece may be a deposit fainter than the bone
    isolated = 0
    for k, box in enumerate(ndi.find_objects(labels), start=1):
        value = float(img[box][labels[box] == k].min())  # a marker's voxels share one value (a plateau)
        isolated += int(_isolated(img, labels, box, k, value))
        if isolated == 2:
            return True
    return False


def _isolated(img: np.ndarray, labels: np.ndarray, box: tuple[slice, ...], k: int, value: float) -> bool:
    """Whether the plateau labelled ``k`` (bounding box ``box``, at ``value``) has no voxel as
    high within two face steps of it (other than its own)."""
    grown = tuple(slice(max(s.start - 2, 0), s.stop + 2) for s in box)
    own = labels[grown] == k
    ring = grow(own, 2) & ~own
    return not ring.any() or float(img[grown][ring].max()) < value


# Plateaus tried (densest first) for two isolated markers before the markers are made.
MAX_PLATEAUS_TRIED = 12


def _two_marker_plateaus(solid: np.ndarray, dense: np.ndarray, smooth_hu: np.ndarray, h_hu: float) -> bool:
    """:func:`_no_peak_apart` without the h-maxima transform (True: no piece can stand apart;
    False: not shown, make the markers).

    Every marker is a plateau of voxels at least as high as their 26 neighbours (a higher
    neighbour would be in its dome), so when every such plateau on dense voxels that lies
    ``h_hu`` or more below the peak is not a marker, every marker lies within ``h_hu`` of it. A plateau is a marker (a whole 26-connected
    piece of ``valley_markers``' maxima) when the part of the image above its value less the
    marker depth, 26-connected to it, holds nothing higher: the h-maxima rule on whole HU
    (:func:`calcinosis.anatomy.valley.h_maxima`). Two markers found so, each with no voxel
    as high within two face steps, complete :func:`_no_peak_apart`'s proof. Whole-HU images
    within the range of the h-maxima's integer path only.
    """
    image = valley_image(solid, smooth_hu)
    if image is None:
        return True  # nothing to split
    crop, img = image
    h_weak = WEAK_H_FRACTION * h_hu
    lo, hi = float(img.min()), float(img.max())
    if not (h_weak >= 1.0 and -INT_H_MAXIMA_RANGE < lo and hi < INT_H_MAXIMA_RANGE):
        return False
    if h_weak > hi - lo:
        return True  # no maximum stands out: no markers, nothing split off
    steps = int(np.ceil(h_weak - 1e-3))
    dense_c = dense[crop]
    plateaus = (img == ndi.maximum_filter(img, size=3, mode="nearest")) & dense_c
    if not plateaus.any():
        return True  # no markers
    peak = float(img[dense_c].max())
    labels, n = label_26(plateaus)
    boxes = ndi.find_objects(labels)
    values = np.array([float(img[box][labels[box] == k].min()) for k, box in enumerate(boxes, start=1)])
    low = np.flatnonzero(values <= peak - h_hu + 1e-3) + 1  # (an allowance for rounding)
    if low.size > MAX_PLATEAUS_TRIED:
        return False
    for k in low:
        if _dome_is_its_own(img, _a_voxel(labels, boxes[k - 1], k), steps):
            return False  # a marker h below the peak: its piece may be fainter than the bone
    found = 0
    for k in np.argsort(-values, kind="stable")[:MAX_PLATEAUS_TRIED] + 1:
        box, value = boxes[k - 1], values[k - 1]
        if not _isolated(img, labels, box, k, value):
            continue
        if not _dome_is_its_own(img, _a_voxel(labels, box, k), steps):
            continue  # a higher voxel in its dome: not a marker
        found += 1
        if found == 2:
            return True
    return False


def _dome_is_its_own(img: np.ndarray, voxel: tuple[int, ...], steps: int) -> bool:
    """Whether ``voxel`` of a whole-HU image is an h-maxima voxel for a marker depth of
    ``steps`` HU (:func:`calcinosis.anatomy.valley.h_maxima`, integer path): nothing higher in
    the 26-connected part of the image at or above its value less ``steps - 1``."""
    value = img[voxel]
    dome, _ = label_26(img >= value - steps + 1)
    return not bool((img[dome == dome[voxel]] > value).any())


def _a_voxel(labels: np.ndarray, box: tuple[slice, ...], k: int) -> tuple[int, ...]:
    """One voxel (the first in C order) labelled ``k``, whose bounding box is ``box``."""
    first = np.argwhere(labels[box] == k)[0]
    return tuple(int(s.start) + int(f) for s, f in zip(box, first))
