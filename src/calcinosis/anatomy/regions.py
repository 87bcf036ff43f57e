"""Body region of points, from the anatomy visible in the field of view.

Classical cues only, on masks block-averaged to about 3 mm; no model weights.
The volume is first turned to a canonical orientation (array axes: superior,
posterior, patient-left) from its direction matrix, so a scan stored upside down
or mirrored gives the same regions.

Each axial slice is cut into body parts (2-D connected pieces of the body mask)
and each part is classified from what it contains:

``head_neck``  a closed shell of dense bone round soft tissue (skull and brain), or
               a neck: a central bone (cervical spine) with an air tube (trachea:
               at most 750 mm2, within 20 mm of the spine's middle and 50 mm in front
               of it; the stomach's and bowel's gas is larger, to one side or farther
               forward) and no lungs, in a part less than 190 mm across; where a skull is
               in view, everything from 200 mm below it (not below lungs) up to
               the top of the scan: the face and the skull's cap;
``chest``      lungs: air (< -500 HU) inside the body on both sides of the
               part's centre, each side at least 2 % of the part (and 300 mm2),
               lying back in the part (each side's mean row at least 35 % of its
               depth from the front: gas of the transverse colon lies in front);
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

Lower-limb parts within 200 mm below the lowest pelvis slice are ``thigh`` whatever their
bones (the trochanters and ischium read as a knee's share of bone); a lower-limb part that the
limb rules call a knee or foot but is 240 mm or more across (both hips in one part below the
sacrum: femoral heads, ischia) is ``pelvis`` (below the lungs only).

Part classes are smoothed along z by a majority vote over +-10 mm at each
in-plane position, which removes single-slice flips (a disc level, a gap between
carpal bones). ``unknown`` when no rule decides (no bone in a limb, a part with
no cue). ``shoulder``: a trachea with large bones beside it (scapulae, humeral
heads) and no bilateral lungs marks the shoulder girdle, as do "pelvic" bone plates
beside the spine above slices with lungs (the pelvis lies below them); its outer
thirds are shoulder, its middle neck (or chest where lung apices show). Arms lying apart
from the trunk are upper_arm/elbow/forearm by the limb rules; arms lying against the trunk
(arms down on an abdominal scan) join its part: below the lungs and without a trachea, a big
lateral bone in a lobe of the part's outline (the outline narrows between it and the trunk), or
195 mm or more from the spine and within 55 mm of the outline, is an arm's, not a pelvic plate,
and its lobe is named by the limb rules.

This module holds the map (:class:`RegionMap`) and the pass over the slices
(:func:`body_regions`); the block features are made in
:mod:`calcinosis.anatomy.region_features`, a slice's parts are named in
:mod:`calcinosis.anatomy.region_rules`, the back's plane is found in
:mod:`calcinosis.anatomy.region_back`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from calcinosis.anatomy.region_back import (
    SPINE_WINDOW_MM,
    VB_CENTRE_BEHIND_EDGE_MM,
    _running_low,
    _spine_front_mm,
)
from calcinosis.anatomy.region_features import (
    RegionFeatures,
    _block_features,
    _checked_spacing,
    _to_canonical,
    region_features,
)
from calcinosis.anatomy.region_rules import _CODE, _NAME, REGIONS, _classify_slice
from calcinosis.errors import InputError

__all__ = ["REGIONS", "RegionFeatures", "RegionMap", "body_regions", "region_features"]

SMOOTH_MM = 10.0  # half-window of the z majority vote
# Below the lowest slice with a skull, the face and neck reach this far (mm) before the chest.
HEAD_BELOW_SKULL_MM = 200.0
# Below the pelvis the thighs reach this far (mm) before a knee can be: an adult femur is
# 400-500 mm long.
THIGH_BELOW_PELVIS_MM = 200.0


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
    body_f = features.body_share
    bone_f = _block_features(None, None, cbone, block)[1]
    body_b = body_f >= 0.5
    bone_b = (bone_f >= 0.3) & body_b

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
        labels, parts = features.parts[z]
        spine_x = _classify_slice(labels, parts, bone_b[z], bsp, raw[z], pelvis_inside[z], seen)
        skull[z] = seen["skull"] > before["skull"]
        limb_seen[z] = [seen[k] - before[k] for k in limb_keys]
        if spine_x is not None:
            z0, z1 = z * block[0], min((z + 1) * block[0], cbone.shape[0])
            spine_front[z0:z1] = _spine_front_mm(cbone[z0:z1], spine_x, sp_c)
    floor = _head_context(raw, pelvis_inside, skull, bsp)
    if floor is not None:  # limbs and pelvic bones seen in the head's slices were not those
        for k, n in zip(limb_keys, limb_seen[floor:].sum(axis=0)):
            seen[k] -= int(n)
    _thighs_below_pelvis(raw, bsp)
    classes = _smooth_z(raw, int(round(SMOOTH_MM / bsp[0])))
    vb = _running_low(spine_front, int(round(SPINE_WINDOW_MM / sp_c[0]))) + VB_CENTRE_BEHIND_EDGE_MM
    info = _describe(classes, seen, n_body_parts, perm, flip)
    return RegionMap(classes, pelvis_inside, vb, perm, flip, tuple(int(n) for n in hu.shape), sp_c, block, info)


def _thighs_below_pelvis(raw: np.ndarray, bsp) -> None:
    """Lower-limb parts within ``THIGH_BELOW_PELVIS_MM`` below the lowest pelvis slice are
    thighs, whatever their bones say: there the femur's trochanters and the ischium make a
    large share of bone that the limb rules read as a knee (or, with more pieces, an ankle).
    ``raw`` (canonical block grid, index 0 the most inferior slice) is changed in place."""
    pelvic = np.flatnonzero((raw == _CODE["pelvis"]).any(axis=(1, 2)))
    if pelvic.size == 0:
        return
    low = int(pelvic[0])
    top = max(low - int(round(THIGH_BELOW_PELVIS_MM / float(bsp[0]))), 0)
    block = raw[top:low]
    block[np.isin(block, [_CODE["knee"], _CODE["ankle_foot"], _CODE["leg"]])] = _CODE["thigh"]


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


def _smooth_z(raw: np.ndarray, half: int) -> np.ndarray:
    """Majority class at each in-plane position over +-``half`` block slices (body voxels only)."""
    if half < 1 or raw.shape[0] < 2:
        return raw
    codes = np.unique(raw[raw > 0])
    if codes.size <= 1:
        # One class: it wins wherever it is (its vote there is at least one slice's, more
        # than nothing), and the body's other voxels are none.
        return raw
    best = np.zeros(raw.shape, np.float32)
    out = np.zeros_like(raw)
    for code in codes:
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
