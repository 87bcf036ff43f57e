"""Bone: large dense structures, and the deposits that touch them split off.

A dense (>= threshold) connected structure larger than any deposit (by volume or
extent) is bone. Deposits lying on it are split off in these ways:

1. A deposit a little away from the bone joins it at the threshold through the
   partial-volume blur of the gap, but the gap stays a valley of the smoothed
   intensity. The structure is flooded (watershed) from its intensity maxima that
   stand out of the valleys around them by more than ``h``; a basin that is small
   and whose border mostly faces soft tissue is a deposit, unless it has a marrow
   space (the caller's ``is_bone_piece``, e.g.
   :func:`calcinosis.detect.candidates.is_hollow`): then it is a knob of the bone,
   and stays bone (on thick slices a deposit may be merged into such a knob; 3 finds it).
2. Not yet: a deposit lying flush on the bone has no valley. Shaving bumps off the
   bone's outline with an opening finds them, but also the caps of vertebral
   processes (tried, many false deposits on the trunk phantom); such deposits stay
   in the bone for now.
3. On thick slices, a deposit hidden in the bone's blur rises above the bone's
   profile of intensity against distance from its core (:func:`_profile_split`); a piece
   lying mostly right above or below the bone in the next slice is the partial-volume cap
   of the bone's end (a vertebral endplate), not a deposit (:func:`_caps_bone`).

The mask of a deposit split off in 1 or 3 keeps its own blur and drops the voxels that
only the bone's blur lifts above the threshold
(:func:`calcinosis.anatomy.own_blur.own_blur`).

Everything else is bone.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass

import cc3d
import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from calcinosis.anatomy.ball import open_ball
from calcinosis.anatomy.basins import merge_shallow_basins
from calcinosis.anatomy.bone_bumps import pressed_candidates
from calcinosis.anatomy.bone_profile import BlurProfile, InPlanePeak, blur_profile, per_label_max
from calcinosis.anatomy.morphology import fill_holes_in_plane, label_counts
from calcinosis.anatomy.own_blur import own_blur
from calcinosis.threads import SMALL_FOR_THREADS, n_threads

# A deposit flush on bone may sit behind a valley this fraction of ``h`` deep, if it stands
# outside the bone's outline smoothed by an opening with this ball (mm).
WEAK_H_FRACTION = 0.4
# A deposit touches the bone over a small part of its surface; a knob of the bone itself
# (an epicondyle, a process) joins it broadly: faces to soft tissue / faces to the bone.
BUMP_MIN_TISSUE_RATIO = 1.6
OUTLINE_BALL_MM = 3.0
# Whole-HU images within +-this take h-maxima on int16: there float32 holds ``image - h``
# well within the 0.001 allowance, so the int16 and float paths agree (and it fits int16).
INT_H_MAXIMA_RANGE = 4096
# Smoothed HU at which the structure is bone cortex for sure (a deposit small enough to hide
# in the bone's blur stays below it).
CORE_HU = 450.0
# The bone's blur profile: distance bins (mm) and how far from the core it is modelled (mm).
PROFILE_BIN_MM = 0.4
PROFILE_REACH_MM = 5.0
# A deposit's maximum lies at least this far from the bone's core (mm).
MIN_GAP_DIST_MM = 1.0
# A piece found above the bone's blur profile smaller than this (mm3) is a speck of the
# bone's own partial volume or noise on its slope (a 2 mm deposit holds about 4 mm3).
PROFILE_MIN_VOLUME_MM3 = 2.0
# On slices thinner than this (mm), a piece without an in-plane maximum of its own that rises
# this many times ``h`` above the bone's profile is a deposit pressed against the bone.
THIN_SLICE_MM = 2.5
STRONG_RESIDUAL_H = 3.0
# A closed shell of bone round at least this much soft tissue (mm^2) in one slice is a skull
# (a brain in cross-section; the rib cage holds lung, and the pelvic ring is open at the
# symphysis).
SKULL_MIN_ENCLOSED_MM2 = 4000.0
SKULL_CONTENT_HU = (-50.0, 100.0)

Piece = tuple[tuple[slice, ...], np.ndarray]
_CUBE = np.ones((3, 3, 3), bool)


@dataclass(frozen=True, eq=False)
class BoneSplit:
    """Result of splitting one dense structure: its bone voxels and attached deposits.

    Masks are on the structure's bounding-box grid.
    """

    bone: np.ndarray  # bone solid (cortex, marrow filled)
    # Attached deposits: (slices into the box, voxel mask >= threshold on those slices).
    deposits: tuple[Piece, ...]


def split_bone(
    dense: np.ndarray,
    smooth_hu: np.ndarray,
    spacing_zyx,
    *,
    h_hu: float,
    max_deposit_volume_mm3: float,
    is_bone_piece: Callable[[tuple[slice, ...], np.ndarray], bool] | None = None,
    threshold_hu: float | None = None,
) -> BoneSplit:
    """Split one connected dense structure into bone and attached deposits.

    Parameters
    ----------
    dense : bool array
        The structure's voxels at or above the threshold, on a bounding box with a margin.
    smooth_hu : float array
        Smoothed HU on the same box.
    h_hu : float
        How far (HU) a maximum must rise above the valley that separates it from a
        higher one to count as an object of its own.
    max_deposit_volume_mm3 : float
        Pieces larger than this are bone.
    is_bone_piece : callable, optional
        ``is_bone_piece(sub, piece)`` is True when a piece split off at a valley (its
        slices into the box and voxel mask) is itself bone (a cortical shell round
        marrow). Such a piece stays bone, and the bone's blur profile is then searched
        through it for deposits that lie on its flank.
    threshold_hu : float, optional
        The detection threshold that made ``dense``. When given, a basin joined to the
        rest only through the blur's fringe (its saddle below ``threshold_hu + h_hu``) is
        a deposit candidate however much of its border faces the bone (see
        :func:`valley_split`).
    """
    solid = fill_holes_in_plane(dense)
    skull_holes = _skull_holes(solid & ~dense, smooth_hu, spacing_zyx)
    if skull_holes is not None:
        # The skull base and the face are thin plates of bone round air cells, foramina and
        # sutures; their valleys look like the gap beside a deposit. Calcinosis next to the
        # skull lies in the scalp, under the galea, and is not joined to the bone at the
        # threshold: nothing is split off a skull. Its bone is the skull itself: the
        # cranial cavity it rings (the brain, a large hole of the slice) is not bone.
        return BoneSplit(solid & ~skull_holes, ())
    deposits: list[Piece] = []
    bone = solid.copy()
    taken = np.zeros(solid.shape, bool)
    # The blur profile does not depend on the valley split: on a large structure (a spine) it
    # is made in a second thread beside the flooding (ITK and scikit-image release the GIL).
    # The results do not depend on the threads.
    beside = n_threads() > 1 and solid.size >= SMALL_FOR_THREADS
    pool = ThreadPoolExecutor(1) if beside else None
    with pool or nullcontext():
        blur = pool.submit(_blur_profile, solid, smooth_hu, spacing_zyx).result if pool else None
        for sub, basin in valley_split(solid, dense, smooth_hu, spacing_zyx, h_hu, max_deposit_volume_mm3,
                                       threshold_hu=threshold_hu, merge_noise_tops=True):
            if is_bone_piece is not None and is_bone_piece(sub, basin & dense[sub]):
                continue
            deposits.append((sub, basin & dense[sub]))
            bone[sub] &= ~basin
            taken[sub] |= basin
        for sub, piece in _profile_split(solid, dense, smooth_hu, spacing_zyx, h_hu,
                                         max_deposit_volume_mm3, taken, blur=blur):
            deposits.append((sub, piece))
            bone[sub] &= ~piece
    return BoneSplit(bone, tuple(deposits))


def is_skull(enclosed: np.ndarray, smooth_hu: np.ndarray, spacing_zyx) -> bool:
    """Whether a structure whose in-plane holes are ``enclosed`` is a skull: on some slice
    one hole of at least ``SKULL_MIN_ENCLOSED_MM2`` holds soft tissue (median smoothed HU in
    ``SKULL_CONTENT_HU``), a brain."""
    return _skull_holes(enclosed, smooth_hu, spacing_zyx) is not None


def _skull_holes(enclosed: np.ndarray, smooth_hu: np.ndarray, spacing_zyx) -> np.ndarray | None:
    """For a skull (:func:`is_skull`), its in-plane holes of at least
    ``SKULL_MIN_ENCLOSED_MM2`` (the cranial cavity); None for any other structure. Each
    slice's holes are labelled once, for both answers."""
    pixel_mm2 = float(spacing_zyx[1]) * float(spacing_zyx[2])
    min_pixels = int(np.ceil(SKULL_MIN_ENCLOSED_MM2 / pixel_mm2))
    large = np.zeros(enclosed.shape, bool)
    skull = False
    for z in np.flatnonzero(enclosed.sum(axis=(1, 2)) >= min_pixels):
        holes, n = ndi.label(enclosed[z])
        sizes = np.bincount(holes.ravel(), minlength=n + 1)
        sizes[0] = 0
        large[z] = (sizes >= min_pixels)[holes]
        k = int(np.argmax(sizes))
        if not skull and sizes[k] >= min_pixels:
            content = float(np.median(smooth_hu[z][holes == k]))
            skull = SKULL_CONTENT_HU[0] <= content <= SKULL_CONTENT_HU[1]
    return large if skull else None


