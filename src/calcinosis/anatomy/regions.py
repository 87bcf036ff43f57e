"""Body region of points, from the anatomy visible in the field of view.

Classical cues only, on masks block-averaged to about 3 mm; no model weights.
The volume is first turned to a canonical orientation (array axes: superior,
posterior, patient-left) from its direction matrix, so a scan stored upside down
or mirrored gives the same regions.

Each axial slice is cut into body parts (2-D connected pieces of the body mask)
and each part is classified from what it contains:

``head_neck``  a closed shell of dense bone round soft tissue (skull and brain), or
               a neck: a central bone (cervical spine) with an air tube (trachea)
               and no lungs, in a part less than 190 mm across; where a skull is
               in view, everything from 200 mm below it (not below lungs) up to
               the top of the scan: the face and the skull's cap;
``chest``      lungs: air (< -500 HU) inside the body on both sides of the
               part's centre, each side at least 2 % of the part (and 300 mm2);
               this is the chest/abdomen cue. Ribs alone are NOT taken as chest,
               because the lower ribs also surround the upper abdomen (liver,
               spleen): a rib cage without lungs is abdomen;
``pelvis``     a trunk (central posterior bone = spine, part >= 170 mm across)
               with large bone plates lateral of the spine (iliac wings,
               acetabula, femoral heads); points outside the convex hull of these
               bones are ``hip_gluteal``;
``abdomen``    a trunk with a spine and neither lungs nor pelvic bones;
``back``       in chest and abdomen slices, points posterior to the frontal plane
               through the centre of the vertebral body (taken 15 mm behind the
               spine's anterior edge: the front of the run of bone rows that
               starts at the spinous process, in a 20 mm strip; its lower
               quartile (most anterior) within +-20 mm along z, so that disc
               levels keep the vertebral body's edge);
limbs          any other part. Upper or lower limb: parts beside a trunk are arms;
               two similar parts side by side with no trunk are the lower limbs;
               a lone part is a lower limb when at least 105 mm across (thigh,
               calf) and an upper limb below that. Then by its bones: a joint
               (bone >= 11 % of the part's area, or one bone >= 45 % of its width)
               is ``knee``/``elbow`` (``ankle_foot``/``wrist_hand`` when the part
               is under 95/70 mm across); three or more bones (each at least 12 %
               of the biggest one's area: a deposit beside a femur is no bone) are
               ``ankle_foot``/``wrist_hand``; one bone is ``thigh``/``upper_arm``;
               two are ``leg``/``forearm`` (``thigh`` when a lower limb part is at
               least 135 mm across: femur with the ischium or patella).

Part classes are smoothed along z by a majority vote over +-10 mm at each
in-plane position, which removes single-slice flips (a disc level, a gap between
carpal bones). ``unknown`` when no rule decides (no bone in a limb, a part with
no cue). ``shoulder``: a trachea with large bones beside it (scapulae, humeral
heads) and no bilateral lungs marks the shoulder girdle, as do "pelvic" bone plates
beside the spine above slices with lungs (the pelvis lies below them); its outer
thirds are shoulder, its middle neck (or chest where lung apices show). Arms lying apart
from the trunk are upper_arm/elbow/forearm by the limb rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import convex_hull_image

from calcinosis.anatomy.morphology import fill_holes_2d
from calcinosis.errors import InputError

REGIONS = ("head_neck", "chest", "abdomen", "pelvis", "back", "shoulder", "upper_arm", "elbow", "forearm",
           "wrist_hand", "hip_gluteal", "thigh", "knee", "leg", "ankle_foot", "unknown")
_CODE = {name: i + 1 for i, name in enumerate(REGIONS)}  # 0 = outside the body
_NAME = {i: name for name, i in _CODE.items()}

BLOCK_MM = 3.0  # working resolution of the cues
AIR_HU = -500.0
DENSE_HU = 300.0  # skull shell
SMOOTH_MM = 10.0  # half-window of the z majority vote
SPINE_WINDOW_MM = 20.0  # half-window for the anterior edge of the spine (longer than a disc)
VB_CENTRE_BEHIND_EDGE_MM = 15.0
SPINE_GAP_MM = 20.0  # wider than the spinal canal (AP), narrower than spine-to-sternum
MIN_PART_MM2 = 100.0
# Below the lowest slice with a skull, the face and neck reach this far (mm) before the chest.
HEAD_BELOW_SKULL_MM = 200.0
MIN_BONE_MM2 = 18.0
MINOR_BONE_FRACTION = 0.12
# Voxels per chunk of slabs the block features are computed from (a few MB of temporaries).
_CHUNK_VOXELS = 1 << 22


@dataclass(frozen=True, eq=False)
class RegionMap:
    """Body region of any point of a cropped grid.

    Built by :func:`body_regions`; holds the classified parts on a canonical,
    block-averaged grid. Indices passed to :meth:`region_at` are ``(z, y, x)`` on the
    cropped grid the masks were given on.
    """

    classes: np.ndarray  # uint8 [Z, Y, X] canonical block grid; 0 outside the body
    pelvis_inside: np.ndarray  # bool, same grid: inside the bony pelvis' hull
    vb_centre_y_mm: np.ndarray  # float [canonical slices]: posterior coordinate of the back plane, nan if none
    perm: tuple[int, int, int]  # canonical axis c is array axis perm[c]
    flip: tuple[bool, bool, bool]  # canonical axis c runs against array axis perm[c]
    shape_zyx: tuple[int, int, int]  # cropped grid shape
    spacing_canonical_mm: tuple[float, float, float]
    block: tuple[int, int, int]
    info: dict = field(default_factory=dict)

    def _canonical(self, index_zyx) -> tuple[int, int, int]:
        out = []
        for c in range(3):
            a = self.perm[c]
            i = int(np.clip(int(index_zyx[a]), 0, self.shape_zyx[a] - 1))
            out.append(self.shape_zyx[a] - 1 - i if self.flip[c] else i)
        return out[0], out[1], out[2]

    def region_at(self, index_zyx: tuple[int, int, int], *, back: bool = True) -> str:
        """Region name at a voxel index ``(z, y, x)`` of the cropped grid (clipped to it).
        With ``back=False`` the chest or abdomen behind the vertebral plane keeps its name."""
        cz, cy, cx = self._canonical(index_zyx)
        bz, by, bx = (min(v // b, n - 1) for v, b, n in zip((cz, cy, cx), self.block, self.classes.shape))
        sl = self.classes[bz]
        if sl[by, bx] == 0:
            body = np.argwhere(sl > 0)
            if len(body) == 0:
                return "unknown"
            # just outside the block-averaged outline (skin, a thin part): the nearest part
            by, bx = body[np.argmin((body[:, 0] - by) ** 2 + (body[:, 1] - bx) ** 2)]
        name = _NAME[int(sl[by, bx])]
        if back and name in ("chest", "abdomen"):
            plane = self.vb_centre_y_mm[cz]
            if np.isfinite(plane) and cy * self.spacing_canonical_mm[1] > plane:
                return "back"
        if name == "pelvis" and not self.pelvis_inside[bz, by, bx]:
            return "hip_gluteal"
        return name

    def describe(self) -> dict:
        """What was seen: the field of view's main region, the regions' shares of the body, landmarks."""
        return dict(self.info)


@dataclass(frozen=True, eq=False)
class RegionFeatures:
    """What :func:`body_regions` reads from the image and the body mask alone (not from the
    bone): the canonical orientation and the block grid, and per block the shares of body
    and of air inside the body and the highest HU. Made by :func:`region_features`, which
    the analysis runs while it waits for detection (which gives the bone)."""

    shape_zyx: tuple[int, int, int]
    spacing_zyx: tuple[float, float, float]
    direction: np.ndarray
    perm: tuple[int, int, int]
    flip: tuple[bool, bool, bool]
    block: tuple[int, int, int]
    body_share: np.ndarray  # float32, canonical block grid
    air_share: np.ndarray
    hu_max: np.ndarray

    def fits(self, shape_zyx, spacing_zyx, direction) -> bool:
        """Whether these are the features of an image of this grid."""
        return (tuple(int(n) for n in shape_zyx) == self.shape_zyx
                and tuple(float(v) for v in spacing_zyx) == self.spacing_zyx
                and np.array_equal(np.asarray(direction, float), self.direction))


def region_features(hu: np.ndarray, body: np.ndarray, spacing_zyx, direction: np.ndarray) -> RegionFeatures:
    """The part of :func:`body_regions`' work that needs no bone mask (parameters as there)."""
    hu = np.asarray(hu)
    if hu.ndim != 3 or np.shape(body) != hu.shape:
        raise InputError(f"hu and body must be 3-D arrays of one shape, got {hu.shape}, {np.shape(body)}")
    sp = _checked_spacing(spacing_zyx)
    direction = np.array(direction, float)
    perm, flip = _orientation(direction)
    chu, cbody = (_to_canonical(np.asarray(a), perm, flip) for a in (hu, body))
    block = _block(sp, perm)
    body_f, _, air_f, hu_max = _block_features(chu, cbody, None, block)
    return RegionFeatures(tuple(int(n) for n in hu.shape), tuple(float(v) for v in sp),  # type: ignore[arg-type]
                          direction, perm, flip, block, body_f, air_f, hu_max)


