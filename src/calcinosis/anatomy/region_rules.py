"""The rules that name the body parts of one axial slice on the block grid.

A part is a 2-D connected piece of the body mask; its features (area, width, bones,
a central posterior bone = spine, air on both sides = lungs, a closed shell of dense
bone = skull, an air tube in front of the spine = trachea) decide whether it is head,
neck, trunk (chest, abdomen, pelvis, shoulder level) or a limb, and which limb segment.
The rules are set out in :mod:`calcinosis.anatomy.regions`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import convex_hull_image
from skimage.segmentation import watershed

from calcinosis.anatomy.morphology import fill_holes_2d, grow_one

REGIONS = ("head_neck", "chest", "abdomen", "pelvis", "back", "shoulder", "upper_arm", "elbow", "forearm",
           "wrist_hand", "hip_gluteal", "thigh", "knee", "leg", "ankle_foot", "unknown")
_CODE = {name: i + 1 for i, name in enumerate(REGIONS)}  # 0 = outside the body
_NAME = {i: name for name, i in _CODE.items()}

MIN_PART_MM2 = 100.0
MIN_BONE_MM2 = 18.0
MINOR_BONE_FRACTION = 0.12
# A lower-limb part this wide (mm, the diameter of a circle of its area) is no knee or foot
# (both knees together: about 190): it is both hips below the sacrum.
HIPS_MIN_DIAM_MM = 240.0
# Lungs lie back in the trunk: the air on each side has its mean row at least this share of
# the part's depth from the front (real chests 0.45-0.53, the trunk phantom 0.44); gas of the
# transverse colon on both sides lies in front (0.19-0.25 in TotalSegmentator's 3 mm-voxel
# abdomen, whose mid-abdomen slices it made "chest").
LUNG_MIN_BACK = 0.35
# A trachea lies in front of the spine, within this distance (mm) of its middle, and holds at
# most this much air (mm2 on the block grid; 15-25 mm across). The upper abdomen's stomach and
# duodenal gas in front of the spine (TotalSegmentator's example CT): 515-1056 mm2 at 20-34 mm
# off the middle; tracheas and pharynges of the real chest and head CTs: 114-577 mm2, 1-6 mm.
TRACHEA_MAX_OFFSET_MM = 20.0
TRACHEA_MAX_MM2 = 750.0
# ... and its middle lies at most this far (mm) in front of the spine's front edge (tracheas
# and pharynges of the real chest and head CTs: 4-30 mm; bowel gas on the midline of
# TotalSegmentator's 3 mm-voxel abdomen: 86-138 mm).
TRACHEA_MAX_AHEAD_MM = 50.0
# An arm lying against the trunk is a lobe of the trunk's part: the outline narrows to this
# fraction of the lobe's own half-thickness where it meets the trunk, and the lobe is under
# this share of the part.
ARM_NECK_FRACTION = 0.8
ARM_MAX_SHARE = 0.3
# Pressed on the trunk along its length an arm shows no narrowing; its bone lies farther from
# the spine (mm) than a pelvic bone (the greater trochanters: 160-190 mm) and near the outline
# (its distance to it at most this, mm); the arm is taken from this far (mm) inside the bone.
ARM_MIN_OFFSET_MM = 195.0
ARM_MAX_DEPTH_MM = 55.0
ARM_HALF_WIDTH_MM = 50.0


def slice_parts(body, air, dense, bsp) -> tuple[np.ndarray, list[dict]]:
    """The parts of one block-grid slice: the 8-connected pieces of ``body`` (their labels)
    and, for those of at least ``MIN_PART_MM2``, what they show without the bone (size,
    centre, air on each side, a closed dense shell, the air pieces a trachea may be).
    ``bsp`` is the block size (mm) along the canonical axes."""
    px = float(bsp[1] * bsp[2])
    labels, n = ndi.label(body, structure=_EIGHT)
    parts: list[dict] = []
    if n == 0:
        return labels, parts
    for k, sl in enumerate(ndi.find_objects(labels), start=1):
        part = labels[sl] == k
        if part.sum() * px < MIN_PART_MM2:
            continue
        parts.append(_part_shape(k, sl, part, air[sl], dense[sl], bsp))
    return labels, parts


def _classify_slice(labels, parts, bone, bsp, out, pelvis_inside, seen) -> float | None:
    """Write region codes of the parts of one block-grid slice (:func:`slice_parts`) into
    ``out``, with the slice's ``bone``; return the spine's x (mm)."""
    if not parts:
        return None
    feats = [_with_bones(f, bone[f["slice"]], bsp) for f in parts]
    trunk_seen = False
    spine_x = None
    limbs = []
    # Slices are visited from inferior to superior: lungs already seen lie below this slice.
    lungs_below = seen["lungs"] > 0
    for f in feats:
        if lungs_below and f["arms"] is not None:
            f = dict(f, pelvic_bone=f["pelvic_with_arms"], arms=None)
        name = _trunk_class(f)
        if name is None:
            limbs.append(f)
            continue
        if name == "pelvis" and lungs_below:
            # The pelvis lies below the lungs: bone plates beside the spine above them are
            # the shoulder girdle (scapulae, humeral heads) where no trachea shows.
            name = "shoulder"
        trunk_seen = True
        if f["skull"]:
            seen["skull"] += 1
        if name == "chest":
            seen["lungs"] += 1
        if f["spine_x"] is not None and name in ("chest", "abdomen", "pelvis"):
            seen["spine"] += 1
            spine_x = f["spine_x"]
        if name == "pelvis":
            seen["pelvic_bones"] += 1
            sl = f["slice"]
            pelvis_inside[sl] |= convex_hull_image(f["pelvic_bone"]) & (labels[sl] == f["label"])
        if name == "shoulder":
            _paint_shoulder_level(f, labels, bsp, out)
        else:
            out[labels == f["label"]] = _CODE[name]
        if f["arms"] is not None and name in ("abdomen", "pelvis"):
            seen["upper_limb"] += _paint_arms(f, bsp, out)
    big = [f for f in limbs if f["area"] >= 1500.0]
    paired = (not trunk_seen and len(big) >= 2
              and min(f["diam"] for f in big[:2]) >= 0.7 * max(f["diam"] for f in big[:2]))
    if paired:
        seen["paired_limbs"] += 1
    for f in limbs:
        lower = False if trunk_seen else (paired or f["diam"] >= 105.0)
        name = _limb_class(f, lower)
        if (lower and name in ("knee", "ankle_foot") and f["diam"] >= HIPS_MIN_DIAM_MM
                and f["pelvic_bone"] is not None and not lungs_below):
            # No knee or foot is this wide: both hips in one part below the sacrum (femoral heads,
            # acetabula, ischia), the pelvis's lowest slices, with the hips outside its bones' hull
            # (not above the lungs: the pelvis lies below them).
            seen["pelvic_bones"] += 1
            sl = f["slice"]
            pelvis_inside[sl] |= convex_hull_image(f["pelvic_bone"]) & (labels[sl] == f["label"])
            out[labels == f["label"]] = _CODE["pelvis"]
            continue
        seen["lower_limb" if lower else "upper_limb"] += 1
        out[labels == f["label"]] = _CODE[name]
    return spine_x


def _paint_arms(f: dict, bsp, out: np.ndarray) -> int:
    """The arms lying against a trunk (lobes of its part, :func:`_arm_lobes`) by the limb rules;
    returns how many."""
    lobes, bones = f["arms"]
    px = float(bsp[1] * bsp[2])
    pieces, n = ndi.label(lobes, structure=_EIGHT)
    box = out[f["slice"]]
    for k, psl in enumerate(ndi.find_objects(pieces), start=1):
        piece = pieces == k
        area = float(piece.sum() * px)
        x0, x1 = psl[1].start * bsp[2], psl[1].stop * bsp[2]
        x_off = f["slice"][1].start * bsp[2]
        own = [b for b in bones if x0 <= b["x"] - x_off <= x1]
        arm = {"area": area, "diam": 2.0 * np.sqrt(area / np.pi), "width": x1 - x0, "bones": own}
        box[piece] = _CODE[_limb_class(arm, False)]
    return n


def _paint_shoulder_level(f: dict, labels: np.ndarray, bsp, out: np.ndarray) -> None:
    """A slice through the shoulder girdle: the outer thirds are shoulder, the middle neck or chest."""
    part = labels == f["label"]
    x_mm = (np.arange(labels.shape[1]) + 0.5) * bsp[2]
    lateral = (np.abs(x_mm - f["cx"]) > f["width"] / 6.0)[None, :] & part
    apices = min(f["air_left"], f["air_right"]) >= 200.0
    out[part] = _CODE["chest" if apices else "head_neck"]
    out[lateral] = _CODE["shoulder"]


def _part_features(k, sl, part, bone, air, dense, bsp) -> dict:
    """Features of part ``k`` (``part``: its mask on its box ``sl``; ``bone``, ``air`` and
    ``dense`` on that box) for the rules: :func:`_part_shape` and :func:`_with_bones`."""
    return _with_bones(_part_shape(k, sl, part, air, dense, bsp), bone, bsp)


def _part_shape(k, sl, part, air, dense, bsp) -> dict:
    """What a part shows without the bone (``air`` and ``dense`` on its box ``sl``)."""
    px = float(bsp[1] * bsp[2])
    # ``sl`` is the part's own box: its first and last rows and columns hold part pixels.
    # The mean column comes from an exact integer sum over the counts per column: the same
    # float64 sum and quotient as ``np.nonzero(part)[1].mean()``, without the index lists.
    h, w = part.shape
    per_col = np.count_nonzero(part, axis=0)
    n = int(per_col.sum())
    area = n * px
    cx = (np.float64(int(per_col @ np.arange(w))) / n + sl[1].start) * bsp[2]
    width = w * bsp[2]
    # Air pixels counted per column: each column's x (mm) is compared with the centre once.
    air_part = air & part
    air_per_col = np.count_nonzero(air_part, axis=0)
    air_col_x = (np.arange(w) + sl[1].start) * bsp[2]
    left = float(int(air_per_col[air_col_x > cx].sum()) * px)
    right = float(int(air_per_col[air_col_x <= cx].sum()) * px)
    # How far back each side's air lies: its mean row over the part's depth (0 front, 1 back).
    rows = np.arange(h)
    depth_share = []
    for side in (air_col_x > cx, air_col_x <= cx):
        per_row = np.count_nonzero(air_part[:, side], axis=1)
        n_side = int(per_row.sum())
        depth_share.append(float(int(per_row @ rows)) / n_side / h if n_side else 0.0)
    ring = dense & part
    # binary_fill_holes' holes (4-connected background off the border), found faster
    enclosed = float((fill_holes_2d(ring) & ~dense).sum() * px) if ring.any() else 0.0
    # A trachea is looked for where air shows but little of it (no lungs): its pieces'
    # areas and box centres (mm), read with the spine's front once the bone is known.
    air_pieces = []
    if not left + right > 0.05 * area and left + right > 0.0:
        al, n_air = ndi.label(air_part)
        air_sizes = np.bincount(al.ravel(), minlength=n_air + 1)
        for j, asl in enumerate(ndi.find_objects(al), start=1):
            air_pieces.append((air_sizes[j] * px,
                               (asl[0].start + asl[0].stop) / 2 * bsp[1] + sl[0].start * bsp[1],
                               (asl[1].start + asl[1].stop) / 2 * bsp[2] + sl[1].start * bsp[2]))
    return {"label": k, "slice": sl, "part": part, "area": area, "cx": cx, "width": width,
            "y0": sl[0].start * bsp[1], "depth": h * bsp[1], "air_left": left, "air_right": right,
            "air_left_back": depth_share[0], "air_right_back": depth_share[1],
            "skull": enclosed >= 3000.0, "air_pieces": air_pieces}


def _with_bones(shape: dict, bone, bsp) -> dict:
    """The rules' features of a part: its :func:`_part_shape` with its bones (``bone`` on
    the part's box): central posterior bone (spine), lateral plates, the trachea in front
    of the spine."""
    px = float(bsp[1] * bsp[2])
    sl, part, cx, width = shape["slice"], shape["part"], shape["cx"], shape["width"]
    y0, depth, area = shape["y0"], shape["depth"], shape["area"]
    bl, bones = _bone_pieces(bone & part, sl, px, bsp)
    central = [b for b in bones if abs(b["x"] - cx) < 0.15 * width]
    spine = [b for b in central if (b["y_post"] - y0) / depth > 0.7]
    spine_x = float(np.average([b["x"] for b in spine], weights=[b["area"] for b in spine])) if spine else None
    # Each bone's dict is its own (their labels differ): not among the central ones by identity.
    lateral = [b for b in bones if all(b is not c for c in central) and b["area"] >= 500.0]
    tube = False
    if spine:
        front = min(b["y_ant"] for b in spine)
        for a, ay_c, ax_c in shape["air_pieces"]:
            # Centred on the part and on the spine, at most a trachea's size and close in front of
            # the spine: the stomach's and bowel's gas lies in front of the spine too, larger, to
            # one side or farther forward, and arms joined to the part widen its window.
            if 50.0 <= a <= TRACHEA_MAX_MM2 and front - TRACHEA_MAX_AHEAD_MM < ay_c < front \
                    and abs(ax_c - cx) < 0.2 * width and abs(ax_c - spine_x) < TRACHEA_MAX_OFFSET_MM:
                tube = True
    return {**_plates_and_arms(part, bl, spine, lateral, tube, bsp, sl[1].start), "label": shape["label"], "slice": sl, "area": area, "cx": cx, "diam": 2.0 * np.sqrt(area / np.pi),
            "width": width, "bones": bones, "spine_x": spine_x,
            "air_left": shape["air_left"], "air_right": shape["air_right"],
            "air_back": min(shape["air_left_back"], shape["air_right_back"]), "skull": shape["skull"], "tube": tube}


def _plates_and_arms(part, bone_labels, spine, lateral, tube: bool, bsp, x0: int) -> dict:
    """A part's lateral bone plates (``pelvic_bone``: their mask, None when none) and the arms
    lying against it (``arms``: lobes and their bones, :func:`_arm_lobes`; None when none), and
    the plates with the arms' bones still in (``pelvic_with_arms``: above the lungs, bones
    beside the spine are the shoulder girdle's whatever lobe they lie in)."""
    arms = None
    with_arms = np.isin(bone_labels, [b["label"] for b in lateral]) if lateral else None
    if spine and lateral and not tube:
        # Arms lying against the trunk (arms down on an abdominal scan) join its part: a lateral
        # bone in a lobe of the outline is an arm's, not a pelvic plate. (With a trachea in
        # view, humeral heads beside it mark the shoulder girdle: kept.)
        lobes, in_lobe = _arm_lobes(part, bone_labels, spine, lateral, bsp, x0)
        if lobes is not None:
            arms = (lobes, [b for b in lateral if b["label"] in in_lobe])
        lateral = [b for b in lateral if b["label"] not in in_lobe]
    pelvic = np.isin(bone_labels, [b["label"] for b in lateral]) if lateral else None
    return {"pelvic_bone": pelvic, "arms": arms, "pelvic_with_arms": with_arms}


