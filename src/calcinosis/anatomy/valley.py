"""The valley split of a bone: deposits a little away from the bone, parted from it by a valley.

A deposit a little away from the bone joins it at the threshold through the partial-volume
blur of the gap, but the gap stays a valley of the smoothed intensity. The structure is
flooded (watershed) from its intensity maxima that stand out of the valleys around them by
more than ``h`` (:func:`h_maxima`); a basin that is small and whose border mostly faces soft
tissue is a deposit (:func:`valley_split`). With ``shoulders`` (large bones), a basin not
taken is searched for a dense deposit on the shoulder of the bone it took in
(:mod:`calcinosis.anatomy.shoulder`). Used by :func:`calcinosis.anatomy.bone.split_bone`
(step 1 there) and by :mod:`calcinosis.detect.hollow` (rib pieces).
"""

from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from calcinosis.anatomy.ball import open_ball
from calcinosis.anatomy.basins import BUMP_MIN_TISSUE_RATIO, MERGED_MIN_TISSUE_RATIO, face_pairs, merge_shallow_basins
from calcinosis.anatomy.morphology import grow, grow_box, label_counts
from calcinosis.anatomy.own_blur import own_blur
from calcinosis.anatomy.shoulder import shoulder_piece

# A deposit flush on bone may sit behind a valley this fraction of ``h`` deep, if it stands
# outside the bone's outline smoothed by an opening with this ball (mm).
WEAK_H_FRACTION = 0.4
OUTLINE_BALL_MM = 3.0
# Whole-HU images within +-this take h-maxima on int16: there float32 holds ``image - h``
# well within the 0.001 allowance, so the int16 and float paths agree (and it fits int16).
INT_H_MAXIMA_RANGE = 4096


Piece = tuple[tuple[slice, ...], np.ndarray]


@dataclass(frozen=True, eq=False)
class ValleyMarkers:
    """The flooding's start for :func:`valley_split`: the structure's box grown by one voxel
    (``crop``), the image on it (smoothed HU, ``low`` outside the structure; ``img``), and
    its maxima that stand ``WEAK_H_FRACTION * h`` out of their valleys, on dense voxels,
    26-connected and labelled 1..n (``labels``). None of it when the structure is empty."""

    crop: tuple[slice, ...] | None
    img: np.ndarray | None
    labels: np.ndarray | None
    n: int


def valley_markers(solid, dense, smooth_hu, h_hu) -> ValleyMarkers:
    """The markers :func:`valley_split` floods from (same arguments)."""
    # The flooding and its statistics run on the structure's own box grown by one voxel (its
    # faces to tissue): the same maxima (outside the structure the image is ``low`` on both
    # boxes, and the grown box holds some of it unless the two are the same), the same basins
    # (scikit-image floods in order of value, then of arrival, which the smaller box keeps).
    # Outside that box nothing is read: each small basin's box (grown by one voxel) lies in it.
    image = valley_image(solid, smooth_hu)
    if image is None:
        return ValleyMarkers(None, None, None, 0)
    crop, img_c = image
    labels, n = label_26(h_maxima(img_c, WEAK_H_FRACTION * h_hu) & dense[crop])
    return ValleyMarkers(crop, img_c, labels, n)


def valley_image(solid, smooth_hu) -> tuple[tuple[slice, ...], np.ndarray] | None:
    """The box :func:`valley_split` floods (the structure's box grown by one voxel) and the
    image on it: smoothed HU in the structure, its lowest value outside (integer HU stay
    integer: a faster h-maxima). None when the structure is empty."""
    crop = _grown_box(solid)
    if crop is None:
        return None
    low = smooth_hu.min()  # the level outside the structure
    return crop, np.where(solid[crop], smooth_hu[crop], low)


