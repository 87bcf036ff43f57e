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
   (:mod:`calcinosis.anatomy.valley`.) A dense deposit whose basin took in the piece of bone
   beside it (that bone having no maximum of its own) is the core above the level where the
   bone's shoulder joins it, in a basin not taken or in a piece rejected as bone
   (:mod:`calcinosis.anatomy.shoulder`).
2. Not yet: a deposit lying flush on the bone has no valley. Shaving bumps off the
   bone's outline with an opening finds them, but also the caps of vertebral
   processes (tried, many false deposits on the trunk phantom); such deposits stay
   in the bone for now.
3. On thick slices, a deposit hidden in the bone's blur rises above the bone's
   profile of intensity against distance from its core (:func:`_profile_split`); a piece
   lying mostly right above or below the bone in the next slice is the partial-volume cap
   of the bone's end (a vertebral endplate), not a deposit (:func:`_caps_bone`). A dense
   deposit in a notch of the bone whose middle the core took in takes it back where the raw
   HU show it as a dome of its own (:meth:`_Acceptance._with_hidden_dome`).

4. A deposit below cortical density pressed on the bone, broad enough to hold the outline's
   ball or filling a notch, is part of the bone's core for 3; its voxels lie deep in the
   structure (in-plane) below cortical density and face soft tissue more than the bone,
   where a bone has only marrow, which faces its cortex (:func:`_plateau_split`). Pieces from 1, 3 and 4 that touch
   and are joined above half their height are one deposit (:func:`merge_touching`).
5. A small dense deposit on the cortex whose valley the smoothing filled (a peak of a few
   voxels) still rises above the gap in the raw HU by several times the noise; with the raw
   HU given, such peaks near soft tissue are cut from the bone
   (:mod:`calcinosis.anatomy.raw_peak`) and merged like 4's.

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
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from calcinosis.anatomy.basins import faces_tissue, saddle_between, shell
from calcinosis.anatomy.bone_bumps import bone_end_caps, over_next_slice, pressed_candidates
from calcinosis.anatomy.bone_profile import BlurProfile, InPlanePeak, blur_profile, per_label_max
from calcinosis.anatomy.disk import core_in_plane, erode_disk
from calcinosis.anatomy.morphology import fill_holes_in_plane, grow, grow_box, grow_one
from calcinosis.anatomy.own_blur import own_blur
from calcinosis.anatomy.raw_peak import raw_peak_pieces, raw_peak_start
from calcinosis.anatomy.shoulder import shoulder_piece
from calcinosis.anatomy.valley import OUTLINE_BALL_MM, Piece, label_26, opened_on, valley_split
from calcinosis.threads import SMALL_FOR_THREADS, n_threads

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
# ... and holds at least this many voxels: one voxel above the profile is the bone edge's
# partial volume or noise whatever its size (on 1 x 1 x 2.5 mm voxels, 2.5 mm3 each, single
# voxels of the femur's and the spine's edge, 136-170 HU, were reported: three in one scan).
PROFILE_MIN_VOXELS = 2
# On slices thinner than this (mm), a piece without an in-plane maximum of its own that rises
# this many times ``h`` above the bone's profile is a deposit pressed against the bone.
THIN_SLICE_MM = 2.5
STRONG_RESIDUAL_H = 3.0
# A closed shell of bone round at least this much soft tissue (mm^2) in one slice is a skull
# (a brain in cross-section; the rib cage holds lung, and the pelvic ring is open at the
# symphysis).
SKULL_MIN_ENCLOSED_MM2 = 4000.0
SKULL_CONTENT_HU = (-50.0, 100.0)

_CUBE = np.ones((3, 3, 3), bool)
# A deposit's voxels above the profile lie within this many voxels of its top half: its
# blur falls from half its height to the profile's level within a voxel or two.
RISEN_REACH_VOXELS = 1
# Pieces split off at valleys that touch are lobes of one deposit when their saddle stands
# this share of the way from the threshold to the lower peak (lobes: 0.79-0.85; a deposit
# 1 mm from a piece of bone split off with it on 3 mm slices: 0.40).
MERGE_MIN_SADDLE_SHARE = 0.5
# A candidate above the profile is judged as at most this many deposits (see _Acceptance).
MAX_PIECES_PER_CANDIDATE = 4
# A deposit below cortical density pressed on the bone is a plateau: its voxels lie this deep
# (mm, in-plane) in the structure without reaching cortical density; the bone's own rim of
# partial volume is a millimetre thick.
PLATEAU_MIN_DEPTH_MM = 1.5
# A deposit found above the bone's profile takes back its dense middle from the bone's core
# within this many voxels of it, in-plane (see _Acceptance._with_hidden_dome).
DOME_REACH_VOXELS = 3