def _checked_spacing(spacing_zyx) -> np.ndarray:
    sp = np.asarray(spacing_zyx, float)
    if sp.shape != (3,) or not np.all(np.isfinite(sp)) or sp.min() <= 0:
        raise InputError(f"spacing_zyx must be three positive numbers (mm), got {spacing_zyx}")
    return sp


def _block(sp: np.ndarray, perm) -> tuple[int, int, int]:
    """Voxels per block along the canonical axes (about ``BLOCK_MM``)."""
    return tuple(max(1, int(round(BLOCK_MM / float(sp[perm[c]])))) for c in range(3))  # type: ignore[return-value]


def body_regions(hu: np.ndarray, body: np.ndarray, bone: np.ndarray, spacing_zyx, direction: np.ndarray,
                 *, n_body_parts: int, features: RegionFeatures | None = None) -> RegionMap:
    """Name the body region of every point of a CT from the anatomy in view.

    Parameters
    ----------
    hu : array [z, y, x]
        Hounsfield units on the cropped grid.
    body, bone : bool arrays [z, y, x]
        Body mask and bone mask (cortex and marrow) on the same grid.
    spacing_zyx : sequence of 3 float
        Voxel spacing in mm, array order.
    direction : 3 x 3 array
        The volume's direction cosines; column ``c`` is the LPS direction of index
        axis ``c`` (x, y, z), so array axis ``a`` follows column ``2 - a``.
    n_body_parts : int
        Number of separate body parts found in 3-D (reported in ``describe``).
    features : RegionFeatures, optional
        :func:`region_features` of the same ``hu``, ``body``, spacing and direction, made
        ahead; computed here when not given.

    Returns
    -------
    RegionMap
        See the module docstring for the rules.
    """
    hu = np.asarray(hu)
    if hu.ndim != 3 or np.shape(body) != hu.shape or np.shape(bone) != hu.shape:
        raise InputError(f"hu, body and bone must be 3-D arrays of one shape, got {hu.shape}, "
                         f"{np.shape(body)}, {np.shape(bone)}")
    sp = _checked_spacing(spacing_zyx)
    if features is None:
        features = region_features(hu, body, sp, direction)
    elif not features.fits(hu.shape, sp, direction):
        raise ValueError("features must be region_features() of the same grid")  # a caller's bug
    perm, flip, block = features.perm, features.flip, features.block
    sp_c = tuple(float(sp[perm[c]]) for c in range(3))
    bsp = np.array(block, float) * sp_c
    cbody, cbone = (_to_canonical(np.asarray(a), perm, flip) for a in (body, bone))
    body_f, air_f, hu_max = features.body_share, features.air_share, features.hu_max
    bone_f = _block_features(None, None, cbone, block)[1]
    body_b = body_f >= 0.5
    bone_b = (bone_f >= 0.3) & body_b
    air_b = (air_f >= 0.5) & body_b
    dense_b = hu_max >= DENSE_HU

    raw = np.zeros(body_b.shape, np.uint8)
    pelvis_inside = np.zeros(body_b.shape, bool)
    spine_front = np.full(cbody.shape[0], np.nan)
    seen = {"skull": 0, "lungs": 0, "spine": 0, "pelvic_bones": 0, "paired_limbs": 0, "upper_limb": 0,
            "lower_limb": 0}
    limb_keys = ("paired_limbs", "upper_limb", "lower_limb", "pelvic_bones")
    limb_seen = np.zeros((body_b.shape[0], len(limb_keys)), int)  # per slice, to take back
    skull = np.zeros(body_b.shape[0], bool)
    for z in range(body_b.shape[0]):
        before = dict(seen)
        spine_x = _classify_slice(body_b[z], bone_b[z], air_b[z], dense_b[z], bsp, raw[z], pelvis_inside[z], seen)
        skull[z] = seen["skull"] > before["skull"]
        limb_seen[z] = [seen[k] - before[k] for k in limb_keys]
        if spine_x is not None:
            z0, z1 = z * block[0], min((z + 1) * block[0], cbone.shape[0])
            spine_front[z0:z1] = _spine_front_mm(cbone[z0:z1], spine_x, sp_c)
    floor = _head_context(raw, pelvis_inside, skull, bsp)
    if floor is not None:  # limbs and pelvic bones seen in the head's slices were not those
        for k, n in zip(limb_keys, limb_seen[floor:].sum(axis=0)):
            seen[k] -= int(n)
    classes = _smooth_z(raw, int(round(SMOOTH_MM / bsp[0])))
    vb = _running_low(spine_front, int(round(SPINE_WINDOW_MM / sp_c[0]))) + VB_CENTRE_BEHIND_EDGE_MM
    info = _describe(classes, seen, n_body_parts, perm, flip)
    return RegionMap(classes, pelvis_inside, vb, perm, flip, tuple(int(n) for n in hu.shape), sp_c, block, info)