def valley_split(solid, dense, smooth_hu, spacing_zyx, h_hu, max_volume, *,
                 markers: ValleyMarkers | None = None, threshold_hu: float | None = None,
                 merge_noise_tops: bool = False, shoulders: bool = False) -> list[Piece]:
    """Basins of the smoothed intensity that are deposits: small, facing soft tissue, and
    either separated from the rest by a valley deeper than ``h_hu``, or by a shallower
    valley (``WEAK_H_FRACTION * h_hu``) while standing outside the bone's smooth outline.
    ``markers``, when given, is :func:`valley_markers` of the same arguments.

    A knob of the bone (an epicondyle, a process) joins the rest through its cortex: the
    highest value along its border (its saddle) is cortical. A deposit near the bone joins
    it only through the partial-volume blur of the gap, on thick slices over a broad face
    (a 5 mm deposit 1.2 mm from the humerus on 2.5 mm slices faces the bone on 40 % of its
    border). With ``threshold_hu`` (that made ``dense``), a basin whose saddle lies below
    ``threshold_hu + h_hu`` is a candidate whatever share of its border faces soft tissue.
    With ``merge_noise_tops`` (large bones, not rib pieces, where every basin is small and
    faces soft tissue: merged, a deposit took in part of the rib), small basins that noise
    split are merged first (:func:`calcinosis.anatomy.basins.merge_shallow_basins`), and a
    basin behind a shallow valley that touches the rest on a small part of its border
    (``MERGED_MIN_TISSUE_RATIO``) stands apart from the bone even inside its opened outline
    (an 8 mm deposit 0.7 mm from the elbow's bone holds the outline's 3 mm ball)."""
    vv = float(np.prod(spacing_zyx))
    h_weak = WEAK_H_FRACTION * h_hu
    if markers is None:
        markers = valley_markers(solid, dense, smooth_hu, h_hu)
    n, crop = markers.n, markers.crop
    if n <= 1:
        return []
    solid_c = solid[crop]
    img_c = markers.img.astype(np.float32)
    basins_c = watershed(-img_c, markers.labels, mask=solid_c)
    counts = label_counts(basins_c, n)
    faces = face_pairs(basins_c, img_c)
    if merge_noise_tops:
        basins_c, counts, faces = merge_shallow_basins(basins_c, counts, img_c, h_hu, max_volume / vv,
                                                       faces)  # some labels unused
    sizes = counts * vv
    facing_tissue, facing_other, pairs = _counts_from_pairs(*faces, n)
    small = (sizes > 0) & (sizes <= max_volume)
    small[0] = False
    # Peaks and saddles of the small basins only (no other can be a deposit).
    saddle = _saddles(pairs, small, n)
    facing = facing_tissue > BUMP_MIN_TISSUE_RATIO * facing_other
    if threshold_hu is not None:
        facing |= saddle < threshold_hu + h_hu  # joined by the blur's fringe
    small &= facing
    accept = np.zeros(n + 1, bool)
    objects_c = None
    if small.any():
        objects_c = ndi.find_objects(basins_c)
        prominence = np.zeros(n + 1)
        for k in np.flatnonzero(small):
            box = objects_c[k - 1]
            prominence[k] = float(img_c[box][basins_c[box] == k].max()) - saddle[k]
        # Each small basin's box on the structure's box, grown by one voxel (``subs``), and the
        # same box on the grown box (``subs_c``: within it, see above).
        subs = {k: tuple(slice(max(s.start + c.start - 1, 0), s.stop + c.start + 1)
                         for s, c in zip(objects_c[k - 1], crop))
                for k in np.flatnonzero(small)}
        subs_c = {k: tuple(slice(s.start - c.start, s.stop - c.start) for s, c in zip(sub, crop))
                  for k, sub in subs.items()}
        # The bone's outline smoothed by an opening, on each small basin's box only (exact there:
        # the box is read with a margin of twice the ball's radius).
        opened = {k: opened_on(solid, sub, spacing_zyx, OUTLINE_BALL_MM) for k, sub in subs.items()}
        # Share of each small basin outside that outline.
        outside = np.zeros(n + 1)
        for k, sub_c in subs_c.items():
            basin = basins_c[sub_c] == k
            outside[k] = 1.0 - (basin & opened[k]).sum() / max(int(counts[k]), 1)
        weak = small & (prominence < h_hu)
        apart = outside >= 0.5
        if merge_noise_tops:
            # A large deposit holds the outline's ball: it is inside the opened outline however
            # separate it is. Touching the bone on a small part of its border, it is apart too.
            apart |= facing_tissue > MERGED_MIN_TISSUE_RATIO * facing_other
        accept = small & ((prominence >= h_hu) | (weak & (prominence >= h_weak) & apart))
    shoulder = {}
    if shoulders and threshold_hu is not None:
        if objects_c is None:
            objects_c = ndi.find_objects(basins_c)
        shoulder = _shoulders(basins_c, img_c, solid_c, accept, objects_c, h_hu, threshold_hu, max_volume / vv,
                              spacing_zyx)
    if not accept.any() and not shoulder:
        return []
    taken_c = accept[basins_c]
    for sub_c, piece in shoulder.values():
        taken_c[sub_c] |= piece
    free = solid.copy()  # the structure less the accepted basins and shoulder pieces
    free[crop] &= ~taken_c
    out = []
    for k in np.flatnonzero(accept):
        sub, sub_c = subs[k], subs_c[k]
        basin = basins_c[sub_c] == k
        # The watershed line runs along the valley: the deposit's own blur on the bone side
        # of it, outside the bone's outline, still belongs to the deposit.
        fringe = grow(basin)
        fringe &= solid[sub] & ~opened[k] & ~taken_c[sub_c]
        out.append((sub, own_blur(sub, basin | fringe, dense, free, img_c[sub_c], basin)))
    for sub_c, piece in shoulder.values():
        sub = tuple(slice(s.start + c.start, s.stop + c.start) for s, c in zip(sub_c, crop))
        out.append((sub, own_blur(sub, piece, dense, free, img_c[sub_c], piece)))
    return out


