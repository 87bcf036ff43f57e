"""A block slice's part features and the z vote equal their plain versions: the features
from counts per column and per label against the index lists they replace, the one-class
vote against the filter's vote."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from calcinosis.anatomy.morphology import fill_holes_2d
from calcinosis.anatomy.region_rules import (
    _CODE,
    MIN_BONE_MM2,
    TRACHEA_MAX_AHEAD_MM,
    TRACHEA_MAX_MM2,
    TRACHEA_MAX_OFFSET_MM,
    _arm_lobes,
    _classify_slice,
    _part_features,
    _plates_and_arms,
    slice_parts,
)
from calcinosis.anatomy.regions import _smooth_z


def _plain_part_features(k, sl, part, bone, air, dense, bsp) -> dict:
    """The features from the pixels' index lists (the version the fast one replaced)."""
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
    air_x = (np.nonzero(air & part)[1] + sl[1].start) * bsp[2]
    left = float(np.sum(air_x > cx) * px)
    right = float(np.sum(air_x <= cx) * px)
    air_y = np.nonzero(air & part)[0]
    backs = [float(np.mean(air_y[side])) / len(np.unique(ys)) if side.any() else 0.0
             for side in (air_x > cx, air_x <= cx)]
    ring = dense & part
    enclosed = float((fill_holes_2d(ring) & ~dense).sum() * px) if ring.any() else 0.0
    tube = False
    if spine and not left + right > 0.05 * area:
        al, _ = ndi.label(air & part)
        front = min(b["y_ant"] for b in spine)
        for j, asl in enumerate(ndi.find_objects(al), start=1):
            a = (al[asl] == j).sum() * px
            ay_c = (asl[0].start + asl[0].stop) / 2 * bsp[1] + sl[0].start * bsp[1]
            ax_c = (asl[1].start + asl[1].stop) / 2 * bsp[2] + sl[1].start * bsp[2]
            if 50.0 <= a <= TRACHEA_MAX_MM2 and front - TRACHEA_MAX_AHEAD_MM < ay_c < front \
                    and abs(ax_c - cx) < 0.2 * width and abs(ax_c - spine_x) < TRACHEA_MAX_OFFSET_MM:
                tube = True
    # The plates and arms from the bones found here (their rules are the same code; the
    # equality checks the pieces they are read from).
    return {"label": k, "slice": sl, "area": area, "cx": cx, "diam": 2.0 * np.sqrt(area / np.pi), "width": width,
            "bones": bones, "spine_x": spine_x, "air_left": left, "air_right": right,
            "air_back": min(backs), "skull": enclosed >= 3000.0, "tube": tube,
            **_plates_and_arms(part, bl, spine, lateral, tube, bsp, sl[1].start)}


def _slice(rng: np.random.Generator, kind: int):
    """A block slice (3 mm blocks) with body parts holding bones, air and dense shells."""
    ny, nx = 70, 90
    yy, xx = np.mgrid[0:ny, 0:nx]
    body = (yy - 35) ** 2 / 30.0 ** 2 + (xx - 45) ** 2 / rng.uniform(25, 42) ** 2 <= 1.0
    if kind % 2:
        body |= (yy - 20) ** 2 + (xx - 8) ** 2 <= 36  # a second part (an arm)
    noise = ndi.gaussian_filter(rng.random((ny, nx)), 1.2)
    bone = (noise > np.quantile(noise, 0.85)) & body
    bone |= ((yy - 60) ** 2 + (xx - 45 + rng.integers(-4, 5)) ** 2 <= 16) & body  # a posterior central bone
    if kind in (0, 2):  # bone plates beside the spine (iliac wings)
        bone |= (((yy - 40) ** 2 + (xx - 22) ** 2 <= 25) | ((yy - 40) ** 2 + (xx - 68) ** 2 <= 25)) & body
    air = np.zeros_like(body)
    if kind in (1, 2):  # lungs on both sides
        air |= ((yy - 32) ** 2 + (xx - 30) ** 2 <= 64) | ((yy - 32) ** 2 + (xx - 60) ** 2 <= 64)
    if kind in (3, 4):  # a tube in front of the spine, little air
        air |= (yy - 35) ** 2 + (xx - 45) ** 2 <= 6
    air &= body & ~bone
    dense = bone.copy()
    if kind == 4:  # a closed shell round soft tissue
        ring = ((yy - 35) ** 2 + (xx - 45) ** 2 <= 22 ** 2) & ((yy - 35) ** 2 + (xx - 45) ** 2 >= 19 ** 2)
        dense |= ring & body
    return body, bone, air, dense