def _head_context(raw: np.ndarray, pelvis_inside: np.ndarray, skull: np.ndarray, bsp) -> int | None:
    """Where a skull is in view, the slices from ``HEAD_BELOW_SKULL_MM`` below its lowest
    slice (or from the highest chest slice under it) to the top of the scan are head and
    neck: the face and the skull's cap have no rule of their own (no closed ring of bone,
    no trachea) and would otherwise read as abdomen or a limb joint. Chest (lung apices)
    and shoulder stay. Returns the first slice of that range (None without a skull)."""
    skull_z = np.flatnonzero(skull)
    if skull_z.size == 0:
        return None
    lowest = int(skull_z.min())
    floor = max(0, lowest - int(round(HEAD_BELOW_SKULL_MM / bsp[0])))
    chest_z = np.flatnonzero((raw[:lowest] == _CODE["chest"]).any(axis=(1, 2)))
    if chest_z.size:
        floor = max(floor, int(chest_z.max()) + 1)
    part = raw[floor:]
    relabel = (part > 0) & (part != _CODE["chest"]) & (part != _CODE["shoulder"])
    part[relabel] = _CODE["head_neck"]
    pelvis_inside[floor:][relabel] = False
    return floor


def _orientation(direction: np.ndarray) -> tuple[tuple[int, int, int], tuple[bool, bool, bool]]:
    """Which array axis runs superior, posterior, left (canonical axes 0, 1, 2), and whether reversed."""
    if direction.shape != (3, 3) or not np.all(np.isfinite(direction)):
        raise InputError(f"direction must be a finite 3 x 3 matrix, got shape {direction.shape}")
    perm, flip = [], []
    for lps in (2, 1, 0):  # S, P, L components
        weights = [abs(direction[lps, 2 - a]) for a in range(3)]
        a = int(np.argmax(weights))
        perm.append(a)
        flip.append(bool(direction[lps, 2 - a] < 0))
    if sorted(perm) != [0, 1, 2]:
        raise InputError("the volume's direction matrix is too oblique to tell its superior, posterior and left "
                         "axes apart; resample it to an axis-aligned grid")
    return (perm[0], perm[1], perm[2]), (flip[0], flip[1], flip[2])