def _blur_profile(solid, smooth_hu, spacing_zyx) -> BlurProfile | None:
    """The bone's blur profile (:func:`~calcinosis.anatomy.bone_profile.blur_profile`) with
    this module's core and bins."""
    return blur_profile(solid, smooth_hu, spacing_zyx, ball_mm=OUTLINE_BALL_MM, core_hu=CORE_HU,
                        reach_mm=PROFILE_REACH_MM, bin_mm=PROFILE_BIN_MM)


def _profile_split(solid, dense, smooth_hu, spacing_zyx, h_hu, max_volume, taken,
                   blur: Callable[[], BlurProfile | None] | None = None) -> list[Piece]:
    """Deposits near the bone whose own maximum is lost on the slope of the bone's blur.

    A small deposit about 1 mm from the cortex shows no valley: the bone's blur falls through
    it (on thick slices, and on thin ones within half a millimetre). Once used on slices of
    2.5 mm or more only, for fear of the edges of thin bone (skull, laminae): a skull is not
    split at all now, and specks under ``PROFILE_MIN_VOLUME_MM3`` are left to the bone.

    The bone's blur is modelled as a profile of the smoothed intensity against distance
    from the bone's core (its outline opened with a 3 mm ball, and everything at cortical
    density); what rises above that profile by more than ``h_hu``, outside the core, small
    and facing soft tissue, is a deposit. ``blur``, when given, returns
    :func:`_blur_profile` of the same structure (computed beforehand, beside the valley split).
    """
    blur = _blur_profile(solid, smooth_hu, spacing_zyx) if blur is None else blur()
    if blur is None:
        return []
    # The profile, the candidates and their statistics are read at the voxels near the core
    # only (a spine's box holds millions of voxels, these a fraction); the residual and the
    # in-plane maxima elsewhere on the boxes of the pieces kept (bone_profile: the same
    # values as whole-box arrays).
    core, dist, residual = blur.core, blur.dist, blur.residual
    near_at, near_res = blur.near_at, blur.near_residual
    cand_at = near_at[dense.ravel()[near_at] & ~taken.ravel()[near_at] & (near_res >= 0.5 * h_hu)]
    cand = np.zeros(solid.shape, bool)
    cand.ravel()[cand_at] = True
    labels, n = label_26(cand)
    if n == 0:
        return []
    vv = float(np.prod(spacing_zyx))
    # The deposit's own maximum: a voxel above its in-plane neighbours. On the flank of the
    # bone (or of a thin plate of it, below cortical density on thick slices) the intensity
    # still rises towards the bone.
    own_max = InPlanePeak(smooth_hu)
    lab_at = labels.ravel()[cand_at]  # every candidate is labelled
    res_at = residual[np.unravel_index(cand_at, solid.shape)]
    peak = per_label_max(lab_at, np.where(own_max.at(cand_at), res_at, -np.inf), n)[1:]
    if spacing_zyx[0] < THIN_SLICE_MM:
        # On thin slices a dense deposit within half a millimetre of the cortex has no
        # in-plane maximum of its own (its intensity rises into the bone in every slice),
        # yet stands far above the bone's profile; the bone's own edge does not (on thick
        # slices its partial-volume ends do: there the rule above stays alone).
        strong = per_label_max(lab_at, res_at, n)[1:]
        peak = np.where(np.isinf(peak) & (strong >= STRONG_RESIDUAL_H * h_hu), strong, peak)
    peak_dist = per_label_max(lab_at, dist.ravel()[cand_at], n)[1:]
    sizes = np.bincount(lab_at, minlength=n + 1)[1:] * vv
    accept = _Acceptance(solid, dense, core, taken, residual, own_max, h_hu, vv)
    out = accept(labels, (peak >= h_hu) & (sizes <= max_volume) & (peak_dist >= MIN_GAP_DIST_MM))
    # Deposits pressed against the bone, lost above in the bone's partial-volume ends (joined
    # to them, or without an in-plane maximum of their own): sought apart from those ends
    # (:mod:`calcinosis.anatomy.bone_bumps`).
    for sub, piece in out:
        cand[sub] &= ~piece
    labels, _, pressed = pressed_candidates(cand, blur.outline, core, residual, dist, residual.bins, h_hu,
                                            spacing_zyx, min_dist_mm=MIN_GAP_DIST_MM, max_volume_mm3=max_volume)
    return out + accept(labels, pressed) if pressed.any() else out