@pytest.mark.parametrize("seed", range(8))
def test_part_features_equal_the_index_list_version(seed):
    rng = np.random.default_rng(seed)
    body, bone, air, dense = _slice(rng, seed % 5)
    bsp = np.array([3.0, 3.0 * rng.uniform(0.8, 1.25), 3.0 * rng.uniform(0.8, 1.25)])
    labels, _ = ndi.label(body, structure=np.ones((3, 3), bool))
    seen_keys = set()
    for k, sl in enumerate(ndi.find_objects(labels), start=1):
        part = labels[sl] == k
        got = _part_features(k, sl, part, bone[sl], air[sl], dense[sl], bsp)
        want = _plain_part_features(k, sl, part, bone[sl], air[sl], dense[sl], bsp)
        assert got.keys() == want.keys()
        for key in want:
            if key in ("pelvic_bone", "pelvic_with_arms"):
                assert (got[key] is None) == (want[key] is None)
                if want[key] is not None:
                    np.testing.assert_array_equal(got[key], want[key])
            elif key == "arms":
                assert (got[key] is None) == (want[key] is None)
                if want[key] is not None:
                    np.testing.assert_array_equal(got[key][0], want[key][0])
                    assert got[key][1] == want[key][1]
            else:
                assert got[key] == want[key], key  # the same floats, bit for bit
        seen_keys |= {key for key in ("tube", "skull") if want[key]}
        seen_keys |= {"lungs"} if min(want["air_left"], want["air_right"]) > 0 else set()
        seen_keys |= {"pelvic"} if want["pelvic_bone"] is not None else set()
    if seed % 5 == 4:
        assert "skull" in seen_keys


def test_part_features_cover_tube_lungs_and_pelvic_bone():
    """The cases above meet each branch at least once (else the equality says little)."""
    seen = set()
    for seed in range(8):
        rng = np.random.default_rng(seed)
        body, bone, air, dense = _slice(rng, seed % 5)
        bsp = np.array([3.0, 3.0, 3.0])
        labels, _ = ndi.label(body, structure=np.ones((3, 3), bool))
        for k, sl in enumerate(ndi.find_objects(labels), start=1):
            f = _part_features(k, sl, labels[sl] == k, bone[sl], air[sl], dense[sl], bsp)
            seen |= {key for key in ("tube", "skull") if f[key]}
            seen |= {"lungs"} if min(f["air_left"], f["air_right"]) > 0 else set()
            seen |= {"pelvic"} if f["pelvic_bone"] is not None else set()
            seen |= {"spine"} if f["spine_x"] is not None else set()
    assert seen == {"tube", "skull", "lungs", "pelvic", "spine"}


def _plain_smooth_z(raw: np.ndarray, half: int) -> np.ndarray:
    best = np.zeros(raw.shape, np.float32)
    out = np.zeros_like(raw)
    for code in np.unique(raw[raw > 0]):
        votes = ndi.uniform_filter1d((raw == code).astype(np.float32), 2 * half + 1, axis=0, mode="nearest")
        take = votes > best
        out[take] = code
        best[take] = votes[take]
    out[raw == 0] = 0
    return out


@pytest.mark.parametrize("codes", [(3,), (2, 3), (2, 3, 7)])
def test_z_vote_of_one_class_is_the_filter_vote(codes):
    rng = np.random.default_rng(len(codes))
    raw = rng.choice(np.array((0,) + codes, np.uint8), (30, 12, 14))
    got = _smooth_z(raw, 3)
    np.testing.assert_array_equal(got, _plain_smooth_z(raw, 3))
    if len(codes) > 1:  # the vote changes something: a test that can fail
        assert not np.array_equal(got, raw)


def test_slice_parts_keep_the_parts_large_enough_with_their_features():
    """The bone-free part features made ahead (while detection runs), completed with the
    bone later, equal the features made in one go; a piece under MIN_PART_MM2 is no part."""
    from calcinosis.anatomy.region_rules import MIN_PART_MM2, _with_bones, slice_parts

    rng = np.random.default_rng(3)
    body, bone, air, dense = _slice(rng, 3)
    body[2:4, 80:82] = True  # 4 blocks of 9 mm2: a speck, not a part
    bsp = np.array([3.0, 3.0, 3.0])
    labels, parts = slice_parts(body, air, dense, bsp)
    want_labels, n = ndi.label(body, structure=np.ones((3, 3), bool))
    np.testing.assert_array_equal(labels, want_labels)
    sizes = np.bincount(want_labels.ravel())[1:] * 9.0
    assert [p["label"] for p in parts] == [k + 1 for k in range(n) if sizes[k] >= MIN_PART_MM2]
    assert len(parts) < n
    for p in parts:
        sl = p["slice"]
        got = _with_bones(p, bone[sl], bsp)
        want = _plain_part_features(p["label"], sl, labels[sl] == p["label"], bone[sl], air[sl], dense[sl], bsp)
        assert {k: v for k, v in got.items() if k != "pelvic_bone"} == \
            {k: v for k, v in want.items() if k != "pelvic_bone"}


