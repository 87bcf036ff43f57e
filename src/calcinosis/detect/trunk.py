"""Findings of the trunk that are not calcinosis, or not in the soft tissues of the wall.

Inside the body cavity a calcification is vascular (a thin curved plaque in the wall
of the aorta or another large vessel) or visceral (organs, bowel content, lymph
nodes). On the rib cage a dense piece in muscle is a rib cut across by the slices
or calcified costal cartilage: skeletal, excluded as ``rib_cage``; in the front of
the chest wall, one set in tissue denser than muscle is calcified costal cartilage,
excluded as ``costal_cartilage``. Deposits of the skin and the subcutaneous fat keep their compartment;
a deposit in fat that is not the fat under the skin (on its slice the fat round it does not
join the fat within ``SUPERFICIAL_FAT_MM`` of the skin) lies in the trunk's deep fat, beside
the spine or behind the crura, where the cavity model stops: visceral.
Anywhere in the body, a finding in a bone's marrow cavity is bone, and a rod- or plate-shaped
piece that the bone split parted from a bone is a piece of the bone (``bone_piece``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np
from scipy import ndimage as ndi

from calcinosis.anatomy.bone import SKULL_MIN_ENCLOSED_MM2
from calcinosis.anatomy.cavity import FAT_HU, Cavity
from calcinosis.anatomy.morphology import distance_inside_mm, distance_outside_mm, fill_holes_2d
from calcinosis.detect.candidates import Excluded
from calcinosis.detect.dense_tissue import is_dense_soft_tissue
from calcinosis.measure.lesion import FAT_MAX_HU, Lesion, farthest_pair

TRUNK_REGIONS = ("chest", "abdomen", "pelvis")
# A vessel-wall plaque is a shell: no point of it deeper than this (mm) inside it ...
PLAQUE_MAX_HALF_THICKNESS_MM = 2.5
PLAQUE_MAX_COMPACTNESS = 0.15
# ... and at least this long.
PLAQUE_MIN_LENGTH_MM = 5.0
# Beside the vertebral body, outside the cavity, a plaque is at least this long (mm): noise
# fringes stretch a small deposit in the psoas to a thin shell's shape (a 3.4 mm deposit on
# 3 mm slices at 30 HU: 9.3 mm long, compactness 0.14); the real abdominal CT's aortic plaque
# lying on the vertebral body is 14 mm long.
PLAQUE_BESIDE_SPINE_MIN_LENGTH_MM = 12.0
SOFT_WALL = ("cutaneous", "subcutaneous")
# Slices thicker than this (mm) cut ribs into separate pieces.
THICK_SLICE_MM = 3.5
# Soft tissue is never this dark round a deposit: only lung or gas is (HU) ...
LUNG_MAX_HU = -300.0
# ... deeper than the skin and a fold of fat (mm).
LUNG_MIN_DEPTH_MM = 15.0
# Air inside the body this close (mm, at least this many voxels) marks an airway or gut lumen.
AIRWAY_MM = 10.0
AIRWAY_MIN_VOXELS = 10
AIRWAY_REGIONS = ("head_neck", "shoulder", "hip_gluteal", "pelvis", "unknown")
# In the neck the visceral and carotid spaces (thyroid, larynx and trachea, oesophagus, carotid
# sheath, lymph nodes) lie round the airway: a finding in "muscle" this close (mm) to it is
# one of them (thyroid or nodal calcification, a carotid plaque), not in a muscle of the neck.
NECK_VISCERA_MM = 30.0
# A finding in a hole of a bone's outline on its slice lies in the bone's marrow (a trabecular
# island of a vertebral body, a medullary calcification), unless the hole is the spinal canal:
# holes up to this area (mm2; a vertebral body's or a long bone's, not the cranial cavity
# or a pelvic ring) ...
MARROW_MAX_HOLE_MM2 = 2500.0
# ... whose median HU is not that of the canal's contents (fluid and cord: at or above the
# fat level and below this); red marrow lies above it, yellow marrow below the fat level.
MARROW_MIN_HU = 60.0
# The box (mm, each way in-plane) the hole is looked for in: a hole reaching its edge is not taken.
MARROW_BOX_MM = 60.0
# Exclusions that hold only for findings in the wall (not in the cavity or by the airway).
WALL_ONLY_REASONS = ("bone_partial_volume",)
# Hyaline cartilage is denser than muscle (about 100-140 HU against 40-60); the ring round a
# calcified piece takes in some of the muscle the cartilage borders, so the limit sits
# between the two (phantom: a piece in 110 HU cartilage reads 83 HU round it).
CARTILAGE_MIN_HU = 75.0
# A piece the bone split parted from a bone (flag ``split_from_bone``) that is a rod or a plate
# in-plane is a piece of the bone (the cortex of a process, a rib's neck, a vertebra's rim),
# not a deposit (a blob): its in-plane elongation (:func:`in_plane_elongation`) at least this.
# Phantom deposits split off bones (299 in seeds 0-9 of the three body parts at 0.6-3 mm,
# 222 of them of 40 voxels or more): at most 1.25 (a lumpy one); of the pieces split off real
# bone in 2.5-3 mm stand-ins made from two real 5 mm chest CTs (bench/real_thin_slices.py)
# about half are above 1.4 (relabel3 245 -> 103 findings where the target is 0).
BONE_PIECE_MIN_ELONGATION = 1.4
# A piece of fewer voxels than this is too small for its shape to tell: noise decides which of
# its fringe voxels pass the threshold (phantom deposits of 2.3-2.7 mm split off with 10-35
# voxels on 1.5-2 mm slices read up to 1.9).
BONE_PIECE_MIN_VOXELS = 40


# Subcutaneous fat lies between the skin and the muscle fascia: the fat round a deposit there
# joins, on its slice, the fat right under the skin (within this depth, mm). Fat that does not
# is deep: in the trunk the fat of the posterior mediastinum and the retroperitoneum beside the
# spine (behind the line the cavity model stops at), with its calcified nodes and vessels.
SUPERFICIAL_FAT_MM = 6.0
# The fat round a deposit is read this far (mm, in-plane) from its voxels on its slice, on the
# slice smoothed over 3 x 3 pixels (noise), in the cavity's fat range (``FAT_HU``, both ends in).
FAT_RING_MM = 3.0


def classify_trunk_findings(
    lesions: list[Lesion], labels: np.ndarray, cavity: Cavity, centroid_index, spacing_zyx,
    *, hu: np.ndarray | None = None, body: np.ndarray | None = None,
    drop: Mapping[int, str] | None = None, boxes=None, regions=None, bone: np.ndarray | None = None,
    threshold_hu: float,
) -> tuple[list[Lesion], list[Excluded], np.ndarray]:
    """Give cavity findings the ``vascular``/``visceral`` compartment, drop rib-cage pieces,
    and renumber the rest 1..N.

    ``labels`` is the cropped label map (``boxes``, when given, each label's bounding box);
    returned is a lookup table ``lut`` with ``lut[old_label]`` the new label (0: dropped),
    to apply to it. ``centroid_index(lesion)`` gives the lesion centroid as ``(z, y, x)``
    on the cropped grid. ``drop`` maps lesion ids to a reason they are excluded for,
    decided elsewhere (:func:`calcinosis.detect.edges.scan_limited_findings`).
    ``regions`` (a :class:`~calcinosis.anatomy.regions.RegionMap`), when given, names the
    region of findings inside the trunk: chest or abdomen, not ``back`` (which is the
    back's soft tissues: the lung bases and the descending aorta reach behind the plane
    that bounds it). ``bone`` (the bone mask), when given, finds the cranial cavity: a
    finding inside the skull's ring on its slice is intracranial (dural, pineal or plexus
    calcification), visceral, not calcinosis; and a finding in a bone's marrow cavity on
    its slice is excluded as bone (``threshold_hu``: the detection threshold, below which
    the cavity's voxels lie).
    """
    thick_slices = float(spacing_zyx[0]) > THICK_SLICE_MM
    drop = drop or {}
    kept: list[Lesion] = []
    excluded: list[Excluded] = []
    if boxes is None:
        boxes = ndi.find_objects(labels)
    for lesion in lesions:
        idx = tuple(int(round(v)) for v in centroid_index(lesion))
        reason = drop.get(lesion.lesion_id)
        if reason is None and is_dense_soft_tissue(lesion, float(spacing_zyx[0])):
            reason = "dense_soft_tissue"
        if reason is not None and reason not in WALL_ONLY_REASONS:
            excluded.append(Excluded(reason, lesion.volume_mm3, lesion.peak_hu, tuple(map(float, idx))))
            continue
        if bone is not None and hu is not None and _in_marrow(bone, hu, labels, lesion.lesion_id, idx, spacing_zyx,
                                                                   threshold_hu):
            # Set in the marrow inside a bone's cortex on its slice: part of the bone.
            excluded.append(Excluded("bone", lesion.volume_mm3, lesion.peak_hu, tuple(map(float, idx))))
            continue
        if _bone_shaped_split(lesion, labels, boxes, spacing_zyx):
            # Listed one by one in summary.json (small bone fragments are only counted): an
            # elongated deposit lying on a bone would be among them.
            excluded.append(Excluded("bone_piece", lesion.volume_mm3, lesion.peak_hu, tuple(map(float, idx))))
            continue
        inner = {}
        if regions is not None and lesion.region == "back":
            inner = {"region": regions.region_at(idx, back=False)}
        if lesion.background_hu < LUNG_MAX_HU and lesion.depth_mm > LUNG_MIN_DEPTH_MM:
            # Surrounded by aerated lung (or bowel gas): inside the body, not in soft tissue.
            kept.append(replace(lesion, compartment="visceral", **inner))
            continue
        if bone is not None and lesion.region == "head_neck" and _inside_skull(bone, idx, spacing_zyx):
            kept.append(replace(lesion, compartment="visceral"))
            continue
        if lesion.compartment == "cutaneous":
            kept.append(lesion)
            continue
        # Fat inside the cavity (mediastinum, mesentery) looks like subcutaneous fat: the
        # place decides, not the tissue round the deposit; but where the cavity below the ribs
        # is taken for its depth alone, fat that joins the fat under the skin is the wall's
        # (an obese abdominal wall).
        superficial = None
        if (lesion.compartment == "subcutaneous" and lesion.region in TRUNK_REGIONS + ("back",)
                and hu is not None and body is not None):
            superficial = _in_superficial_fat(hu, body, labels, lesion.lesion_id, boxes[lesion.lesion_id - 1],
                                              idx, spacing_zyx)
        if (lesion.region in TRUNK_REGIONS + ("back",) and cavity.in_cavity(idx)
                and not (superficial and cavity.by_depth_only(idx))):
            kept.append(replace(lesion, compartment=_vessel_or_organ(lesion, labels, boxes, spacing_zyx), **inner))
            continue
        if lesion.region == "hip_gluteal" and cavity.in_bone_hull(idx):
            # The regions' pelvis is the hull of its bone plates on a coarse grid; the cavity's
            # hull takes in the sacrum and the spine too: inside it lie the iliac vessels and
            # the pelvic organs, not the gluteal muscles (outside the iliac wings).
            kept.append(replace(lesion, compartment=_vessel_or_organ(lesion, labels, boxes, spacing_zyx),
                                region="pelvis"))
            continue
        if (lesion.region in TRUNK_REGIONS + ("back",) and cavity.beside_spine(idx)
                and lesion.max_diameter_mm >= PLAQUE_BESIDE_SPINE_MIN_LENGTH_MM
                and _vessel_or_organ(lesion, labels, boxes, spacing_zyx) == "vascular"):
            # Beside the vertebral body, behind the line the cavity stops at, run the aorta and
            # its branches as well as the psoas and the crura: a long thin curved shell there is
            # a vessel wall's plaque (the abdominal aorta's, lying on the vertebral body).
            kept.append(replace(lesion, compartment="vascular", **inner))
            continue
        if (lesion.region in AIRWAY_REGIONS and hu is not None and body is not None
                and _next_to_internal_air(hu, body, idx, spacing_zyx)):
            # Beside the airway (laryngeal or tracheal cartilage, thyroid) or, low in the
            # pelvis, the rectum's gas: not in the soft tissues of the wall.
            kept.append(replace(lesion, compartment="visceral"))
            continue
        if reason is not None:
            # Only in the wall: a faint piece in the cavity beside the spine is an aortic plaque
            # as often as bone.
            excluded.append(Excluded(reason, lesion.volume_mm3, lesion.peak_hu, tuple(map(float, idx))))
            continue
        if (lesion.region == "head_neck" and lesion.compartment == "intramuscular" and hu is not None
                and body is not None and _next_to_internal_air(hu, body, idx, spacing_zyx, NECK_VISCERA_MM)):
            # Deep in the neck round the airway: the visceral or carotid space, not a muscle.
            kept.append(replace(lesion, compartment=_vessel_or_organ(lesion, labels, boxes, spacing_zyx)))
            continue
        if lesion.region in TRUNK_REGIONS + ("back",) and superficial is False:
            # In fat, but not the fat under the skin: deep in the trunk (paravertebral,
            # retrocrural, retroperitoneal fat), inside the body's wall: a node's or a vessel's.
            kept.append(replace(lesion, compartment="visceral", **inner))
            continue
        if lesion.compartment in SOFT_WALL:
            kept.append(lesion)
            continue
        if thick_slices and lesion.region in TRUNK_REGIONS and cavity.in_rib_cage(idx):
            # Only thick slices cut ribs into pieces; on thin ones a rib is one bone, and a
            # dense piece beside it is a deposit (juxta-osseous).
            excluded.append(Excluded("rib_cage", lesion.volume_mm3, lesion.peak_hu, tuple(map(float, idx))))
            continue
        if (lesion.region in TRUNK_REGIONS and cavity.in_front_wall(idx)
                and lesion.background_hu >= CARTILAGE_MIN_HU):
            # Set in tissue denser than muscle in the front of the chest wall: cartilage.
            excluded.append(Excluded("costal_cartilage", lesion.volume_mm3, lesion.peak_hu,
                                     tuple(map(float, idx))))
            continue
        kept.append(lesion)
    lut = np.zeros(max((lesion.lesion_id for lesion in lesions), default=0) + 1, labels.dtype)
    renumbered = []
    for new_id, lesion in enumerate(kept, start=1):
        lut[lesion.lesion_id] = new_id
        renumbered.append(replace(lesion, lesion_id=new_id))
    return renumbered, excluded, lut


def _in_superficial_fat(hu: np.ndarray, body: np.ndarray, labels: np.ndarray, lesion_id: int, box, idx,
                        spacing_zyx) -> bool | None:
    """Whether the fat round a finding joins, on its slice, the fat within
    ``SUPERFICIAL_FAT_MM`` of the skin (8-connected, on the slice smoothed over 3 x 3 pixels,
    ``FAT_HU``); None when no fat lies within ``FAT_RING_MM`` of it there. Its slice: its
    centroid's, or its box's slice with most of it."""
    z = int(np.clip(idx[0], 0, hu.shape[0] - 1))
    own = labels[z] == lesion_id
    if not own.any() and box is not None:
        counts = [(labels[k][box[1:]] == lesion_id).sum() for k in range(box[0].start, box[0].stop)]
        z = box[0].start + int(np.argmax(counts))
        own = labels[z] == lesion_id
    if not own.any():
        return None
    smooth = ndi.uniform_filter(hu[z].astype(np.float32), 3)
    fat = body[z] & (smooth >= FAT_HU[0]) & (smooth <= FAT_HU[1])
    ring = fat & (distance_outside_mm(own[None], spacing_zyx, in_plane=True)[0] <= FAT_RING_MM)
    if not ring.any():
        return None
    parts, _ = ndi.label(fat, structure=np.ones((3, 3), bool))
    skin_depth = distance_inside_mm(body[z][None], spacing_zyx, in_plane=True)[0]
    superficial = body[z] & (skin_depth <= SUPERFICIAL_FAT_MM)
    return bool(np.isin(parts[ring], parts[superficial & fat]).any())


def in_plane_elongation(mask: np.ndarray, spacing_zyx) -> float:
    """How long a piece is in-plane for its width: the longest in-plane extent of its parts
    (8-connected in a slice; between pixel centres, mm) over the diameter of the circle of its
    largest part's area. About 1 for a blob, 1.25 for a 2:1 rod lying in-plane, 1.5 for 3:1.
    In-plane only: on thick slices a deposit's partial volume on the next slices lengthens it
    along z; by part: a few fringe voxels joined to a deposit only through the next slice do
    not lengthen it."""
    sy, sx = float(spacing_zyx[1]), float(spacing_zyx[2])
    longest = 0.0
    widest = 0
    for z in np.flatnonzero(mask.any(axis=(1, 2))):
        parts, n = ndi.label(mask[z], structure=np.ones((3, 3), bool))
        for k in range(1, n + 1):
            pts = np.argwhere(parts == k) * np.array([sy, sx])
            widest = max(widest, len(pts))
            if len(pts) > 1:
                longest = max(longest, farthest_pair(pts)[2])
    if not widest:
        return 0.0
    return longest / float(np.sqrt(4.0 * widest * sy * sx / np.pi))


def _bone_shaped_split(lesion: Lesion, labels: np.ndarray, boxes, spacing_zyx) -> bool:
    """Whether a lesion the bone split parted from a bone is shaped like a piece of bone (a
    rod or plate: ``BONE_PIECE_MIN_ELONGATION``, of at least ``BONE_PIECE_MIN_VOXELS``)
    rather than a deposit."""
    if "split_from_bone" not in lesion.flags.split(";") or lesion.n_voxels < BONE_PIECE_MIN_VOXELS:
        return False
    box = boxes[lesion.lesion_id - 1]
    return in_plane_elongation(labels[box] == lesion.lesion_id, spacing_zyx) >= BONE_PIECE_MIN_ELONGATION


def _vessel_or_organ(lesion: Lesion, labels: np.ndarray, boxes, spacing_zyx) -> str:
    """``vascular`` for a finding shaped like a vessel wall's plaque (a thin curved shell of
    some length), ``visceral`` for one that is not (a nodule, bowel content, an organ's)."""
    box = boxes[lesion.lesion_id - 1]
    mask = labels[box] == lesion.lesion_id
    half = float(distance_inside_mm(np.pad(mask, 1), spacing_zyx).max())
    # A shell fills little of the ball its length spans; a nodule or bowel content fills much.
    compact = lesion.volume_mm3 / (np.pi / 6.0 * max(lesion.max_diameter_mm, 1e-3) ** 3)
    plaque = (half <= PLAQUE_MAX_HALF_THICKNESS_MM and compact <= PLAQUE_MAX_COMPACTNESS
              and lesion.max_diameter_mm >= PLAQUE_MIN_LENGTH_MM)
    return "vascular" if plaque else "visceral"


def _in_marrow(bone: np.ndarray, hu: np.ndarray, labels: np.ndarray, lesion_id: int, idx, spacing_zyx,
               threshold_hu: float) -> bool:
    """Whether finding ``lesion_id`` lies, on the slice of its centroid ``idx``, in a marrow
    cavity: all its voxels there inside the bone's outline (``bone`` with its holes filled,
    within ``MARROW_BOX_MM`` of the centroid), in a hole of the bone's dense voxels (below
    ``threshold_hu``, 8-connected with the finding) of at most ``MARROW_MAX_HOLE_MM2``, whose
    median HU (the finding's own voxels left out) is below the fat level or at least
    ``MARROW_MIN_HU`` (the spinal canal lies between). A finding that fills its hole, set in
    bone all round, is in the bone too."""
    z, y, x = (int(np.clip(i, 0, n - 1)) for i, n in zip(idx, bone.shape))
    ry, rx = (int(np.ceil(MARROW_BOX_MM / float(s))) for s in spacing_zyx[1:])
    box = (slice(max(y - ry, 0), y + ry + 1), slice(max(x - rx, 0), x + rx + 1))
    own = labels[z][box] == lesion_id
    ring = bone[z][box]
    if not own.any() or not ring.any():
        return False
    inside = fill_holes_2d(ring)
    if (own & ~inside).any():
        return False
    hu_z = hu[z][box]
    pieces, _ = ndi.label(inside & ((hu_z < threshold_hu) | own), structure=np.ones((3, 3), bool))
    hole = np.isin(pieces, np.unique(pieces[own]))
    if hole.sum() * float(spacing_zyx[1]) * float(spacing_zyx[2]) > MARROW_MAX_HOLE_MM2:
        return False
    values = hu_z[hole & ~own]
    if values.size == 0:
        return True
    median = float(np.median(values))
    return median < FAT_MAX_HU or median >= MARROW_MIN_HU


def _inside_skull(bone: np.ndarray, idx, spacing_zyx) -> bool:
    """Whether voxel ``idx`` lies in a hole of the bone on its slice that is at least
    ``SKULL_MIN_ENCLOSED_MM2``: inside a skull's ring, the cranial cavity."""
    z = int(np.clip(idx[0], 0, bone.shape[0] - 1))
    ring = bone[z]
    if ring[idx[1], idx[2]] or not ring.any():
        return False
    holes = fill_holes_2d(ring) & ~ring
    if not holes[idx[1], idx[2]]:
        return False
    pieces, _ = ndi.label(holes)
    area_mm2 = float((pieces == pieces[idx[1], idx[2]]).sum()) * float(spacing_zyx[1]) * float(spacing_zyx[2])
    return area_mm2 >= SKULL_MIN_ENCLOSED_MM2


def _next_to_internal_air(hu: np.ndarray, body: np.ndarray, idx, spacing_zyx, within_mm: float = AIRWAY_MM) -> bool:
    """Whether air inside the body (a lumen, not the outside) lies within ``within_mm``."""
    r = [max(1, int(np.ceil(within_mm / s))) for s in spacing_zyx]
    box = tuple(slice(max(i - k, 0), i + k + 1) for i, k in zip(idx, r))
    air = (hu[box] < -500) & body[box]
    if air.sum() < AIRWAY_MIN_VOXELS:
        return False
    pts = (np.argwhere(air) - [i - b.start for i, b in zip(idx, box)]) * np.asarray(spacing_zyx)
    return bool((np.sqrt((pts ** 2).sum(axis=1)) <= within_mm).sum() >= AIRWAY_MIN_VOXELS)
