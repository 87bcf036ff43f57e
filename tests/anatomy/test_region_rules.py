"""A block slice's part features and the z vote equal their plain versions: the features
from counts per column and per label against the index lists they replace, the one-class
vote against the filter's vote."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from calcinosis.anatomy.morphology import fill_holes_2d
from calcinosis.anatomy.region_rules import MIN_BONE_MM2, _part_features
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
    pelvic = np.isin(bl, [b["label"] for b in lateral]) if lateral else None
    air_x = (np.nonzero(air & part)[1] + sl[1].start) * bsp[2]
    left = float(np.sum(air_x > cx) * px)
    right = float(np.sum(air_x <= cx) * px)
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
            if 50.0 <= a <= 1500.0 and ay_c < front and abs(ax_c - cx) < 0.2 * width:
                tube = True
    return {"label": k, "slice": sl, "area": area, "cx": cx, "diam": 2.0 * np.sqrt(area / np.pi), "width": width,
            "bones": bones, "spine_x": spine_x, "pelvic_bone": pelvic, "air_left": left, "air_right": right,
            "skull": enclosed >= 3000.0, "tube": tube}


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
        air |= (yy - 25) ** 2 + (xx - 45) ** 2 <= 6
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
            if key == "pelvic_bone":
                assert (got[key] is None) == (want[key] is None)
                if want[key] is not None:
                    np.testing.assert_array_equal(got[key], want[key])
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
