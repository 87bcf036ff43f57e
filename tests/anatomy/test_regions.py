"""Body regions from the anatomy in view: phantoms (exact truth), synthetic limbs, a real chest CT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from calcinosis.anatomy.body import find_body
from calcinosis.anatomy.morphology import distance_inside_mm
from calcinosis.anatomy.regions import REGIONS, body_regions
from calcinosis.errors import InputError
from calcinosis.phantom import make_ct_phantom

REAL_CT = Path(__file__).resolve().parents[3] / "shared" / "data" / "real-ct" / "chest-ct-lung1.nrrd"
LUNG_HU = -850


def _masks(hu: np.ndarray, spacing_zyx, b=None):
    """Body crop and mask (find_body) and a simple bone mask: large >= 200 HU pieces, filled per slice."""
    b = find_body(hu, spacing_zyx) if b is None else b
    sub = hu[b.crop]
    lab, _ = ndi.label((sub >= 200) & b.mask)
    sizes = np.bincount(lab.ravel()) * float(np.prod(spacing_zyx))
    keep = np.flatnonzero(sizes >= 300.0)
    bone = np.isin(lab, keep[keep > 0])
    bone = np.stack([ndi.binary_fill_holes(s) for s in bone])
    return b, sub, bone


def _add_lungs(ph):
    """The trunk phantom's HU with lungs above its diaphragm level (z >= 0).

    The phantom decides chest vs abdomen by ``z >= 0`` but draws the same slices on
    both sides (ribs everywhere, no lungs), so no image cue separates them. Real
    chests have lungs above the diaphragm; we paint them: air (-850 HU) deeper than
    45 mm inside the body, more than 40 mm from the midline, away from every deposit.
    """
    vol = ph.volume
    hu = vol.array.copy()
    sp = vol.spacing[::-1]
    b = find_body(hu, sp)
    depth = np.zeros(hu.shape, np.float32)
    depth[b.crop] = distance_inside_mm(b.mask, sp, in_plane=True)
    zz, _, xx = np.indices(hu.shape, sparse=True)
    lps_x = vol.origin[0] + xx * vol.spacing[0]
    lps_z = vol.origin[2] + zz * vol.spacing[2]
    lung = (depth > 45.0) & (np.abs(lps_x) > 40.0) & (lps_z >= 0.0) & (hu < 150)
    for d in ph.deposits:  # keep clear of a ball round each deposit, worked on its box
        c = vol.lps_to_index(np.array(d.centroid_lps))
        r = d.equivalent_diameter_mm / 2 + 10.0
        lo = [max(int(np.floor(ci - r / s)), 0) for ci, s in zip(c, sp)]
        hi = [min(int(np.ceil(ci + r / s)) + 1, n) for ci, s, n in zip(c, sp, hu.shape)]
        bz, by, bx = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        ball = ((bz - c[0]) * sp[0]) ** 2 + ((by - c[1]) * sp[1]) ** 2 + ((bx - c[2]) * sp[2]) ** 2 <= r * r
        lung[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] &= ~ball
    hu[lung] = LUNG_HU
    return hu, b  # the lungs lie deep inside: the body mask is unchanged


def _regions_of(hu, vol, deposits, b=None):
    sp = vol.spacing[::-1]
    b, sub, bone = _masks(hu, sp, b)
    rm = body_regions(sub, b.mask, bone, sp, vol.direction, n_body_parts=b.n_parts)
    out = []
    for d in deposits:
        idx = np.round(vol.lps_to_index(np.array(d.centroid_lps))).astype(int)
        out.append(rm.region_at(tuple(int(i - c.start) for i, c in zip(idx, b.crop))))
    return rm, out


@pytest.fixture(scope="module")
def phantom_results():
    rows = []
    for part in ("thighs", "elbow", "trunk"):
        for seed in (0, 1):
            ph = make_ct_phantom(part, seed=seed, pixel_mm=1.0, length_mm=48.0, keep_noiseless=False)
            hu, b = _add_lungs(ph) if part == "trunk" else (ph.volume.array, None)
            rm, got = _regions_of(hu, ph.volume, ph.deposits, b)
            rows.append((part, seed, ph, hu, rm, got))
    return rows


def test_phantom_regions_at_least_95_percent(phantom_results):
    """Region right for >= 95 % of deposits over thighs, elbow and trunk (lungs above z = 0)."""
    n = ok = 0
    wrong = []
    for part, seed, ph, _, _, got in phantom_results:
        for d, g in zip(ph.deposits, got):
            n += 1
            ok += g == d.region
            if g != d.region:
                wrong.append((part, seed, d.region, g, round(d.centroid_lps[2], 1)))
    assert n >= 60
    assert ok / n >= 0.95, wrong
    # every kind of truth the phantoms hold is met at least once
    seen = {d.region for _, _, ph, _, _, _ in phantom_results for d in ph.deposits}
    assert {"thigh", "elbow", "chest", "abdomen", "back"} <= seen


def test_phantom_field_of_view_and_landmarks(phantom_results):
    for part, _, _, _, rm, _ in phantom_results:
        info = rm.describe()
        marks = info["landmarks"]
        if part == "thighs":
            assert info["field_of_view"] == "thigh"
            assert marks["paired_limbs"] > 0.9 and marks["spine"] == 0
        elif part == "elbow":
            assert info["field_of_view"] == "elbow"
            assert marks["upper_limb"] > 0.9 and marks["lower_limb"] == 0
        else:
            assert marks["spine"] > 0.9 and 0.3 < marks["lungs"] < 0.7
            assert set(info["regions"]) >= {"chest", "abdomen"}


def _trunk(phantom_results):
    return next((ph, hu, got) for part, _, ph, hu, _, got in phantom_results if part == "trunk")


def test_rib_cage_without_lungs_is_abdomen(phantom_results):
    """Ribs at every level but the lungs filled in with soft tissue: ribs alone do not make a chest."""
    ph, _, _ = _trunk(phantom_results)
    body = find_body(ph.volume.array, ph.volume.spacing_zyx)
    inside = np.zeros(ph.volume.shape, bool)
    inside[body.crop] = body.mask
    no_lungs = np.where(inside & (ph.volume.array < -500), np.int16(40), ph.volume.array)
    rm, got = _regions_of(no_lungs, ph.volume, ph.deposits)
    for d, g in zip(ph.deposits, got):
        assert g == ("back" if d.region == "back" else "abdomen"), (d.region, g)
    assert rm.describe()["landmarks"]["lungs"] == 0


def test_flipped_axes_give_the_same_regions(phantom_results):
    """Reversing z and x in the array, with the direction columns negated, changes no region."""
    ph, hu, want = _trunk(phantom_results)
    vol = ph.volume
    flipped_hu = hu[::-1, :, ::-1].copy()
    direction = vol.direction @ np.diag([-1.0, 1.0, -1.0])
    nz, _, nx = hu.shape
    origin = vol.index_to_lps(np.array([nz - 1, 0, nx - 1], float))
    flipped = vol.__class__(flipped_hu, vol.spacing, tuple(float(v) for v in origin), direction)
    assert np.allclose(flipped.lps_to_index(np.array(ph.deposits[0].centroid_lps))[[0, 2]],
                       [nz - 1, nx - 1] - vol.lps_to_index(np.array(ph.deposits[0].centroid_lps))[[0, 2]])
    _, got = _regions_of(flipped_hu, flipped, ph.deposits)
    assert got == want
    assert set(want) & {"chest", "abdomen"}


def _limb_scene(diams_mm, bones_per_limb, bone_diam_mm, *, pixel=1.0, nz=12):
    """Circular limbs side by side along x, each with bones in a row; all bone is 1000 HU."""
    width = int(sum(diams_mm) + 40 * len(diams_mm) + 40)
    height = int(max(diams_mm) + 40)
    yy, xx = np.mgrid[0:height, 0:width] * pixel
    body = np.zeros((height, width), bool)
    bone = np.zeros_like(body)
    x0 = 40.0
    for d in diams_mm:
        cx, cy = x0 + d / 2, height / 2
        body |= (xx - cx) ** 2 + (yy - cy) ** 2 <= (d / 2) ** 2
        offs = (np.arange(bones_per_limb) - (bones_per_limb - 1) / 2) * (bone_diam_mm + 6)
        for o in offs:
            bone |= (xx - cx - o) ** 2 + (yy - cy) ** 2 <= (bone_diam_mm / 2) ** 2
        x0 += d + 40
    hu = np.where(bone, 1000, np.where(body, 40, -1000)).astype(np.int16)
    rep = lambda a: np.repeat(a[None], nz, axis=0)  # noqa: E731
    return rep(hu), rep(body), rep(bone)


@pytest.mark.parametrize("diams, n_bones, bone_d, want", [
    ((150.0, 150.0), 1, 28.0, "thigh"),
    ((110.0, 110.0), 2, 18.0, "leg"),
    ((80.0,), 1, 20.0, "upper_arm"),
    ((65.0,), 2, 12.0, "forearm"),
    ((60.0,), 4, 8.0, "wrist_hand"),
    ((85.0,), 1, 40.0, "elbow"),
    ((120.0, 120.0), 1, 60.0, "knee"),
])
def test_limb_rules_on_synthetic_limbs(diams, n_bones, bone_d, want):
    hu, body, bone = _limb_scene(diams, n_bones, bone_d)
    rm = body_regions(hu, body, bone, (3.0, 1.0, 1.0), np.eye(3), n_body_parts=len(diams))
    z, y = hu.shape[0] // 2, hu.shape[1] // 2
    x = 40 + int(diams[0] / 2)
    assert rm.region_at((z, y, x + int(diams[0] / 2) - 3)) == want  # in the soft tissue near the skin
    assert rm.describe()["field_of_view"] == want


def test_limb_without_bone_is_unknown():
    hu, body, bone = _limb_scene((80.0,), 0, 10.0)
    rm = body_regions(hu, body, bone, (3.0, 1.0, 1.0), np.eye(3), n_body_parts=1)
    assert rm.region_at((5, hu.shape[1] // 2, 80)) == "unknown"


def test_bad_inputs_raise_input_error():
    hu, body, bone = _limb_scene((80.0,), 1, 20.0)
    with pytest.raises(InputError, match="one shape"):
        body_regions(hu, body[:-1], bone, (3.0, 1.0, 1.0), np.eye(3), n_body_parts=1)
    with pytest.raises(InputError, match="spacing"):
        body_regions(hu, body, bone, (3.0, 0.0, 1.0), np.eye(3), n_body_parts=1)
    c = np.sqrt(0.5)
    oblique = np.array([[c, c, 0.0], [-c, c, 0.0], [0.0, 0.0, 1.0]])
    with pytest.raises(InputError, match="oblique"):
        body_regions(hu, body, bone, (3.0, 1.0, 1.0), oblique, n_body_parts=1)


def test_features_made_ahead_give_the_same_map_and_must_fit():
    # The analysis makes the bone-free features while detection runs: the map must be the
    # same as made in one go, and features of another grid are refused.
    from calcinosis.anatomy.regions import region_features

    hu, body, bone = _limb_scene((110.0, 110.0), 2, 18.0)
    sp = (3.0, 1.0, 1.0)
    flip = np.diag([-1.0, 1.0, 1.0])  # x runs to the patient's right: a canonical flip
    for direction in (np.eye(3), flip):
        once = body_regions(hu, body, bone, sp, direction, n_body_parts=2)
        ahead = body_regions(hu, body, bone, sp, direction, n_body_parts=2,
                             features=region_features(hu, body, sp, direction))
        assert np.array_equal(once.classes, ahead.classes) and once.describe() == ahead.describe()
        assert np.array_equal(once.pelvis_inside, ahead.pelvis_inside)
    other = region_features(hu, body, (3.0, 1.0, 0.9), np.eye(3))
    with pytest.raises(ValueError, match="same grid"):
        body_regions(hu, body, bone, sp, np.eye(3), n_body_parts=2, features=other)
    with pytest.raises(ValueError, match="same grid"):
        body_regions(hu, body, bone, sp, flip, n_body_parts=2, features=region_features(hu, body, sp, np.eye(3)))


def test_real_chest_ct_is_chest():
    """Real chest CT (heart to neck): the thorax is chest, the back is back, the top is neck or chest."""
    if not REAL_CT.exists():
        pytest.skip(f"real chest CT not found at {REAL_CT}")
    from calcinosis.io import read_volume

    vol = read_volume(REAL_CT)
    sp = vol.spacing[::-1]
    b, sub, bone = _masks(vol.array, sp)
    rm = body_regions(sub, b.mask, bone, sp, vol.direction, n_body_parts=b.n_parts)
    assert rm.describe()["field_of_view"] == "chest"
    assert set(rm.describe()["regions"]) <= set(REGIONS)
    # The shoulder girdle at the top (scapulae beside the spine, no trachea in view) is not
    # a pelvis: the pelvis lies below the lungs.
    assert not {"pelvis", "hip_gluteal"} & set(rm.describe()["regions"])
    assert rm.describe()["landmarks"]["pelvic_bones"] == 0
    top = sub.shape[0] - 1  # the scan's superior end (direction is identity: z index runs superior)
    for z in list(range(5, 31)) + [top]:
        ys, xs = np.nonzero(b.mask[z])
        cy, cx = int(ys.mean()), int(xs.mean())
        got = rm.region_at((z, cy, cx))
        assert got in (("chest",) if z <= 30 else ("chest", "head_neck")), (z, got)
        if z <= 30:
            # 15 mm inside the skin of the back, on the midline: paraspinal soft tissue
            back = int(ys[xs == cx].max() - round(15.0 / sp[1]))
            assert rm.region_at((z, back, cx)) == "back", z
    assert rm.region_at((top, int(np.nonzero(b.mask[top])[0].mean()), int(np.nonzero(b.mask[top])[1].mean()))) \
        in ("chest", "head_neck")


@pytest.mark.parametrize("chunk_voxels", [1, 3 * 4 * 101 * 97, 1 << 22])
def test_block_features_match_a_padded_float_reduction(monkeypatch, chunk_voxels):
    """The block shares and maxima (strided sums, chunk by chunk of slabs: one slab, three,
    all) equal a plain padded float reduction, ragged edges and a short last slab included."""
    from calcinosis.anatomy import region_features
    from calcinosis.anatomy.region_features import AIR_HU, _block_features

    monkeypatch.setattr(region_features, "_CHUNK_VOXELS", chunk_voxels)

    rng = np.random.default_rng(3)
    hu = rng.normal(0.0, 400.0, (23, 101, 97)).astype(np.int16)
    body = rng.random(hu.shape) > 0.3
    bone = rng.random(hu.shape) > 0.8
    block = (4, 5, 6)

    def reduce(a, fn, pad):
        bz, by, bx = block
        oz, oy, ox = (-(-n // b) for n, b in zip(a.shape, block))
        full = np.full((oz * bz, oy * by, ox * bx), pad, np.float32)
        full[:a.shape[0], :a.shape[1], :a.shape[2]] = a
        out = fn(full.reshape(oz, bz, oy, by, ox, bx), axis=(1, 3, 5))
        if a.shape[0] % bz and fn is np.mean:  # a short last slab averages the slices it has
            last = a[(oz - 1) * bz:]
            out[-1] = reduce(np.pad(last, ((0, 0), (0, 0), (0, 0))), np.sum, 0)[0] / (last.shape[0] * by * bx)
        return out

    got = _block_features(hu, body, bone, block)
    want = (reduce(body, np.mean, 0), reduce(bone, np.mean, 0), reduce(body & (hu < AIR_HU), np.mean, 0),
            reduce(hu, np.max, hu.min()))
    for g, w in zip(got, want):
        assert g.shape == w.shape
        assert np.allclose(g, w, atol=1e-6)


def test_block_shares_are_exact_counts():
    """A share is the block's voxel count over the block's size (float64, then float32), the
    same number however the counts are summed."""
    from calcinosis.anatomy.region_features import _block_features

    rng = np.random.default_rng(5)
    body = rng.random((7, 13, 11)) > 0.5
    hu = np.zeros(body.shape, np.int16)
    got = _block_features(hu, body, body, (3, 4, 4))[0]
    for (k, i, j), value in np.ndenumerate(got):
        part = body[3 * k:3 * k + 3, 4 * i:4 * i + 4, 4 * j:4 * j + 4]
        assert value == np.float32(part.sum() / float(part.shape[0] * 16))


def test_block_counts_over_255_voxels_do_not_wrap():
    """Blocks of more than 255 voxels are counted in 16 bits: a full block's share is 1."""
    from calcinosis.anatomy.region_features import _block_features

    body = np.ones((8, 16, 18), bool)
    shares = _block_features(np.zeros(body.shape, np.int16), body, body, (4, 8, 9))[:2]
    for share in shares:
        assert (share == 1.0).all()