def _arm_lobes(part: np.ndarray, bone_labels: np.ndarray, spine: list[dict], lateral: list[dict], bsp, x0: int):
    """Lobes of a trunk's part that hold a lateral bone: arms lying against the trunk.

    The part's distance to its outline is flooded (watershed) from the spine and from each
    lateral bone; a bone's basin is a lobe when the ridge where it meets the trunk's basin
    stands below ``ARM_NECK_FRACTION`` of the basin's own highest distance (the outline
    narrows between them) and the basin is under ``ARM_MAX_SHARE`` of the part. A pelvic
    bone plate lies inside the trunk's outline: from it the distance rises all the way to
    the trunk's middle, so its basin meets the trunk's at its own height.

    An arm pressed on the trunk along its length shows no narrowing; its bone is taken as an
    arm's when it lies ``ARM_MIN_OFFSET_MM`` or more from the spine and within
    ``ARM_MAX_DEPTH_MM`` of the outline. ``x0`` is the box's first column on the slice.

    Returns the lobes' mask on the part's box (None when there is none) and the labels of
    the bones in them."""
    dist = ndi.distance_transform_edt(part, sampling=(float(bsp[1]), float(bsp[2])))
    markers = np.zeros(part.shape, np.int32)
    markers[np.isin(bone_labels, [b["label"] for b in spine])] = 1
    for i, b in enumerate(lateral, start=2):
        markers[bone_labels == b["label"]] = i
    basins = watershed(-dist, markers, mask=part)
    trunk_side = grow_one(basins == 1)
    lobes = np.zeros(part.shape, bool)
    in_lobe = set()
    spine_x = float(np.average([b["x"] for b in spine], weights=[b["area"] for b in spine]))
    x_mm = (np.arange(part.shape[1]) + x0) * float(bsp[2])  # columns' x as the bones' ``x``
    for i, b in enumerate(lateral, start=2):
        basin = basins == i
        edge = basin & trunk_side
        if edge.any():
            neck = float(dist[edge].max())
            if neck < ARM_NECK_FRACTION * float(dist[basin].max()) and basin.sum() < ARM_MAX_SHARE * part.sum():
                lobes |= basin
                in_lobe.add(b["label"])
                continue
        offset = abs(b["x"] - spine_x)
        bone = bone_labels == b["label"]
        if offset >= ARM_MIN_OFFSET_MM and float(dist[bone].max()) <= ARM_MAX_DEPTH_MM:
            # Pressed on the trunk along its length, the arm shows no narrowing: a big bone
            # beside the part's outline farther out than any pelvic bone is an arm's; its side
            # of the part from ARM_HALF_WIDTH_MM inside the bone is the arm.
            side = np.sign(b["x"] - spine_x)
            strip = side * (x_mm - spine_x) >= offset - ARM_HALF_WIDTH_MM  # on the bone's side only
            lobes |= part & strip[None, :]
            in_lobe.add(b["label"])
    return (lobes if lobes.any() else None), in_lobe