@dataclass(frozen=True, eq=False)
class _Acceptance:
    """The last rules of :func:`_profile_split` on the structure's box: ``accept(labels,
    chosen)`` gives the deposits among the candidates ``chosen`` (per label 1..n) that face
    soft tissue and are not the cap of the bone's end, each its risen part
    (:func:`_risen_part`) with its own blur, and not a speck."""

    solid: np.ndarray
    dense: np.ndarray
    core: np.ndarray
    taken: np.ndarray
    residual: object  # BlurResidual: read on boxes
    own_max: object  # InPlanePeak: read on boxes
    h_hu: float
    voxel_mm3: float

    def __call__(self, labels: np.ndarray, chosen: np.ndarray) -> list[Piece]:
        solid, dense, core, taken, residual, own_max = (self.solid, self.dense, self.core, self.taken,
                                                         self.residual, self.own_max)
        out = []
        objects = ndi.find_objects(labels)
        face = ndi.generate_binary_structure(3, 1)
        for k in np.flatnonzero(chosen):
            sub = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in objects[k])
            res = residual[sub]
            piece = _risen_part(labels[sub] == k + 1, res, self.h_hu)
            shell = ndi.binary_dilation(piece, structure=face) & ~piece
            facing_tissue = int((shell & ~solid[sub]).sum())
            facing_bone = int((shell & solid[sub]).sum())
            if facing_tissue <= BUMP_MIN_TISSUE_RATIO * facing_bone:
                continue
            if _caps_bone(piece, solid[sub]):
                continue
            # The deposit's blur fringe above its own threshold, not the bone's; its maximum is
            # its own (in-plane) maximum, not the bone's edge that rises towards the bone.
            own_peak = piece & own_max[sub]
            piece |= shell & dense[sub] & ~core[sub] & ~taken[sub] & (res > 0)
            deposit = own_blur(sub, piece, dense, solid, res, own_peak)
            if deposit.sum() * self.voxel_mm3 < PROFILE_MIN_VOLUME_MM3:
                continue  # a speck on the bone's slope: its partial volume or noise, not a deposit
            out.append((sub, deposit))
        return out