def is_speck(n_voxels: int, voxel_mm3: float) -> bool:
    """Whether a piece of ``n_voxels`` found beside a bone is a speck of its partial volume or
    noise, not a deposit (``PROFILE_MIN_VOLUME_MM3``, ``PROFILE_MIN_VOXELS``)."""
    return n_voxels < PROFILE_MIN_VOXELS or n_voxels * voxel_mm3 < PROFILE_MIN_VOLUME_MM3


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
    raw_hu: np.ndarray | None = None,
    raw_h_hu: float | None = None,
    at_scan_end: Callable[[tuple[slice, ...], np.ndarray], bool] | None = None,
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
    raw_hu, raw_h_hu : array and float, optional
        Raw HU on the same box and a rise (HU, several times the raw noise): with
        ``threshold_hu``, small dense deposits on the bone whose valley the smoothing
        filled are looked for at the raw peaks that rise ``raw_h_hu`` above their
        valley (:mod:`calcinosis.anatomy.raw_peak`).
    at_scan_end : callable, optional
        ``at_scan_end(sub, piece)`` is True when a piece reaches the scan's first or last
        slice. Such a piece (a bone's end cut by the scan, split off at a valley) is
        excluded later as cut by the scan's edge; a whole deposit touching it is not merged
        into it (:func:`merge_touching`'s ``apart``), which would lose the deposit with it.
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
        # The raw peaks' screen reads no piece taken (raw_peak.raw_peak_start): made after the
        # blur profile in the same thread, which is done long before the flooding is.
        with_peaks = threshold_hu is not None and raw_hu is not None and raw_h_hu is not None
        peak_start = (pool.submit(raw_peak_start, dense, raw_hu, spacing_zyx, raw_h_hu, threshold_hu).result
                      if pool and with_peaks else None)
        for sub, basin in valley_split(solid, dense, smooth_hu, spacing_zyx, h_hu, max_deposit_volume_mm3,
                                       threshold_hu=threshold_hu, merge_noise_tops=True, shoulders=True):
            if is_bone_piece is not None and is_bone_piece(sub, basin & dense[sub]) and \
                    not apart_and_solid(sub, basin & dense[sub], solid, smooth_hu, spacing_zyx, threshold_hu,
                                        raw_hu):
                # A dense deposit may sit on the shoulder of the piece of bone its basin took in.
                basin = _shoulder_of_piece(sub, basin, solid, smooth_hu, spacing_zyx, h_hu, threshold_hu,
                                           max_deposit_volume_mm3)
                if basin is None or is_bone_piece(sub, basin & dense[sub]):
                    continue
            deposits.append((sub, basin & dense[sub]))
            bone[sub] &= ~basin
            taken[sub] |= basin
        # Deposits that touch each other and are joined above half their height are one, as one
        # component of their own would be: a deposit in two lobes with a valley deeper than h
        # between them (a 5.2 mm 943 HU deposit 1.5 mm from the elbow's bone, 25 HU noise on
        # 2 mm slices) gave two lesions.
        max_voxels = max_deposit_volume_mm3 / float(np.prod(spacing_zyx))
        deposits = merge_touching(deposits, max_voxels, image=smooth_hu, floor=threshold_hu, apart=at_scan_end)
        for sub, piece in _profile_split(solid, dense, smooth_hu, spacing_zyx, h_hu,
                                         max_deposit_volume_mm3, taken, blur=blur, raw_hu=raw_hu,
                                         raw_h_hu=raw_h_hu):
            deposits.append((sub, piece))
            bone[sub] &= ~piece
            taken[sub] |= piece
        if threshold_hu is not None:
            plateaus = _plateau_split(solid, dense, smooth_hu, spacing_zyx, h_hu, max_deposit_volume_mm3, taken,
                                      threshold_hu)
            for sub, piece in plateaus:
                bone[sub] &= ~piece
                taken[sub] |= piece
            if plateaus:
                # A plateau may be the rest of a deposit the steps before took in part.
                deposits = merge_touching(deposits + plateaus, max_voxels, image=smooth_hu, floor=threshold_hu,
                                          apart=at_scan_end)
            if raw_hu is not None and raw_h_hu is not None:
                peaks = raw_peak_pieces(dense, raw_hu, taken, spacing_zyx, raw_h_hu, threshold_hu, max_voxels,
                                        start=peak_start() if peak_start else None)
                # A raw peak of the cortex itself (textured bone) stays bone.
                peaks = [(sub, piece) for sub, piece in peaks
                         if not _cortex_arc(sub, piece, solid, dense, smooth_hu, spacing_zyx, threshold_hu + h_hu)]
                for sub, piece in peaks:
                    bone[sub] &= ~piece
                if peaks:
                    # A raw peak may be the top of a deposit a step before took in part.
                    deposits = merge_touching(deposits + peaks, max_voxels, image=smooth_hu, floor=threshold_hu,
                                              apart=at_scan_end)
    return BoneSplit(bone, tuple(deposits))


# A valley piece taken for bone round marrow lies at least this share outside the bone's
# outline smoothed by the outline ball when it is too thin to hold marrow (see
# :func:`apart_and_solid`).
APART_MIN_OUTSIDE = 0.9
# Depth (mm, in-plane) below which the core of a possible bone piece starts (the hollow test,
# :func:`calcinosis.detect.candidates.is_hollow`, and :func:`apart_and_solid`).
HOLLOW_CORE_DEPTH_MM = 2.0


def apart_and_solid(sub, piece, solid, smooth_hu, spacing_zyx, floor_hu, raw_hu=None) -> bool:
    """Whether a valley piece that the caller's hollow test took for a piece of bone is a
    deposit after all: it lies wholly outside the bone's outline smoothed by an opening with
    the ``OUTLINE_BALL_MM`` ball (at least ``APART_MIN_OUTSIDE`` of it: too thin to hold
    marrow, which a piece of bone cut across by the slices does), and each of its slices is
    densest in its core (the part ``HOLLOW_CORE_DEPTH_MM`` deep in-plane), by the hollow test's
    rule read slice by slice on the smoothed image. On thick slices a deposit's slice that
    the slice boundary cuts is dimmer throughout, and read against the whole piece its core
    looked like marrow (a 5.1 mm 463 HU deposit 1.3 mm from the femur on two 3 mm slices:
    core 260-320 HU in the dim slice, 477 in the bright one); a piece of bone beside a
    deposit lies inside the outline (a 5 mm deposit's basin that took in 190 voxels of a
    bone's end: 25 % outside).

    With ``raw_hu`` (raw HU on the box of ``smooth_hu``), a piece whose core is marrow in
    the raw image, by the same rule, in more than half of its core's slices is bone: a
    finger's phalanx (5-7 mm across) is thinner than the outline's ball, and the smoothing
    blurs its cortex over its marrow (a little finger's middle phalanx, parted from the
    proximal one at the joint, was reported as a 714 mm3 deposit)."""
    if floor_hu is None or not piece.any():
        return False
    opened = opened_on(solid, sub, spacing_zyx, OUTLINE_BALL_MM)
    if int((piece & ~opened).sum()) < APART_MIN_OUTSIDE * int(piece.sum()):
        return False
    core = core_in_plane(fill_holes_in_plane(piece), spacing_zyx, HOLLOW_CORE_DEPTH_MM)
    img = smooth_hu[sub]
    core_slices = np.flatnonzero(core.any(axis=(1, 2)))
    for z in core_slices:
        if marrow_in_core(img[z], piece[z], core[z], floor_hu):
            return False
    if raw_hu is not None and core_slices.size:
        raw = raw_hu[sub]
        marrow = sum(marrow_in_core(raw[z], piece[z], core[z], floor_hu) for z in core_slices)
        if marrow > 0.5 * core_slices.size:
            return False
    return True


def marrow_in_core(img: np.ndarray, piece: np.ndarray, core: np.ndarray, floor_hu: float) -> bool:
    """The hollow test's rule (on one slice, or a whole piece in
    :func:`calcinosis.detect.candidates.is_hollow`): the core's median below the midpoint
    between ``floor_hu`` and the piece's 90th percentile."""
    p90 = float(np.percentile(img[piece], 90))
    return float(np.median(img[core])) < floor_hu + 0.5 * (p90 - floor_hu)


# A raw-peak piece lies on the bone's outline when less than this share of it is outside the
# outline smoothed by the ``OUTLINE_BALL_MM`` ball (:func:`_cortex_arc`).
ARC_MAX_OUTSIDE = 0.5


def _cortex_arc(sub, piece, solid, dense, smooth_hu, spacing_zyx, cortex_hu: float) -> bool:
    """Whether a raw-peak piece (on ``sub`` of the structure's box) is an arc of the bone's
    own cortex: it lies on the bone's outline smoothed by the ``OUTLINE_BALL_MM`` ball (less
    than ``ARC_MAX_OUTSIDE`` of it outside) and joins the rest of the dense voxels through
    voxels of at least ``cortex_hu`` (the threshold and a valley depth); and it faces the
    outside of the bone's outline (not only a hole in it, such as the spinal canal, which the
    outline fills: a deposit there is in soft tissue). Textured bone (real
    bone's density varies by hundreds of HU) gives its cortex raw peaks that rise far above
    their valleys (a 222-voxel arc of a vertebral body's rim, 1 mm slices). The deposits the
    raw-peak step is for lie just off the bone, their gap just above the threshold."""
    window = grow_box(sub, (1,) * piece.ndim, solid.shape)
    inner = tuple(slice(s.start - w.start, s.stop - w.start) for s, w in zip(sub, window))
    own = np.zeros(tuple(w.stop - w.start for w in window), bool)
    own[inner] = piece
    if not (grow_one(own) & ~solid[window]).any():
        return False  # in a hole of the bone's outline (the spinal canal), not on its rim
    opened = opened_on(solid, sub, spacing_zyx, OUTLINE_BALL_MM)
    if int((piece & ~opened).sum()) >= ARC_MAX_OUTSIDE * int(piece.sum()):
        return False
    return saddle_between(own, dense[window] & ~own, smooth_hu[window]) >= cortex_hu


def _shoulder_of_piece(sub, basin, solid, smooth_hu, spacing_zyx, h_hu, threshold_hu, max_volume) -> np.ndarray | None:
    """The deposit on the shoulder of a valley piece that is a piece of bone
    (:func:`calcinosis.anatomy.shoulder.shoulder_piece`, the rest of the structure as the
    other basins), or None."""
    if threshold_hu is None:
        return None
    return shoulder_piece(basin, smooth_hu[sub], solid[sub], solid[sub] & ~basin, h_hu, threshold_hu,
                          max_volume / float(np.prod(spacing_zyx)), spacing_zyx)


def _plateau_split(solid, dense, smooth_hu, spacing_zyx, h_hu, max_volume, taken, threshold_hu) -> list[Piece]:
    """Deposits below cortical density pressed on the bone with no valley and no rise above
    the bone's blur: a faint deposit broad enough to hold the outline's ball, or one that
    fills a notch of the bone, is part of the bone's core for :func:`_profile_split`. Its
    dense voxels lie deep in the structure (``PLATEAU_MIN_DEPTH_MM`` from soft tissue,
    in-plane) below ``CORE_HU``, where a bone has only marrow (a vertebra's marrow is larger
    than any deposit; a small bone's faces the cortex all round) and a canal it rings (below
    the threshold: a hole filled in the structure, not dense). The deposit is that deep part
    with the dense voxels round it below cortical density; it must face soft tissue more than
    the bone (not marrow, nor a joint space between two bones) and not cap the bone's end
    (:func:`_caps_bone`)."""
    vv = float(np.prod(spacing_zyx))
    deep = erode_disk(solid, spacing_zyx[1:], PLATEAU_MIN_DEPTH_MM, strict=True)
    deep &= smooth_hu < CORE_HU
    deep &= dense
    deep &= ~taken
    labels, n = label_26(deep)
    if n == 0:
        return []
    stats = cc3d.statistics(labels)  # voxel counts and boxes in one pass
    sizes = stats["voxel_counts"].astype(float) * vv
    out = []
    for k in range(1, n + 1):
        if sizes[k] > max_volume or sizes[k] == 0:
            continue  # marrow open to soft tissue at a bone's end, not a deposit
        box = stats["bounding_boxes"][k]
        sub = grow_box(box, (2, 2, 2), solid.shape)
        core_k = labels[sub] == k
        hu = smooth_hu[sub]
        if float(np.median(hu[core_k])) < threshold_hu + h_hu:
            continue
        inter = dense[sub] & (hu < CORE_HU) & ~taken[sub]
        piece = core_k
        for _ in range(2):
            piece = (grow(piece) & inter) | core_k
        # The bone beside it: the structure less this piece and the deposits split off before
        # (a plateau may be the rest of a deposit the blur profile took in part).
        bone_k = solid[sub] & ~piece & ~taken[sub]
        if _caps_bone(piece, bone_k):
            continue
        if not faces_tissue(shell(piece), solid[sub], bone_k):
            continue  # between two bones (a joint space) or in a notch: faces the bone broadly
        if is_speck(int(piece.sum()), vv) or piece.sum() * vv > max_volume:
            continue
        out.append((sub, piece))
    return out


def merge_touching(pieces: list[Piece], max_voxels: float, *, image: np.ndarray | None = None,
                   floor: float | None = None,
                   apart: Callable[[tuple[slice, ...], np.ndarray], bool] | None = None) -> list[Piece]:
    """``pieces`` (box, mask on it; boxes on one grid) with those that share a face
    merged into one, in the place of the first of them, as long as the merged piece holds
    no more than ``max_voxels``. With ``image`` (on the same grid) and ``floor`` (the
    threshold): only pieces joined above half their height merge, their saddle (the
    highest value along their shared faces) at least half way from ``floor`` to the lower
    of their two peaks: the lobes of one deposit (a notch of it, filled by the blur), not a
    deposit and a piece of the bone beside it behind a gap. With ``apart``, two pieces for
    which it differs do not merge (a piece cut by the scan's end and a whole one)."""
    out: list[Piece] = []
    # Each piece's box as [start, end) per axis (from its mask's extent), kept beside ``out``:
    # only pieces whose boxes meet or abut can share a face (what _touch reads first), so the
    # scan looks at those alone, in the same order (hundreds of pieces split off real bone
    # made the scan of every pair the longest step of a thin-slice chest CT's analysis).
    starts = np.zeros((0, 3), np.int64)
    ends = np.zeros((0, 3), np.int64)
    # Pairs found apart (by their masks' identity; the masks are kept alive with the answer, so
    # no identity is reused): a scan after a merge asks again only about the merged piece.
    apart_pairs: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for piece in pieces:
        out.append(piece)
        first = np.array([s.start for s in piece[0]], np.int64)
        starts = np.vstack([starts, first])
        ends = np.vstack([ends, first + np.array(piece[1].shape, np.int64)])
        i = len(out) - 1
        merged = True
        while merged:
            merged = False
            near = np.flatnonzero(np.all(starts <= ends[i], axis=1) & np.all(starts[i] <= ends, axis=1))
            for k in near:
                k = int(k)
                if k == i:
                    continue
                key = (id(out[k][1]), id(out[i][1]))
                if key in apart_pairs:
                    continue
                if _touch(out[k], out[i], max_voxels, image, floor) and \
                        (apart is None or apart(*out[k]) == apart(*out[i])):
                    a, b = min(k, i), max(k, i)
                    union = _union(out[a], out[b])
                    out[a] = (union, _on(union, *out[a]) | _on(union, *out[b]))
                    starts[a] = [s.start for s in union]
                    ends[a] = [s.stop for s in union]
                    out.pop(b)
                    starts = np.delete(starts, b, axis=0)
                    ends = np.delete(ends, b, axis=0)
                    i, merged = a, True
                    break
                apart_pairs[key] = (out[k][1], out[i][1])
    return out


def _touch(first: Piece, second: Piece, max_voxels: float, image: np.ndarray | None = None,
           floor: float | None = None) -> bool:
    """Whether two pieces share a face and hold no more than ``max_voxels`` together (and,
    with ``image`` and ``floor``, are joined above half their height)."""
    (sub, mask), (other_sub, other) = first, second
    if not all(a.start <= b.start + m and b.start <= a.start + n
               for a, b, n, m in zip(sub, other_sub, mask.shape, other.shape)):
        return False
    if int(mask.sum()) + int(other.sum()) > max_voxels:
        return False
    if not _share_face(first, second):
        return False
    if image is None or floor is None:
        return True
    union = _union(first, second)
    one, two = _on(union, sub, mask), _on(union, other_sub, other)
    img = image[union]
    saddle = saddle_between(one, two, img)
    return saddle - floor >= MERGE_MIN_SADDLE_SHARE * (min(float(img[one].max()), float(img[two].max())) - floor)


# A voxel and its face neighbours: the offsets at which two pieces' voxels share a face (or
# the voxel itself, where they overlap).
_FACE_STEPS = ((0, 0, 0), (-1, 0, 0), (1, 0, 0), (0, -1, 0), (0, 1, 0), (0, 0, -1), (0, 0, 1))


def _share_face(first: Piece, second: Piece) -> bool:
    """Whether a voxel of one piece is a face neighbour of (or is) a voxel of the other: the
    dilation test ``binary_dilation(one, face) & two`` on their union box, read only where the
    two boxes meet (for each face step, the overlap of the first box so shifted and the
    second)."""
    (sub, mask), (other_sub, other) = first, second
    for step in _FACE_STEPS:
        lo = [max(a.start + d, b.start) for a, b, d in zip(sub, other_sub, step)]
        hi = [min(a.start + n + d, b.start + m) for a, b, d, n, m in zip(sub, other_sub, step, mask.shape, other.shape)]
        if any(l >= h for l, h in zip(lo, hi)):
            continue
        one = mask[tuple(slice(l - d - a.start, h - d - a.start) for l, h, d, a in zip(lo, hi, step, sub))]
        two = other[tuple(slice(l - b.start, h - b.start) for l, h, b in zip(lo, hi, other_sub))]
        if np.logical_and(one, two).any():
            return True
    return False


def _union(first: Piece, second: Piece) -> tuple[slice, ...]:
    """The box holding both pieces (from their masks' extent)."""
    return tuple(slice(min(a.start, b.start), max(a.start + n, b.start + m))
                 for a, b, n, m in zip(first[0], second[0], first[1].shape, second[1].shape))


def _on(box: tuple[slice, ...], sub: tuple[slice, ...], mask: np.ndarray) -> np.ndarray:
    """``mask`` (on ``sub``, which may run past the grid's end: the mask is what lies on it)
    on the larger ``box``."""
    out = np.zeros(tuple(b.stop - b.start for b in box), bool)
    out[tuple(slice(s.start - b.start, s.start - b.start + n) for s, b, n in zip(sub, box, mask.shape))] = mask
    return out


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
                   blur: Callable[[], BlurProfile | None] | None = None, raw_hu=None,
                   raw_h_hu: float | None = None) -> list[Piece]:
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
    With ``raw_hu`` (raw HU on the same box) and ``raw_h_hu``, each deposit takes back its
    dense middle where the core took it in (:meth:`_Acceptance._with_hidden_dome`).
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
    accept = _Acceptance(solid, dense, core, taken, residual, own_max, h_hu, vv, dist,
                         spacing_zyx[0] < THIN_SLICE_MM, blur.outline, raw_hu, raw_h_hu)
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
    dist: np.ndarray  # distance from the bone's core (mm)
    thin: bool  # slices thinner than THIN_SLICE_MM
    outline: np.ndarray  # the bone's outline opened with the ball (its ends: bone_end_caps)
    raw_hu: np.ndarray | None  # raw HU on the structure's box (the hidden dome), or None
    raw_h_hu: float | None  # a raw peak's rise (HU) above its valley

    def __call__(self, labels: np.ndarray, chosen: np.ndarray) -> list[Piece]:
        out = []
        objects = ndi.find_objects(labels)
        for k in np.flatnonzero(chosen):
            sub = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in objects[k])
            res = self.residual[sub]
            rest = labels[sub] == k + 1
            piece = _risen_part(rest, res, self.h_hu)
            tops = None
            for _ in range(MAX_PIECES_PER_CANDIDATE):
                deposit = self._judge(sub, piece, res)
                if deposit is not None:
                    out.append(self._with_hidden_dome(sub, deposit))
                # A candidate may hold more than one deposit, joined by a thin strip of the
                # bone's edge: the risen part of its highest leaves the others in the rest,
                # each judged on the risen part of its own highest.
                if not (rest & ~piece & (res >= self.h_hu)).any():
                    break  # nothing risen beside it (the usual case)
                rest &= ~grow(piece, corners=True)
                if tops is None:
                    tops = self._tops(sub, res)
                if not (rest & tops).any():
                    break
                piece = _risen_part(rest, res, self.h_hu, tops=tops)
        return out

    def _with_hidden_dome(self, sub: tuple[slice, ...], deposit: np.ndarray) -> Piece:
        """``deposit`` (on ``sub``) with its dense middle where the bone's core took it in: the
        voxels of the core within ``DOME_REACH_VOXELS`` of it (in-plane; one slice along z)
        that a flooding of the raw HU from the deposit reaches before one from the rest of
        the core (a dome of its own in the raw HU, parted from the cortex by a valley).

        A dense deposit in a notch of the bone rises straight into the cortex once smoothed
        (its middle counts as the bone's core, by density and by the outline's opening), and
        the profile split finds only its fringe on the soft-tissue side (a 2.5 mm 854 HU
        deposit 0.46 mm from the femur: 0.62-0.77 of its volume at every noise and slice
        setting). Unsmoothed, its middle stands apart: about 750 HU, the gap about 480, the
        cortex over 1000. Where the deposit's middle is not hidden, or the bone rises
        without a valley, the core's flooding reaches first and nothing is added.

        What the flooding reaches is the deposit's only when it is its densest part (its raw
        maximum above the deposit's), standing a raw peak's rise (``raw_h_hu``) above the
        valley to the rest of the core, and smaller than half the deposit found: the dense
        middle beside the bone is less than the fringe round it on the soft-tissue side (the
        phantom's notch deposits gained 0.17-0.4 of what showed). On real bone the
        flooding otherwise runs into the bone's own edge and texture (on thin-slice stand-ins
        of the real chest CTs, up to 1.7 times the piece, and one rib piece more reported).
        Without the raw HU, ``deposit`` itself."""
        if self.raw_hu is None or self.raw_h_hu is None:
            return sub, deposit
        big = grow_box(sub, (1, DOME_REACH_VOXELS, DOME_REACH_VOXELS), self.solid.shape)
        inner = tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(sub, big))
        own = np.zeros(tuple(b.stop - b.start for b in big), bool)
        own[inner] = deposit
        core = self.core[big] & self.dense[big] & ~self.taken[big] & ~own
        near = core & grow(grow(own, DOME_REACH_VOXELS, corners=True, axes=(1, 2)), corners=True, axes=(0,))
        beyond = core & ~near
        if not near.any() or not beyond.any():
            return sub, deposit
        raw = self.raw_hu[big]
        markers = own.astype(np.int32) + 2 * beyond
        basins = watershed(-raw.astype(np.float32), markers, mask=own | core)
        gained = (basins == 1) & near
        if not gained.any() or 2 * int(gained.sum()) > int(own.sum()):
            return sub, deposit
        top = float(raw[gained].max())
        if top <= float(raw[own].max()) or \
                top - saddle_between(own | gained, core & ~gained, raw) < self.raw_h_hu:
            return sub, deposit
        return big, own | gained

    def _tops(self, sub: tuple[slice, ...], res: np.ndarray) -> np.ndarray:
        """Voxels on ``sub`` that may be a deposit's highest, by the rules that chose the
        candidates: ``h_hu`` above the profile at an in-plane maximum of their own (on thin
        slices also ``STRONG_RESIDUAL_H * h_hu`` above it without one), at least
        ``MIN_GAP_DIST_MM`` from the bone's core."""
        high = (res >= self.h_hu) & self.own_max[sub]
        if self.thin:
            high |= res >= STRONG_RESIDUAL_H * self.h_hu
        return high & (self.dist[sub] >= MIN_GAP_DIST_MM)

    def _judge(self, sub: tuple[slice, ...], piece: np.ndarray, res: np.ndarray) -> np.ndarray | None:
        """The deposit that ``piece`` (on ``sub``) is, with its own blur; None when it does not
        face soft tissue, caps the bone's end, or is a speck."""
        solid = self.solid[sub]
        piece_shell = shell(piece)
        if not faces_tissue(piece_shell, solid, solid):
            # A deposit flush on the bone may face it as much as soft tissue only through a
            # strip of the bone's edge joined to it: judged without that strip. (Not every
            # piece is stripped: on a real spine the strip along a spinous process leads to its
            # tip, which stripped of it stands as compact as a deposit.)
            piece = _off_the_edge_strip(piece, res)
            if piece is None:
                return None
            piece_shell = shell(piece)
            if not faces_tissue(piece_shell, solid, solid):  # the strip's voxels count as bone
                return None
        if _caps_bone(piece, solid):
            return None
        # A candidate may have risen above the profile at the bone's end (a slice that cuts
        # it: its partial volume, :func:`bone_end_caps`) and taken in a deposit beside it:
        # the deposit is what rises apart from that end, without the end's voxels (a 2.7 mm
        # deposit on the elbow's joint face on 2 mm slices took a strip of the bone's last
        # slice, 1.5-1.9 mm off its centroid and 1.5x its volume). The end's voxels are the
        # deposit's own when the candidate rises most apart from them.
        ends = bone_end_caps(self.outline[sub])
        off_ends = np.ones(piece.shape, bool)
        caps = piece & ends
        if caps.any() and (piece & ~caps).any():
            rest = piece & ~caps
            top = np.unravel_index(int(np.argmax(np.where(rest, res, -np.inf))), rest.shape)
            if res[caps].max() > res[top]:
                if res[top] < self.h_hu:
                    return None  # nothing rises apart from the bone's end
                parts, _ = ndi.label(rest, structure=_CUBE)
                piece = parts == parts[top]
                piece_shell = shell(piece)
                off_ends = ~ends
        # The deposit's blur fringe above its own threshold, not the bone's; its maximum is
        # its own (in-plane) maximum, not the bone's edge that rises towards the bone.
        own_peak = piece & self.own_max[sub]
        grown = piece | (piece_shell & self.dense[sub] & ~self.core[sub] & ~self.taken[sub] & (res > 0) & off_ends)
        deposit = own_blur(sub, grown, self.dense, self.solid, res, own_peak)
        if is_speck(int(deposit.sum()), self.voxel_mm3):
            return None  # a speck on the bone's slope: its partial volume or noise, not a deposit
        return deposit