def _bone_pieces(bone: np.ndarray, sl, px: float, bsp) -> tuple[np.ndarray, list[dict]]:
    """The 8-connected pieces of ``bone`` (a part's bone, on the part's box ``sl``): their
    labels, and for those of at least ``MIN_BONE_MM2`` the area (mm2), x of the centre,
    posterior and anterior edges (mm, on the block slice), width (mm) and label.

    A piece's box is tight, so its edges are its box's; its mean column comes from exact
    integer sums per label (the same float64 quotient as the mean of its pixels' columns)."""
    labels, n = ndi.label(bone, structure=_EIGHT)
    if n == 0:
        return labels, []
    flat = labels.ravel()
    sizes = np.bincount(flat, minlength=n + 1)
    keep = np.flatnonzero(sizes[1:] * px >= MIN_BONE_MM2) + 1
    if keep.size == 0:
        return labels, []
    # Sums of the column index per label: integers, exact in float64 (far below 2**53).
    columns = np.broadcast_to(np.arange(labels.shape[1], dtype=np.float64), labels.shape).ravel()
    x_sums = np.bincount(flat, weights=columns, minlength=n + 1)
    boxes = ndi.find_objects(labels)
    out = []
    for j in keep.tolist():
        bsl = boxes[j - 1]
        count = sizes[j]
        local_mean = np.float64(x_sums[j] - float(count * bsl[1].start)) / count
        out.append({"area": count * px, "x": (local_mean + bsl[1].start + sl[1].start) * bsp[2],
                    "y_post": (bsl[0].stop + sl[0].start) * bsp[1],
                    "y_ant": (bsl[0].start + sl[0].start) * bsp[1],
                    "width": (bsl[1].stop - bsl[1].start) * bsp[2], "label": j})
    return labels, out