def _to_canonical(a: np.ndarray, perm, flip) -> np.ndarray:
    out = np.transpose(a, perm)
    for c in range(3):
        if flip[c]:
            out = np.flip(out, axis=c)
    return out


def _block_features(hu: np.ndarray | None, body: np.ndarray | None, bone: np.ndarray | None, block):
    """Per block of ``block`` voxels: the shares of body, bone and air inside the body, and
    the highest HU (float32 arrays on the block grid). Without ``bone``, its share is None;
    without ``hu`` and ``body``, the others are.

    A ragged last block is taken as it is: a share still divides by the full block in-plane
    (as if padded with False), and along z by the slices its slab has. Worked through in
    chunks of slabs of a few million voxels, so that no whole-volume temporary is made."""
    bz, by, bx = block
    nz, ny, nx = (hu if hu is not None else bone).shape  # type: ignore[union-attr]
    oz, oy, ox = -(-nz // bz), -(-ny // by), -(-nx // bx)
    shares: list = [np.empty((oz, oy, ox), np.float32) if a is not None else None for a in (body, bone, body)]
    hu_max = np.empty((oz, oy, ox), np.float32) if hu is not None else None
    per_chunk = max(1, _CHUNK_VOXELS // (bz * ny * nx))
    # A block's count fits a byte for blocks up to 255 voxels (3 x 4 x 4 at 1 x 0.8 x 0.8 mm):
    # half the memory traffic of 16-bit counts, the same quotients.
    count_dtype = np.uint8 if bz * by * bx <= 255 else np.uint16
    for k0 in range(0, oz, per_chunk):
        k1 = min(oz, k0 + per_chunk)
        zs = slice(k0 * bz, min(k1 * bz, nz))
        # Voxels per block: the slab's slices (fewer in a short last slab) times a full block in-plane.
        size = np.minimum(bz, nz - np.arange(k0, k1) * bz)[:, None, None] * float(by * bx)
        if bone is not None:
            shares[1][k0:k1] = _block_reduce(bone[zs].view(np.uint8), block, np.add, count_dtype) / size
        if hu is None or body is None:
            continue
        h, b = hu[zs], body[zs]
        for out, part in ((shares[0], b), (shares[2], b & (h < int(AIR_HU)))):
            out[k0:k1] = _block_reduce(part.view(np.uint8), block, np.add, count_dtype) / size
        hu_max[k0:k1] = _block_reduce(h, block, np.maximum, h.dtype)
    return (*shares, hu_max)


def _block_reduce(a: np.ndarray, block, op, dtype) -> np.ndarray:
    """Reduce ``a`` with ``op`` (``np.add``, ``np.maximum``) over blocks of ``block`` elements,
    a ragged last block as it is: axis by axis, combining the strided views of the block's
    members (the fast way for numpy; ``reduceat`` over small blocks is not)."""
    for axis, k in enumerate(block):
        first = [slice(None)] * a.ndim
        first[axis] = slice(0, None, k)
        out = a[tuple(first)].astype(dtype)
        for j in range(1, k):
            take = [slice(None)] * a.ndim
            take[axis] = slice(j, None, k)
            part = a[tuple(take)]
            put = [slice(None)] * a.ndim
            put[axis] = slice(0, part.shape[axis])
            view = out[tuple(put)]
            op(view, part, out=view)
        a = out
    return a


def _classify_slice(body, bone, air, dense, bsp, out, pelvis_inside, seen) -> float | None:
    """Write region codes of the parts of one block-grid slice into ``out``; return the spine's x (mm)."""
    px = float(bsp[1] * bsp[2])
    labels, n = ndi.label(body, structure=np.ones((3, 3), bool))
    if n == 0:
        return None
    feats = []
    for k, sl in enumerate(ndi.find_objects(labels), start=1):
        part = labels[sl] == k
        if part.sum() * px < MIN_PART_MM2:
            continue
        feats.append(_part_features(k, sl, part, bone[sl], air[sl], dense[sl], bsp))
    trunk_seen = False
    spine_x = None
    limbs = []
    # Slices are visited from inferior to superior: lungs already seen lie below this slice.
    lungs_below = seen["lungs"] > 0
    for f in feats:
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
    big = [f for f in limbs if f["area"] >= 1500.0]
    paired = (not trunk_seen and len(big) >= 2
              and min(f["diam"] for f in big[:2]) >= 0.7 * max(f["diam"] for f in big[:2]))
    if paired:
        seen["paired_limbs"] += 1
    for f in limbs:
        lower = False if trunk_seen else (paired or f["diam"] >= 105.0)
        seen["lower_limb" if lower else "upper_limb"] += 1
        out[labels == f["label"]] = _CODE[_limb_class(f, lower)]
    return spine_x


def _paint_shoulder_level(f: dict, labels: np.ndarray, bsp, out: np.ndarray) -> None:
    """A slice through the shoulder girdle: the outer thirds are shoulder, the middle neck or chest."""
    part = labels == f["label"]
    x_mm = (np.arange(labels.shape[1]) + 0.5) * bsp[2]
    lateral = (np.abs(x_mm - f["cx"]) > f["width"] / 6.0)[None, :] & part
    apices = min(f["air_left"], f["air_right"]) >= 200.0
    out[part] = _CODE["chest" if apices else "head_neck"]
    out[lateral] = _CODE["shoulder"]


def _part_features(k, sl, part, bone, air, dense, bsp) -> dict:
    px = float(bsp[1] * bsp[2])
    ys, xs = np.nonzero(part)
    area = len(ys) * px
    cx = (xs.mean() + sl[1].start) * bsp[2]
    width = (xs.max() - xs.min() + 1) * bsp[2]
    y0, depth = (ys.min() + sl[0].start) * bsp[1], (ys.max() - ys.min() + 1) * bsp[1]
    bl, _ = ndi.label(bone & part, structure=np.ones((3, 3), bool))
    bones = []
    for j, bsl in enumerate(ndi.find_objects(bl), start=1):
        m = bl[bsl] == j
        a = m.sum() * px
        if a < MIN_BONE_MM2:
            continue
        by, bx = np.nonzero(m)
        bones.append({"area": a, "x": (bx.mean() + bsl[1].start + sl[1].start) * bsp[2],
                      "y_post": (by.max() + bsl[0].start + sl[0].start + 1) * bsp[1],
                      "y_ant": (by.min() + bsl[0].start + sl[0].start) * bsp[1],
                      "width": m.shape[1] * bsp[2], "label": j})
    central = [b for b in bones if abs(b["x"] - cx) < 0.15 * width]
    spine = [b for b in central if (b["y_post"] - y0) / depth > 0.7]
    spine_x = float(np.average([b["x"] for b in spine], weights=[b["area"] for b in spine])) if spine else None
    lateral = [b for b in bones if b not in central and b["area"] >= 500.0]
    pelvic = np.isin(bl, [b["label"] for b in lateral]) if lateral else None
    air_x = (np.nonzero(air & part)[1] + sl[1].start) * bsp[2]
    left = float(np.sum(air_x > cx) * px)
    right = float(np.sum(air_x <= cx) * px)
    ring = dense & part
    # binary_fill_holes' holes (4-connected background off the border), found faster
    enclosed = float((fill_holes_2d(ring) & ~dense).sum() * px) if ring.any() else 0.0
    tube = False
    if spine and not left + right > 0.05 * area:
        al, _ = ndi.label(air & part)
        front = min(b["y_ant"] for b in spine)
        for j, asl in enumerate(ndi.find_objects(al), start=1):
            a = (al[asl] == j).sum() * px
            ay_c = (asl[0].start + asl[0].stop) / 2 * bsp[1] + sl[0].start * bsp[1]
            ax_c = (asl[1].start + asl[1].stop) / 2 * bsp[2] + sl[1].start * bsp[2]
            if 50.0 <= a <= 1500.0 and ay_c < front and abs(ax_c - cx) < 0.2 * width:
                tube = True
    return {"label": k, "slice": sl, "area": area, "cx": cx, "diam": 2.0 * np.sqrt(area / np.pi), "width": width,
            "bones": bones, "spine_x": spine_x, "pelvic_bone": pelvic, "air_left": left, "air_right": right,
            "skull": enclosed >= 3000.0, "tube": tube}


def _trunk_class(f: dict) -> str | None:
    """Region of a part that is head, neck or trunk; None for a limb."""
    if f["skull"]:
        return "head_neck"
    each = max(0.02 * f["area"], 300.0)
    if f["diam"] >= 120.0 and f["air_left"] >= each and f["air_right"] >= each:
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


def _spine_front_mm(bone_slices: np.ndarray, spine_x_mm: float, sp_c) -> np.ndarray:
    """Posterior coordinate (mm) of the spine's anterior edge in a 20 mm strip round its x,
    on each of the slices ``bone_slices`` (``[z, y, x]``; nan where the strip has no bone).

    Walks the strip's bone rows from the posterior-most one forwards (spinous process,
    laminae, canal, vertebral body) and stops at a soft-tissue gap wider than
    ``SPINE_GAP_MM``: the canal is narrower, while the aorta, heart and sternum lie
    farther in front.
    """
    c = int(round(spine_x_mm / sp_c[2]))
    h = max(1, int(round(10.0 / sp_c[2])))
    strips = bone_slices[:, :, max(c - h, 0):c + h + 1].any(axis=2)  # [slice, row]: bone in the strip
    row = np.arange(strips.shape[1])
    # For each bone row, the bone row before it (-1 for the first): a run of bone rows
    # starts where the gap from that row is wider than SPINE_GAP_MM, or at the first one.
    before = np.maximum.accumulate(np.where(strips, row, -1), axis=1)
    before = np.concatenate((np.full((len(strips), 1), -1), before[:, :-1]), axis=1)
    starts = strips & ((before < 0) | ((row - before) * sp_c[1] > SPINE_GAP_MM))
    # The posterior-most run: its start is the last start.
    last = np.where(starts, row, -1).max(axis=1)
    return np.where(last >= 0, last * sp_c[1], np.nan)


def _running_low(v: np.ndarray, half: int) -> np.ndarray:
    """Lower quartile of the finite values within +-``half`` (anterior-most but robust to a stray slice).

    Each window's value is ``np.percentile(window's finite values, 25)``; windows with the
    same number of finite values go to ``np.percentile`` together as the rows of one array
    (the same values: one order statistic and one interpolation per row)."""
    out = np.full(v.shape, np.nan)
    finite = np.isfinite(v)
    groups: dict[int, tuple[list[int], list[np.ndarray]]] = {}
    for i in range(len(v)):
        w = v[max(i - half, 0):i + half + 1]
        w = w[finite[max(i - half, 0):i + half + 1]]
        if w.size:
            where, rows = groups.setdefault(w.size, ([], []))
            where.append(i)
            rows.append(w)
    for where, rows in groups.values():
        out[where] = np.percentile(np.array(rows), 25, axis=1)  # nanpercentile's value: it drops the nans
    return out


def _smooth_z(raw: np.ndarray, half: int) -> np.ndarray:
    """Majority class at each in-plane position over +-``half`` block slices (body voxels only)."""
    if half < 1 or raw.shape[0] < 2:
        return raw
    best = np.zeros(raw.shape, np.float32)
    out = np.zeros_like(raw)
    for code in np.unique(raw[raw > 0]):
        votes = ndi.uniform_filter1d((raw == code).astype(np.float32), 2 * half + 1, axis=0, mode="nearest")
        take = votes > best
        out[take] = code
        best[take] = votes[take]
    out[raw == 0] = 0
    return out


def _describe(classes, seen, n_body_parts, perm, flip) -> dict:
    codes, counts = np.unique(classes[classes > 0], return_counts=True)
    share = {_NAME[int(c)]: round(float(n) / float(counts.sum()), 3) for c, n in zip(codes, counts)}
    known = {k: v for k, v in share.items() if k != "unknown"}
    fov = max(known, key=known.get) if known else "unknown"
    n_slices = int(classes.shape[0])
    return {"field_of_view": fov, "regions": share,
            "landmarks": {k: round(v / max(n_slices, 1), 3) for k, v in seen.items()},
            "n_body_parts": int(n_body_parts),
            "canonical_axes": {"superior": int(perm[0]), "posterior": int(perm[1]), "left": int(perm[2]),
                               "reversed": [bool(f) for f in flip]}}