def _off_the_edge_strip(piece: np.ndarray, residual: np.ndarray) -> np.ndarray | None:
    """The part of a risen ``piece`` that stands off a strip of the bone's edge joined to it, or
    None when nothing of the piece lies beyond that part's rim.

    On thin slices the bone's oblique edge is a staircase whose outermost voxels rise above
    the blur profile about as much as a deposit flush on it (the profile is read against the
    distance from the opened outline, which rounds the steps off): a deposit 0.36 mm from the
    elbow's cortex (2.7 mm, 411 HU; 295 HU above the profile, 0.6 mm slices) was joined by
    such a strip one voxel thick (130-290 HU above it) along 20 voxels of the edge, and the
    piece faced soft tissue on 1.5 times as many faces as the bone: not a deposit. Without
    the strip it faces soft tissue 2.5 times as much. The deposit is the part of the piece
    that holds an in-plane cross (a voxel and its four in-plane neighbours: the strip, one
    voxel thick, holds none) joined to the highest such voxel, with the piece's voxels next
    to it (its rim, which the opening drops)."""
    cross = np.zeros((1, 3, 3), bool)
    cross[0, 1, :] = cross[0, :, 1] = True
    thick = ndi.binary_opening(piece, structure=cross)
    if not thick.any():
        return None
    parts, _ = ndi.label(thick, structure=_CUBE)
    top = np.unravel_index(int(np.argmax(np.where(thick, residual, -np.inf))), piece.shape)
    part = piece & grow(parts == parts[top], corners=True)
    return None if int(part.sum()) == int(piece.sum()) else part