def _shoulders(basins_c, img_c, solid_c, accept, objects_c, h_hu, floor_hu, max_voxels, spacing_zyx) -> dict:
    """The deposits found on the shoulder of basins not taken (:func:`shoulder_piece`), by
    basin: (the basin's box grown by one voxel, the piece on it)."""
    out = {}
    for k, box in enumerate(objects_c, start=1):
        if box is None or accept[k]:
            continue
        sub_c = grow_box(box, (1,) * basins_c.ndim, basins_c.shape)
        labels = basins_c[sub_c]
        basin = labels == k
        piece = shoulder_piece(basin, img_c[sub_c], solid_c[sub_c], (labels > 0) & ~basin, h_hu, floor_hu,
                               max_voxels, spacing_zyx)
        if piece is not None:
            out[k] = (sub_c, piece)
    return out


def label_26(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """26-connected components of ``mask``, numbered in raster order of their first voxel:
    the labels of ``ndimage.label(mask, structure=np.ones((3, 3, 3)))`` (uint32), by
    ``cc3d``, several times faster on a bone's box."""
    labels, n = cc3d.connected_components(np.ascontiguousarray(mask, dtype=bool), connectivity=26,
                                          return_N=True, out_dtype=np.uint32)
    return labels, int(n)


def _grown_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The bounding box of ``mask`` grown by one voxel (within the array); None when empty."""
    box = ndi.find_objects(mask.view(np.uint8))
    if not box:
        return None
    return grow_box(box[0], (1,) * mask.ndim, mask.shape)


def opened_on(solid: np.ndarray, sub: tuple[slice, ...], spacing_zyx, radius_mm: float) -> np.ndarray:
    """``open_mm(solid, ...)[sub]`` (by :func:`~calcinosis.anatomy.ball.open_ball`), computed
    on ``sub`` grown by twice the radius: the erosion reads voxels within one radius, the
    dilation the eroded ones within another."""
    reach = [int(np.ceil(2 * radius_mm / float(s))) + 1 for s in spacing_zyx]
    big = grow_box(sub, reach, solid.shape)
    inner = tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(sub, big))
    return open_ball(solid[big], spacing_zyx, radius_mm)[inner]


def _border_counts(basins: np.ndarray, n: int, img: np.ndarray):
    """Per basin: face-neighbours outside the structure (tissue) and face-neighbours in
    another basin; and the face pairs between two basins, as (basin, the lower value of the
    pair) from each side, for :func:`_saddles`."""
    return _counts_from_pairs(*face_pairs(basins, img), n)


def _counts_from_pairs(a: np.ndarray, b: np.ndarray, low: np.ndarray, n: int):
    """:func:`_border_counts` from the face pairs of :func:`~calcinosis.anatomy.basins.face_pairs`."""
    tissue = np.zeros(n + 1, np.int64)
    other = np.zeros(n + 1, np.int64)
    sides: list[np.ndarray] = []
    lows: list[np.ndarray] = []
    for x, y in ((a, b), (b, a)):
        inside = x > 0
        tissue += np.bincount(x[inside & (y == 0)], minlength=n + 1)
        pair = inside & (y > 0)
        other += np.bincount(x[pair], minlength=n + 1)
        sides.append(x[pair])
        lows.append(low[pair])
    return tissue, other, (np.concatenate(sides), np.concatenate(lows))


def _saddles(pairs: tuple[np.ndarray, np.ndarray], wanted: np.ndarray, n: int) -> np.ndarray:
    """Per basin (where ``wanted``; -inf elsewhere): the saddle, the highest value along its
    border with another basin, from :func:`_border_counts`' face pairs."""
    side, low = pairs
    keep = wanted[side]
    saddle = np.full(n + 1, -np.inf)
    np.maximum.at(saddle, side[keep], low[keep])
    return saddle


def _reconstruction_by_dilation() -> sitk.ReconstructionByDilationImageFilter:
    """ITK's reconstruction by dilation (26-connected) on one thread: its flooding is
    sequential (a second thread gains nothing on a spine's box), and on the many small
    boxes of rib pieces starting threads costs more than the work, while the pipeline's
    other thread has work of its own. The result does not depend on the threads."""
    rec = sitk.ReconstructionByDilationImageFilter()
    rec.SetFullyConnected(True)
    rec.SetNumberOfThreads(1)
    return rec


def h_maxima(image: np.ndarray, h: float) -> np.ndarray:
    """Maxima that rise at least ``h`` above every path to a higher one (boolean mask).

    Same result as ``skimage.morphology.h_maxima`` (26-connected), by ITK's
    reconstruction by dilation of ``image - h`` under ``image``, several times faster on
    a bone's box: the voxels where the image stands ``h`` above its reconstruction.
    A peak of height exactly ``h`` counts (float rounding is allowed for, 0.001).
    Whole-HU (integer) images run on int16, faster, with the same result.
    """
    if image.size == 0:
        return np.zeros(image.shape, bool)
    if np.issubdtype(image.dtype, np.integer) and h >= 1.0 and -INT_H_MAXIMA_RANGE < image.min() \
            and image.max() < INT_H_MAXIMA_RANGE:
        if h > float(image.max()) - float(image.min()):
            return np.zeros(image.shape, bool)
        # Whole values: a maximum's dynamic is whole, so rising ``h`` (less the rounding
        # allowance) is rising its ceiling.
        steps = int(np.ceil(h - 1e-3))
        img16 = np.ascontiguousarray(image, dtype=np.int16)
        marker16 = sitk.GetImageFromArray(img16 - np.int16(steps))
        rec16 = _reconstruction_by_dilation().Execute(marker16, sitk.GetImageFromArray(img16))
        return (img16.astype(np.int32) - sitk.GetArrayViewFromImage(rec16)) >= steps
    img = np.ascontiguousarray(image, dtype=np.float32)
    if h > float(img.max() - img.min()):
        return np.zeros(img.shape, bool)
    marker = sitk.GetImageFromArray(img - np.float32(h))
    rec = _reconstruction_by_dilation().Execute(marker, sitk.GetImageFromArray(img))
    return (img - sitk.GetArrayViewFromImage(rec)) >= h - 1e-3