def _trunk_with_arms(pressed: bool, plates: bool = False):
    """A 3 mm block slice of an upper abdomen (a 330 x 210 mm trunk, a vertebra at the back)
    with the arms down: each a 90 mm round part with a humerus, touching the trunk's flank
    (through a 45 mm neck, or ``pressed`` along its length); ``plates`` adds iliac plates
    inside the trunk instead of arms. Returns body, bone, air, dense."""
    ny, nx = 80, 170
    yy, xx = np.mgrid[0:ny, 0:nx]
    body = (yy - 40) ** 2 / 35.0 ** 2 + (xx - 85) ** 2 / 55.0 ** 2 <= 1.0
    bone = ((yy - 62) ** 2 + (xx - 85) ** 2 <= 25) & body  # the vertebra
    if plates:
        bone |= ((yy - 45) ** 2 / 16 + (xx - 50) ** 2 / 4 <= 9) | ((yy - 45) ** 2 / 16 + (xx - 120) ** 2 / 4 <= 9)
    else:
        for cx in (17, 153):
            arm = (yy - 45) ** 2 + (xx - cx) ** 2 <= 15 ** 2
            if not pressed:
                arm &= np.abs(yy - 45) <= 15
            body |= arm
            bone |= (yy - 45) ** 2 + (xx - cx) ** 2 <= 5 ** 2
        bridge = (np.abs(yy - 45) <= (13 if pressed else 7)) & (((xx >= 25) & (xx <= 35)) | ((xx >= 135) & (xx <= 145)))
        body |= bridge
    bone &= body
    air = np.zeros_like(body)
    return body, bone, air, bone.copy()


@pytest.mark.parametrize("pressed", [False, True])
def test_arms_lying_against_the_trunk_are_arms_not_pelvic_plates(pressed):
    body, bone, air, dense = _trunk_with_arms(pressed)
    bsp = np.array([3.0, 3.0, 3.0])
    labels, parts = slice_parts(body, air, dense, bsp)
    assert len(parts) == 1  # one part: the trunk with its arms
    out = np.zeros(body.shape, np.uint8)
    seen = {"skull": 0, "lungs": 0, "spine": 0, "pelvic_bones": 0, "paired_limbs": 0, "upper_limb": 0,
            "lower_limb": 0}
    _classify_slice(labels, parts, bone, bsp, out, np.zeros(body.shape, bool), seen)
    assert out[40, 85] == _CODE["abdomen"]  # not pelvis: the humeri are no pelvic plates
    assert seen["pelvic_bones"] == 0 and seen["upper_limb"] == 2
    for cx in (17, 153):  # each arm is a limb region
        assert out[45, cx] in (_CODE["upper_arm"], _CODE["elbow"], _CODE["forearm"])


def test_pelvic_plates_inside_the_trunk_stay_pelvic():
    body, bone, air, dense = _trunk_with_arms(False, plates=True)
    bsp = np.array([3.0, 3.0, 3.0])
    labels, parts = slice_parts(body, air, dense, bsp)
    f = _part_features(1, parts[0]["slice"], labels[parts[0]["slice"]] == 1, bone[parts[0]["slice"]],
                       air[parts[0]["slice"]], dense[parts[0]["slice"]], bsp)
    assert f["arms"] is None and f["pelvic_bone"] is not None


def test_arm_lobes_need_a_neck_or_a_far_bone_near_the_outline():
    """Directly: the watershed lobe (a neck) and the pressed arm (no neck, bone 205 mm out)."""
    for pressed in (False, True):
        body, bone, _, _ = _trunk_with_arms(pressed)
        bl, _ = ndi.label(bone, structure=np.ones((3, 3), bool))
        bsp = np.array([3.0, 3.0, 3.0])
        spine = [{"label": int(bl[62, 85]), "x": 85 * 3.0, "area": 80.0 * 9}]
        lateral = [{"label": int(bl[45, cx]), "x": cx * 3.0, "area": 78.0 * 9} for cx in (17, 153)]
        lobes, in_lobe = _arm_lobes(body, bl, spine, lateral, bsp, 0)
        assert in_lobe == {b["label"] for b in lateral}
        assert lobes[45, 17] and lobes[45, 153] and not lobes[40, 85]