def _risen_part(piece: np.ndarray, residual: np.ndarray, h_hu: float, tops: np.ndarray | None = None) -> np.ndarray:
    """The part of a candidate ``piece`` that is one deposit: its voxels ``h_hu`` or more above
    the profile that are 26-connected to its highest and lie within ``RISEN_REACH_VOXELS`` of
    its top half (its voxels at or above half the highest's rise, 26-connected to it), and
    the layer of its voxels round them. A chain of voxels near the profile's level that joins
    it along the bone's edge (the edge's noise, on thick slices through the next slices) is
    not the deposit's, nor is a strip of the bone's edge that the profile misses by ``h_hu``
    or a little more (a 2.6 mm deposit 0.4 mm from the elbow's bone on 1.25 mm slices took
    in 19 slices of such a strip, ~220 HU, and with it the scan's first slice). With
    ``tops``, its highest is the highest of its voxels there (one of them must be risen)."""
    risen = piece & (residual >= h_hu)
    if not risen.any():
        return piece
    parts, _ = ndi.label(risen, structure=_CUBE)
    may_top = risen if tops is None else risen & tops
    top = np.unravel_index(int(np.argmax(np.where(may_top, residual, -np.inf))), piece.shape)
    own = parts == parts[top]
    halves, _ = ndi.label(own & (residual >= 0.5 * float(residual[top])), structure=_CUBE)
    near_top = grow(halves == halves[top], RISEN_REACH_VOXELS, corners=True)
    return piece & grow(own & near_top, corners=True)


def _caps_bone(piece: np.ndarray, solid: np.ndarray) -> bool:
    """Whether most of ``piece`` lies right above or below the rest of the bone's ``solid``
    (the next slice along z): the partial-volume cap of a bone's end (a vertebral body's
    endplate on the slice before the body starts), at an in-plane distance from the
    bone's core that the in-plane profile does not model. A deposit beside the bone lies
    beside it in its own slices; its own voxels in the next slice are not the bone."""
    return int((piece & over_next_slice(solid & ~piece)).sum()) * 2 >= int(piece.sum())