_EIGHT = np.ones((3, 3), bool)  # 8-connected pieces of a slice


def _trunk_class(f: dict) -> str | None:
    """Region of a part that is head, neck or trunk; None for a limb."""
    if f["skull"]:
        return "head_neck"
    each = max(0.02 * f["area"], 300.0)
    if f["diam"] >= 120.0 and f["air_left"] >= each and f["air_right"] >= each and f["air_back"] >= LUNG_MIN_BACK:
        return "chest"
    if f["tube"] and f["pelvic_bone"] is not None:
        return "shoulder"  # trachea with scapulae / humeral heads beside it: the shoulder girdle
    if f["tube"] and f["diam"] < 190.0:
        return "head_neck"
    if f["spine_x"] is not None and f["diam"] >= 170.0:
        return "pelvis" if f["pelvic_bone"] is not None else "abdomen"
    if f["spine_x"] is not None and f["diam"] >= 120.0 and len(f["bones"]) >= 3 and f["pelvic_bone"] is not None:
        return "pelvis"
    return None


def _limb_class(f: dict, lower: bool) -> str:
    bones = f["bones"]
    if not bones:
        return "unknown"
    biggest = max(b["area"] for b in bones)
    # A piece under 12 % of the biggest bone (a deposit, a sesamoid, a bone's tip) is not counted;
    # a fibula is 20-30 % of a tibia, carpal and metacarpal bones are alike.
    bones = [b for b in bones if b["area"] >= MINOR_BONE_FRACTION * biggest]
    bone_area = sum(b["area"] for b in bones)
    widest = max(b["width"] for b in bones)
    d = f["diam"]
    if bone_area >= 0.11 * f["area"] or widest >= 0.45 * f["width"]:
        if lower:
            return "knee" if d >= 95.0 else "ankle_foot"
        return "elbow" if d >= 70.0 else "wrist_hand"
    if len(bones) >= 3:
        return "ankle_foot" if lower else "wrist_hand"
    if len(bones) == 1:
        return "thigh" if lower else "upper_arm"
    if lower:
        return "thigh" if d >= 135.0 else "leg"
    return "forearm"