def _risen_part(piece: np.ndarray, residual: np.ndarray, h_hu: float) -> np.ndarray:
    """The part of a candidate ``piece`` that is one deposit: its voxels ``h_hu`` or more above
    the profile that are 26-connected to its highest, and the layer of its voxels round them.
    A chain of voxels near the profile's level that joins it along the bone's edge (the
    edge's noise, on thick slices through the next slices) is not the deposit's."""
    risen = piece & (residual >= h_hu)
    if not risen.any():
        return piece
    parts, _ = ndi.label(risen, structure=_CUBE)
    top = np.unravel_index(int(np.argmax(np.where(risen, residual, -np.inf))), piece.shape)
    return piece & ndi.binary_dilation(parts == parts[top], structure=_CUBE)


def _caps_bone(piece: np.ndarray, solid: np.ndarray) -> bool:
    """Whether most of ``piece`` lies right above or below the rest of the bone's ``solid``
    (the next slice along z): the partial-volume cap of a bone's end (a vertebral body's
    endplate on the slice before the body starts), at an in-plane distance from the
    bone's core that the in-plane profile does not model. A deposit beside the bone lies
    beside it in its own slices; its own voxels in the next slice are not the bone."""
    rest = solid & ~piece
    below = np.zeros(piece.shape, bool)
    below[1:] |= rest[:-1]
    below[:-1] |= rest[1:]
    return int((piece & below).sum()) * 2 >= int(piece.sum())


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
                 merge_noise_tops: bool = False) -> list[Piece]:
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
    With ``merge_noise_tops``, small basins that noise split are merged first
    (:func:`calcinosis.anatomy.basins.merge_shallow_basins`): on a large bone, not on a rib piece, where every basin
    is small and faces soft tissue (merged, a deposit took in part of the rib)."""
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
    if merge_noise_tops:
        basins_c, counts = merge_shallow_basins(basins_c, counts, img_c, h_hu, max_volume / vv)  # some unused
    sizes = counts * vv
    facing_tissue, facing_other, pairs = _border_counts(basins_c, n, img_c)
    small = (sizes > 0) & (sizes <= max_volume)
    small[0] = False
    facing = facing_tissue > BUMP_MIN_TISSUE_RATIO * facing_other
    if threshold_hu is not None:
        facing |= _saddles(pairs, small, n) < threshold_hu + h_hu  # joined by the blur's fringe
    small &= facing
    if not small.any():
        return []
    # Peaks and saddles of the small basins only (no other can be a deposit).
    objects_c = ndi.find_objects(basins_c)
    prominence = np.zeros(n + 1)
    saddle = _saddles(pairs, small, n)
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
    opened = {k: _opened_on(solid, sub, spacing_zyx, OUTLINE_BALL_MM) for k, sub in subs.items()}
    # Share of each small basin outside that outline.
    outside = np.zeros(n + 1)
    for k, sub_c in subs_c.items():
        basin = basins_c[sub_c] == k
        outside[k] = 1.0 - (basin & opened[k]).sum() / max(int(counts[k]), 1)
    weak = small & (prominence < h_hu)
    accept = small & ((prominence >= h_hu) | (weak & (prominence >= h_weak) & (outside >= 0.5)))
    if not accept.any():
        return []
    taken_c = accept[basins_c]
    free = solid.copy()  # the structure less the accepted basins
    free[crop] &= ~taken_c
    out = []
    for k in np.flatnonzero(accept):
        sub, sub_c = subs[k], subs_c[k]
        basin = basins_c[sub_c] == k
        # The watershed line runs along the valley: the deposit's own blur on the bone side
        # of it, outside the bone's outline, still belongs to the deposit.
        fringe = ndi.binary_dilation(basin, structure=ndi.generate_binary_structure(3, 1))
        fringe &= solid[sub] & ~opened[k] & ~taken_c[sub_c]
        out.append((sub, own_blur(sub, basin | fringe, dense, free, img_c[sub_c], basin)))
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
    return tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box[0], mask.shape))


def _opened_on(solid: np.ndarray, sub: tuple[slice, ...], spacing_zyx, radius_mm: float) -> np.ndarray:
    """``open_mm(solid, ...)[sub]`` (by :func:`~calcinosis.anatomy.ball.open_ball`), computed
    on ``sub`` grown by twice the radius: the erosion reads voxels within one radius, the
    dilation the eroded ones within another."""
    grow = [int(np.ceil(2 * radius_mm / float(s))) + 1 for s in spacing_zyx]
    big = tuple(slice(max(s.start - g, 0), min(s.stop + g, n)) for s, g, n in zip(sub, grow, solid.shape))
    inner = tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(sub, big))
    return open_ball(solid[big], spacing_zyx, radius_mm)[inner]


def _border_counts(basins: np.ndarray, n: int, img: np.ndarray):
    """Per basin: face-neighbours outside the structure (tissue) and face-neighbours in
    another basin; and the face pairs between two basins, as (basin, the lower value of the
    pair) from each side, for :func:`_saddles`."""
    tissue = np.zeros(n + 1, np.int64)
    other = np.zeros(n + 1, np.int64)
    sides: list[np.ndarray] = []
    lows: list[np.ndarray] = []
    # On the flat arrays: a face pair along an axis is (i, i + stride), the stride of the
    # axis; pairs that would wrap round the end of a row or slice are left out. (Only pairs
    # across a border are read out, by index: one pass over the grid per axis.)
    flat = np.ascontiguousarray(basins).ravel()
    values = np.ascontiguousarray(img).ravel()
    size = flat.size
    diff_full = np.zeros(size, bool)
    for axis in range(basins.ndim):
        stride = int(np.prod(basins.shape[axis + 1:], dtype=np.int64))
        if basins.shape[axis] < 2:
            continue
        diff = diff_full[:size - stride]
        np.not_equal(flat[:-stride], flat[stride:], out=diff)
        diff_full[size - stride:] = False
        # Pairs from the last position along the axis wrap to the next row: not faces.
        diff_full.reshape(basins.shape)[(slice(None),) * axis + (-1,)] = False
        at = np.flatnonzero(diff)
        a, b = flat[at], flat[at + stride]
        low = np.minimum(values[at], values[at + stride])
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