@pytest.mark.parametrize("seed, n, half", [(2, 60, 5), (7, 400, 20), (11, 9, 30)])
def test_running_low_is_the_windowed_nanpercentile(seed, n, half):
    from calcinosis.anatomy.region_back import _running_low

    rng = np.random.default_rng(seed)
    v = rng.normal(100.0, 20.0, n)
    v[rng.random(n) < 0.4] = np.nan
    v[n // 3:n // 3 + 2 * half + 5] = np.nan  # windows with no value at all
    got = _running_low(v, half)
    for i in range(len(v)):
        w = v[max(i - half, 0):i + half + 1]
        want = np.nanpercentile(w, 25) if np.isfinite(w).any() else np.nan
        assert got[i] == want or (np.isnan(want) and np.isnan(got[i])), i


def test_trunk_slices_take_the_region_at_each_slices_body_centre(phantom_results):
    """The pipeline's trunk slices: the region at the mean of the body voxels of every 4th row
    and column (listed one by one here) is chest, abdomen, pelvis, back or hip_gluteal; its
    pelvis slices: that region is the pelvis or hip_gluteal."""
    from calcinosis.pipeline import _trunk_slices

    for part, _, ph, hu, rm, _ in phantom_results[::2]:
        b = find_body(hu, ph.volume.spacing_zyx)
        mask = b.mask.copy()
        mask[: mask.shape[0] // 4] = False  # slices without body
        want = np.zeros(mask.shape[0], bool)
        want_pelvis = np.zeros(mask.shape[0], bool)
        for z in range(mask.shape[0]):
            pts = np.argwhere(mask[z, ::4, ::4])
            if len(pts):
                cy, cx = (pts.mean(axis=0) * 4).astype(int)
                name = rm.region_at((z, int(cy), int(cx)))
                # hip_gluteal: a pelvis slice whose body centre lies in front of its bones' hull
                want[z] = name in ("chest", "abdomen", "pelvis", "back", "hip_gluteal")
                want_pelvis[z] = name in ("pelvis", "hip_gluteal")
        got, pelvis = _trunk_slices(mask, rm)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(pelvis, want_pelvis)
        assert got.any() == (part == "trunk")


def test_spine_front_of_a_block_of_slices_equals_slice_by_slice():
    """The anterior edge found on a block's slices at once equals the walk over each
    slice's bone rows (the last run after a gap wider than SPINE_GAP_MM; nan without bone)."""
    from calcinosis.anatomy.region_back import SPINE_GAP_MM, _spine_front_mm

    def one(bone_slice, spine_x_mm, sp_c):
        c = int(round(spine_x_mm / sp_c[2]))
        h = max(1, int(round(10.0 / sp_c[2])))
        rows = np.flatnonzero(bone_slice[:, max(c - h, 0):c + h + 1].any(axis=1))
        if len(rows) == 0:
            return np.nan
        gaps = np.flatnonzero(np.diff(rows) * sp_c[1] > SPINE_GAP_MM)
        return float((rows[gaps[-1] + 1] if len(gaps) else rows[0]) * sp_c[1])

    rng = np.random.default_rng(4)
    n_gaps = 0
    for _ in range(300):
        sp = (1.0, float(rng.choice([0.5, 0.8, 3.0])), float(rng.choice([0.5, 0.8, 1.0])))
        bone = rng.random((3, int(rng.integers(1, 120)), int(rng.integers(1, 80)))) < rng.choice([0.0, 0.003, 0.02, 0.3])
        x_mm = rng.uniform(0, bone.shape[2] * sp[2])
        got = _spine_front_mm(bone, x_mm, sp)
        want = np.array([one(s, x_mm, sp) for s in bone])
        assert got.tobytes() == want.tobytes()
        n_gaps += int(np.sum(np.isfinite(want)))
    assert n_gaps > 100


def test_lower_limbs_just_below_the_pelvis_are_thighs():
    """Below the lowest pelvis slice, within THIGH_BELOW_PELVIS_MM, a knee (or leg, ankle)
    is a thigh whose trochanters the limb rules misread; farther down it stays."""
    from calcinosis.anatomy.region_rules import _CODE
    from calcinosis.anatomy.regions import THIGH_BELOW_PELVIS_MM, _thighs_below_pelvis

    bsp = np.array([3.0, 3.0, 3.0])
    n_below = int(round(THIGH_BELOW_PELVIS_MM / 3.0))
    raw = np.zeros((n_below + 20, 4, 4), np.uint8)
    raw[:, :, :2] = _CODE["knee"]
    raw[:, :, 2:] = _CODE["ankle_foot"]
    raw[n_below + 10:] = _CODE["pelvis"]
    _thighs_below_pelvis(raw, bsp)
    assert (raw[10:n_below + 10] == _CODE["thigh"]).all()
    assert (raw[:10, :, :2] == _CODE["knee"]).all() and (raw[:10, :, 2:] == _CODE["ankle_foot"]).all()
    assert (raw[n_below + 10:] == _CODE["pelvis"]).all()
    without = np.full((5, 2, 2), _CODE["knee"], np.uint8)
    _thighs_below_pelvis(without, bsp)  # no pelvis in view: nothing to go by
    assert (without == _CODE["knee"]).all()