def test_a_pressed_arm_on_one_side_leaves_the_other_flank_trunk():
    """Only the bone's side of the part is the arm: a trunk wide enough to reach as far out
    on the other side (no arm there) keeps that flank."""
    body, bone, _, _ = _trunk_with_arms(pressed=True)
    body[:, 153 - 16:] = False  # no arm on the right of the drawing
    bone &= body
    yy, xx = np.mgrid[0:body.shape[0], 0:body.shape[1]]
    body |= (yy - 40) ** 2 / 35.0 ** 2 + (xx - 85) ** 2 / 70.0 ** 2 <= 1.0  # a wider trunk: 210 mm either side
    bl, _ = ndi.label(bone, structure=np.ones((3, 3), bool))
    bsp = np.array([3.0, 3.0, 3.0])
    spine = [{"label": int(bl[62, 85]), "x": 85 * 3.0, "area": 80.0 * 9}]
    lateral = [{"label": int(bl[45, 17]), "x": 17 * 3.0, "area": 78.0 * 9}]
    lobes, in_lobe = _arm_lobes(body, bl, spine, lateral, bsp, 0)
    assert in_lobe == {lateral[0]["label"]}
    assert lobes[45, 17] and not lobes[:, 85:].any()


@pytest.mark.parametrize("air_row, want", [(52, "chest"), (18, "abdomen")])
def test_air_on_both_sides_is_lungs_only_towards_the_back(air_row, want):
    """Air on both sides of a trunk (a 330 x 210 mm part with a vertebra at the back) is lungs
    when it lies back in the part; gas of the transverse colon lies in front: abdomen."""
    from calcinosis.anatomy.region_rules import _trunk_class

    body, bone, _, dense = _trunk_with_arms(False, plates=True)
    bone[:, :70] = False
    bone[:, 100:] = False  # no plates: the vertebra only
    yy, xx = np.mgrid[0:body.shape[0], 0:body.shape[1]]
    air = (((yy - air_row) ** 2 / 64 + (xx - 60) ** 2 / 144 <= 1) | ((yy - air_row) ** 2 / 64 + (xx - 110) ** 2 / 144 <= 1))
    air &= body & ~bone
    bsp = np.array([3.0, 3.0, 3.0])
    labels, parts = slice_parts(body, air, bone, bsp)
    (p,) = parts
    f = _part_features(p["label"], p["slice"], labels[p["slice"]] == p["label"], bone[p["slice"]],
                       air[p["slice"]], bone[p["slice"]], bsp)
    assert min(f["air_left"], f["air_right"]) >= 300.0  # enough air on each side either way
    assert _trunk_class(f) == want


@pytest.mark.parametrize("n_bones, want", [(4, "pelvis"), (2, "thigh")])
def test_both_hips_in_one_part_below_the_sacrum_are_pelvis_not_a_foot(n_bones, want):
    """A lower-body part 360 x 240 mm with no spine (below the sacrum): with femoral heads and
    ischia (4 bones) the limb rules would say ankle_foot; no foot is that wide, so it is the
    pelvis's lowest slice. Two thighs pressed together (2 femurs) stay a thigh."""
    ny, nx = 90, 130
    yy, xx = np.mgrid[0:ny, 0:nx]
    body = (yy - 45) ** 2 / 40.0 ** 2 + (xx - 65) ** 2 / 60.0 ** 2 <= 1.0
    bone = np.zeros_like(body)
    for cx in (35, 95):  # femoral heads (or shafts)
        bone |= (yy - 40) ** 2 + (xx - cx) ** 2 <= 7 ** 2
    if n_bones == 4:
        for cx in (50, 80):  # ischia
            bone |= (yy - 60) ** 2 / 16 + (xx - cx) ** 2 / 9 <= 1
    air = np.zeros_like(body)
    bsp = np.array([3.0, 3.0, 3.0])
    labels, parts = slice_parts(body, air, bone, bsp)
    out = np.zeros(body.shape, np.uint8)
    seen = {"skull": 0, "lungs": 0, "spine": 0, "pelvic_bones": 0, "paired_limbs": 0, "upper_limb": 0,
            "lower_limb": 0}
    _classify_slice(labels, parts, bone, bsp, out, np.zeros(body.shape, bool), seen)
    assert out[45, 65] == _CODE[want]
    assert seen["pelvic_bones"] == (1 if want == "pelvis" else 0)
