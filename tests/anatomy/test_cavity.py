"""The trunk's body cavity on a drawn cross-section: where the front wall is.

The section (2 mm pixels, y running posterior) is an ellipse of skin and subcutaneous fat
round a muscle ellipse; inside the muscle lies the viscera's ellipse, in front of a
vertebral body; eight ribs sit in the middle of the muscle wall, the anterior pair far
back (as at the costal margin), so the hull of the bone has its front chord across the
abdomen. Distances below are from the drawing.
"""

from __future__ import annotations

import numpy as np
import pytest

from calcinosis.anatomy.cavity import find_cavity

PIXEL_MM = 2.0
BODY = (150.0, 100.0)  # semi-axes (mm), centred at the origin
FAT_MM = 25.0  # in front and at the sides; 20 mm at the back
MUSCLE_FRONT_Y = -BODY[1] + FAT_MM  # -75
MUSCLE_BACK_Y = BODY[1] - 20.0  # 80
RIB_DEG = (15, 40, 140, 165, 195, 215, 325, 345)


def _ellipse(x, y, cx, cy, ax, ay):
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 <= 1.0


def _section(front_wall_mm: float, sternum: bool, fat_pad=None, n_slices: int = 6, ribs=RIB_DEG,
             pelvis: bool = False):
    ys = np.arange(-110.0, 110.0 + 1e-6, PIXEL_MM)
    xs = np.arange(-160.0, 160.0 + 1e-6, PIXEL_MM)
    y, x = np.meshgrid(ys, xs, indexing="ij")
    body = _ellipse(x, y, 0, 0, *BODY)
    hu = np.full(y.shape, -1000.0)
    hu[body] = 40.0  # skin
    hu[_ellipse(x, y, 0, 0, BODY[0] - 2.5, BODY[1] - 2.5)] = -100.0
    m_cy, m_ay = 0.5 * (MUSCLE_FRONT_Y + MUSCLE_BACK_Y), 0.5 * (MUSCLE_BACK_Y - MUSCLE_FRONT_Y)
    m_ax = BODY[0] - FAT_MM
    hu[_ellipse(x, y, 0, m_cy, m_ax, m_ay)] = 50.0
    c_front, c_back = MUSCLE_FRONT_Y + front_wall_mm, MUSCLE_BACK_Y - 12.0
    hu[_ellipse(x, y, 0, 0.5 * (c_front + c_back), m_ax - 12.0, 0.5 * (c_back - c_front))] = 40.0
    if fat_pad is not None:  # fat inside the cavity (mesentery): not subcutaneous fat
        hu[_ellipse(x, y, *fat_pad, 6.0, 6.0)] = -100.0
    bone = _ellipse(x, y, 0, 40.0, 22.0, 16.0)  # vertebral body; its front at y = 24
    for deg in ribs:
        t = np.radians(deg)
        bone |= _ellipse(x, y, (m_ax - 6.0) * np.cos(t), m_cy + (m_ay - 6.0) * np.sin(t), 4.0, 4.0)
    if sternum:
        bone |= _ellipse(x, y, 0, MUSCLE_FRONT_Y + 30.0, 12.0, 4.0)
    hu[bone] = 700.0
    return _cavity_at(body, bone, hu, ys[0], xs[0], n_slices, pelvis)


def _cavity_at(body, bone, hu, y0_mm: float, x0_mm: float, n_slices: int, pelvis: bool = False):
    """The cavity of a drawn section (its first row at ``y0_mm``, first column at ``x0_mm``)
    stacked ``n_slices`` times, all trunk slices (all the pelvis's with ``pelvis``); returned
    as ``at(x_mm, y_mm)`` (in the cavity, on the middle slice) with ``at.beside_spine`` and
    ``at.depth_only`` (:meth:`~calcinosis.anatomy.cavity.Cavity.by_depth_only`) at the same
    points."""
    stack = lambda a: np.repeat(a[None], n_slices, axis=0)  # noqa: E731
    cavity = find_cavity(stack(body), stack(bone), (PIXEL_MM,) * 3, np.ones(n_slices, bool),
                         hu=stack(hu).astype(np.int16), pelvis_slices=np.full(n_slices, pelvis))

    def index(x_mm, y_mm):
        return n_slices // 2, int(round((y_mm - y0_mm) / PIXEL_MM)), int(round((x_mm - x0_mm) / PIXEL_MM))

    def at(x_mm, y_mm):
        return cavity.in_cavity(index(x_mm, y_mm))
    at.beside_spine = lambda x_mm, y_mm: cavity.beside_spine(index(x_mm, y_mm))
    at.depth_only = lambda x_mm, y_mm: cavity.by_depth_only(index(x_mm, y_mm))
    return at


@pytest.fixture(scope="module")
def abdomen():
    """No sternum, a 12 mm front wall, a fat pad in the cavity at (40, -35)."""
    return _section(12.0, sternum=False, fat_pad=(40.0, -35.0))


def test_below_the_sternum_the_cavity_reaches_the_abdominal_wall(abdomen):
    # The anterior ribs (215 and 325 degrees) put the hull's front chord at y = -42.5:
    # in front of it, 30 and 25 mm inside the fat's inner edge, is cavity.
    assert abdomen(0.0, -45.0)
    assert abdomen(-30.0, -48.0)
    # Beside the fat pad in the cavity: it is not subcutaneous fat (26 mm from the real one).
    assert abdomen(40.0, -45.0)
    # Deep inside the hull, in front of the spine.
    assert abdomen(0.0, 0.0)


def test_the_wall_itself_is_not_cavity(abdomen):
    assert not abdomen(0.0, -69.0)  # the middle of the 12 mm front muscle
    assert not abdomen(0.0, -58.0)  # 17 mm under the fat: within a thick abdominal wall
    assert not abdomen(0.0, -85.0)  # subcutaneous fat
    assert not abdomen(120.0, 0.0)  # lateral muscle wall
    assert not abdomen(0.0, 72.0)  # back muscles behind the spine
    assert not abdomen(0.0, 30.0)  # the vertebral body


def test_beside_the_vertebral_body_is_neither_cavity_nor_far_behind(abdomen):
    """The strip the cavity leaves out beside the vertebral body (front at y = 24): within
    50 mm of the spine's centre, up to 30 mm behind its front (where the aorta lies on the
    vertebral body, and the psoas and crura)."""
    for x_mm, y_mm in ((30.0, 30.0), (-30.0, 35.0), (40.0, 45.0)):
        assert abdomen.beside_spine(x_mm, y_mm) and not abdomen(x_mm, y_mm), (x_mm, y_mm)
    assert not abdomen.beside_spine(0.0, 0.0)  # in front of the spine: the cavity
    assert not abdomen.beside_spine(0.0, 72.0)  # the back muscles, far behind the front
    assert not abdomen.beside_spine(80.0, 40.0)  # beyond the strip, lateral
    assert not abdomen.beside_spine(0.0, -85.0)  # subcutaneous fat in front


def test_among_the_lowest_ribs_the_cavity_reaches_back_to_the_kidneys():
    # Ribs far back round the upper abdomen (no lungs, no sternum): the kidneys lie there as
    # below the rib cage, beside the psoas back to the transverse processes. TotalSegmentator's
    # 3 mm-voxel abdomen has a renal calcification 39 mm behind the spine's front on such a
    # slice. 60 mm out and 33 mm behind the front (y = 24), 10 mm inside the ribs' hull: the
    # cavity, reaching 45 mm behind there (30 mm where lungs or a sternum show). The same
    # bones round the pelvis (iliac wings) keep 30 mm: the iliacus and the gluteal muscles.
    ribs = RIB_DEG + (50, 70, 110, 130)
    upper_abdomen = _section(12.0, sternum=False, ribs=ribs)
    assert upper_abdomen(60.0, 57.0) and upper_abdomen(-60.0, 57.0)
    assert not upper_abdomen(0.0, 57.0)  # behind the vertebral body
    assert not _section(12.0, sternum=False, ribs=ribs, pelvis=True)(60.0, 57.0)
    assert not _section(12.0, sternum=True, ribs=ribs)(60.0, 57.0)


def test_a_sternum_closes_the_front():
    """With a sternum the front of the hull is the chest wall: muscle in front of it is
    wall however thick (a pectoralis); without one the same spot, 22 mm under the fat, is
    in the abdomen."""
    chest = _section(35.0, sternum=True)
    open_front = _section(35.0, sternum=False)
    assert not chest(0.0, -53.0)
    assert open_front(0.0, -53.0)
    assert chest(0.0, -20.0)  # behind the sternum: inside the rib cage


# --- The slice-by-slice cavity against the whole-grid computation it replaced -------------

def _reference_cavity(body, bone, spacing_zyx, trunk_slices, posterior_sign=1.0, hu=None):
    """The cavity, rib band and front wall on the whole 2 mm grid at once (the former
    ``find_cavity``: skimage's hull, whole-grid distance transforms and landmarks), and the
    steps on the way: the part in front of the spine, the part below the abdominal wall and
    the slices through the lungs."""
    from scipy import ndimage as ndi
    from skimage.morphology import convex_hull_image

    from calcinosis.anatomy import cavity as C
    from calcinosis.anatomy.morphology import distance_inside_mm, distance_outside_mm

    if posterior_sign < 0:
        out = _reference_cavity(body[:, ::-1], bone[:, ::-1], spacing_zyx, trunk_slices,
                                hu=None if hu is None else hu[:, ::-1])
        return tuple(m[:, ::-1] for m in out[:3]) + ({k: v[:, ::-1] if v.ndim == 3 else v
                                                      for k, v in out[3].items()},)
    sz, sy, sx = (float(s) for s in spacing_zyx)
    step = (max(1, int(C.GRID_MM // sz)), max(1, int(round(C.GRID_MM / sy))), max(1, int(round(C.GRID_MM / sx))))
    grid = tuple(slice(None, None, s) for s in step)
    b, spine_bone = body[grid], bone[grid]
    trunk_slices = np.asarray(trunk_slices, bool)[::step[0]]
    slab = max(1, int(round(2 * C.RIB_SLAB_MM / (sz * step[0]))) | 1)
    bn = ndi.maximum_filter1d(spine_bone.view(np.uint8), size=slab, axis=0).view(bool) & b
    hull = np.zeros_like(b)
    for z in np.flatnonzero(trunk_slices):
        if bn[z].sum() >= 8:
            h = convex_hull_image(bn[z])
            if h.sum() >= C.MIN_HULL_FRACTION * max(b[z].sum(), 1):
                hull[z] = h & b[z]
    sp = (sz * step[0], sy * step[1], sx * step[2])
    inside = distance_inside_mm(hull, sp, in_plane=True)
    outside = distance_outside_mm(hull, sp, in_plane=True)
    outside[~b] = 0.0
    has = hull.any(axis=(1, 2))
    thorax = np.zeros(b.shape[0], bool)
    hu = None if hu is None else hu[grid]
    if hu is not None:
        air = (hu < -500) & hull
        thorax = air.sum(axis=(1, 2)) >= C.THORAX_MIN_LUNG_FRACTION * np.maximum(hull.sum(axis=(1, 2)), 1)
    rows = np.flatnonzero(b.any(axis=(0, 2)))
    cols = np.flatnonzero(b.any(axis=(0, 1)))
    mid = (rows[0] + rows[-1]) // 2
    # in front of the spine
    anterior = np.ones_like(b)
    half, central = max(1, int(round(10.0 / sp[2]))), int(round(C.SPINE_CENTRAL_MM / sp[2]))
    behind, beside = int(round(C.LATERAL_BEHIND_SPINE_MM / sp[1])), int(round(C.THORAX_BESIDE_SPINE_MM / sp[1]))
    run = max(1, int(round(C.SPINE_MIN_DEPTH_MM / sp[1])))
    front_row, centre = np.full(b.shape[0], -1), np.full(b.shape[0], -1)
    for z in range(b.shape[0]):
        zc, zr = np.flatnonzero(b[z].any(axis=0)), np.flatnonzero(b[z].any(axis=1))
        if zc.size == 0:
            continue
        centre[z] = (zc[0] + zc[-1]) // 2
        y0 = int(zr[0] + 0.4 * (zr[-1] - zr[0]))
        full = spine_bone[z, y0:, max(centre[z] - half, 0):centre[z] + half + 1].mean(axis=1) >= 0.5
        hit = np.flatnonzero(np.convolve(full.astype(int), np.ones(run, int), mode="valid") >= run)
        if hit.size:
            front_row[z] = y0 + hit[0]
    found = np.flatnonzero(front_row >= 0)
    k = max(1, int(round(C.RIB_SLAB_MM / sp[0])))
    for z in range(b.shape[0]):
        if centre[z] < 0 or found.size == 0:
            continue
        near = found[np.abs(found - z) <= k]
        f = front_row[near].min() if near.size else front_row[found[np.argmin(np.abs(found - z))]]
        f += beside if thorax[z] else 0
        anterior[z, f:, max(centre[z] - central, 0):centre[z] + central + 1] = False
        anterior[z, f + behind:, :] = False
    cavity = (inside > C.CAVITY_INSET_MM) & anterior
    below = np.zeros_like(b)
    if hu is not None:
        sternum = np.zeros(b.shape[0], bool)
        half_s = max(1, int(round(C.STERNUM_HALF_WIDTH_MM / sp[2])))
        for z in np.flatnonzero(spine_bone.any(axis=(1, 2))):
            zr, zc = np.flatnonzero(b[z].any(axis=1)), np.flatnonzero(b[z].any(axis=0))
            if zr.size:
                c = (zc[0] + zc[-1]) // 2
                sternum[z] = spine_bone[z, zr[0]:zr[0] + (zr[-1] - zr[0]) // 3 + 1,
                                        max(c - half_s, 0):c + half_s + 1].any()
        open_front = has & ~sternum
        if open_front.any():
            r1 = min(b.shape[1], mid + int(np.ceil(C.ABDOMINAL_WALL_MM / sp[1])) + 2)
            box = (open_front, slice(0, r1), slice(max(cols[0] - 1, 0), cols[-1] + 2))
            deep = C._depth_under_fat_mm(b[box], hu[box], sp) > C.ABDOMINAL_WALL_MM
            deep[:, mid:] = False
            below[box] = deep
            cavity |= below & anterior
    front = np.zeros_like(b)
    front[:, :mid, :] = True
    reach = (outside <= C.RIB_BAND_MM) | (front & (outside <= C.ANTERIOR_BAND_MM))
    band = has[:, None, None] & (((inside > 0) & (inside <= C.RIB_BAND_MM)) | ((outside > 0) & reach))
    return cavity, band, has[:, None, None] & front, {"anterior": anterior, "below": below, "thorax": thorax}


def _stacked_sections():
    """Body, bone and HU of the drawn sections stacked along z: slices with a sternum, slices
    without (the abdominal wall decides), a lung field in some, gaps between ribs."""
    ys = np.arange(-110.0, 110.0 + 1e-6, 1.0)
    xs = np.arange(-160.0, 160.0 + 1e-6, 1.0)
    y, x = np.meshgrid(ys, xs, indexing="ij")
    n = 40
    body = np.zeros((n,) + y.shape, bool)
    bone = np.zeros_like(body)
    hu = np.full(body.shape, -1000, np.int16)
    m_cy, m_ay = 0.5 * (MUSCLE_FRONT_Y + MUSCLE_BACK_Y), 0.5 * (MUSCLE_BACK_Y - MUSCLE_FRONT_Y)
    m_ax = BODY[0] - FAT_MM
    for z in range(n):
        grow = 1.0 + 0.004 * z  # the trunk widens downwards
        b = _ellipse(x, y, 0, 0, BODY[0] * grow, BODY[1] * grow)
        h = np.where(b, 40, -1000)
        h[_ellipse(x, y, 0, 0, BODY[0] * grow - 2.5, BODY[1] * grow - 2.5)] = -100
        h[_ellipse(x, y, 0, m_cy, m_ax, m_ay)] = 50
        h[_ellipse(x, y, 0, 0, m_ax - 12.0, m_ay - 20.0)] = 40
        if z >= 25:  # lungs in the upper slices
            h[_ellipse(x, y, -55, 0, 35, 45) | _ellipse(x, y, 55, 0, 35, 45)] = -850
        s = _ellipse(x, y, 0, 40.0, 22.0, 16.0) if z % 9 else _ellipse(x, y, 0, 62.0, 10.0, 8.0)  # a disc level
        if z % 12 < 8:  # ribs in bands along z
            for deg in RIB_DEG:
                t = np.radians(deg)
                s |= _ellipse(x, y, (m_ax - 6.0) * np.cos(t), m_cy + (m_ay - 6.0) * np.sin(t), 4.0, 4.0)
        if z >= 18:  # a sternum in the upper slices
            s |= _ellipse(x, y, 0, MUSCLE_FRONT_Y + 30.0, 12.0, 4.0)
        h[s] = 700
        body[z], bone[z], hu[z] = b, s & b, h
    return body, bone, hu


@pytest.fixture(scope="module")
def stacked():
    return _stacked_sections()


def test_hull_in_plane_is_skimages_convex_hull_image():
    """The scanline hull equals skimage's convex_hull_image pixel for pixel: random scatters,
    blobs, a single pixel, lines and diagonals (edges through pixel centres)."""
    from skimage.morphology import convex_hull_image

    from calcinosis.anatomy.cavity import _hull_in_plane

    rng = np.random.default_rng(7)
    masks = []
    for _ in range(60):
        m = np.zeros((rng.integers(5, 60), rng.integers(5, 60)), bool)
        k = rng.integers(1, 12)
        m[rng.integers(0, m.shape[0], k), rng.integers(0, m.shape[1], k)] = True
        masks.append(m)
    line = np.zeros((20, 30), bool)
    line[7, 3:25] = True
    diag = np.eye(25, dtype=bool)
    steep = np.zeros((16, 40), bool)  # slope 2: hull edges through pixel centres
    steep[np.arange(16), 32 - 2 * np.arange(16)] = True
    yy, xx = np.mgrid[:50, :70]
    blob = ((yy - 25) / 20.0) ** 2 + ((xx - 30) / 31.0) ** 2 <= 1.0
    masks += [line, diag, steep, line.T, blob, np.pad(np.ones((1, 1), bool), 4)]
    for m in masks:
        np.testing.assert_array_equal(_hull_in_plane(m), convex_hull_image(m))


@pytest.mark.parametrize("posterior_sign", [1.0, -1.0])
def test_slice_by_slice_cavity_equals_the_whole_grid_one(stacked, posterior_sign):
    """Read point by point in random order, then as whole grids: the same masks as the
    whole-grid computation, with and without HU, rows running either way."""
    body, bone, hu = stacked
    if posterior_sign < 0:
        body, bone, hu = body[:, ::-1], bone[:, ::-1], hu[:, ::-1]
    sp = (1.0, 1.0, 1.0)
    trunk = np.arange(body.shape[0]) % 7 != 3
    for h in (hu, None):
        *want, steps = _reference_cavity(body, bone, sp, trunk, posterior_sign, h)
        assert want[0].any() and want[1].any() and want[2].any()
        got = find_cavity(body, bone, sp, trunk, posterior_sign=posterior_sign, hu=h)
        if posterior_sign > 0:  # the steps of each slice (turned round inside when rows run anterior)
            grid = got._grid
            for z in range(grid.shape[0]):
                assert np.array_equal(grid._anterior_to_spine(z, steps["thorax"][z]), steps["anterior"][z]), z
                if h is not None and steps["below"][z].any():
                    assert np.array_equal(grid._below_abdominal_wall(z), steps["below"][z]), z
            assert steps["below"].any() == (h is not None) and steps["thorax"].any() == (h is not None)
        rng = np.random.default_rng(1)
        for idx in rng.integers(0, body.shape, (300, 3)):
            g = tuple(int(i) // s for i, s in zip(idx, got.step))
            assert got.in_cavity(idx) == want[0][g]
            assert got.in_rib_cage(idx) == want[1][g]
            assert got.in_front_wall(idx) == want[2][g]
        for g, w in zip((got.cavity, got.rib_band, got.front), want):
            np.testing.assert_array_equal(g, w)


def test_the_abdominal_wall_and_the_lungs_change_the_cavity(stacked):
    """The stacked sections reach the paths the equality test compares: slices without a
    sternum (the cavity reaches past the ribs' front chord) and slices through the lungs
    (it reaches back beside the spine)."""
    body, bone, hu = stacked
    sp = (1.0, 1.0, 1.0)
    trunk = np.ones(body.shape[0], bool)
    with_hu = find_cavity(body, bone, sp, trunk, hu=hu).cavity
    without = find_cavity(body, bone, sp, trunk).cavity
    no_lungs = find_cavity(body, bone, sp, trunk, hu=np.where(hu == -850, np.int16(40), hu)).cavity
    assert (with_hu[:9] & ~without[:9]).any()  # no sternum below z = 18: the abdominal wall
    assert (with_hu[13:] != no_lungs[13:]).any()  # lungs from z = 25: beside the spine


# --- Below the rib cage (the lumbar abdomen): no bone rings the cavity ------------------------

def _lumbar_section(front_fat_mm: float = FAT_MM, leak: bool = True, n_slices: int = 6, back_extra_mm: float = 0.0):
    """A section between the rib cage and the pelvis (2 mm pixels): skin, subcutaneous fat
    (``front_fat_mm`` in front, 25 mm at the sides, 20 at the back) round the muscle wall,
    the viscera inside with a large pad of intra-abdominal fat in front of a vertebral body
    (front at y = 24), no ribs. With ``leak`` a 6 mm channel of fat crosses the left lateral
    wall and joins the intra-abdominal fat to the subcutaneous fat (as a thin part of a real
    wall does on a 2 mm grid). ``back_extra_mm`` moves the back (skin, fat, muscle's back
    edge) that much further back: thicker back muscles."""
    ys = np.arange(-180.0, 110.0 + back_extra_mm + 1e-6, PIXEL_MM)
    xs = np.arange(-160.0, 160.0 + 1e-6, PIXEL_MM)
    y, x = np.meshgrid(ys, xs, indexing="ij")
    front = -BODY[1] - (front_fat_mm - FAT_MM)  # the skin's front moves out with the fat
    back = BODY[1] + back_extra_mm
    cy, ay = 0.5 * (front + back), 0.5 * (back - front)
    body = _ellipse(x, y, 0, cy, BODY[0], ay)
    hu = np.full(y.shape, -1000.0)
    hu[body] = 40.0
    hu[_ellipse(x, y, 0, cy, BODY[0] - 2.5, ay - 2.5)] = -100.0
    m_front, m_back = front + front_fat_mm, MUSCLE_BACK_Y + back_extra_mm
    m_cy, m_ay = 0.5 * (m_front + m_back), 0.5 * (m_back - m_front)
    m_ax = BODY[0] - FAT_MM
    hu[_ellipse(x, y, 0, m_cy, m_ax, m_ay)] = 50.0
    c_front, c_back = m_front + 12.0, m_back - 12.0
    hu[_ellipse(x, y, 0, 0.5 * (c_front + c_back), m_ax - 12.0, 0.5 * (c_back - c_front))] = 40.0
    hu[_ellipse(x, y, 0, -25.0, 70.0, 30.0)] = -100.0  # intra-abdominal fat
    if leak:
        hu[(np.abs(y + 25.0) <= 3.0) & (x < -60.0) & body] = -100.0
    bone = _ellipse(x, y, 0, 40.0, 22.0, 16.0)
    hu[bone] = 700.0
    return _cavity_at(body, bone, hu, ys[0], xs[0], n_slices)


@pytest.mark.parametrize("leak", [False, True])
def test_below_the_ribs_the_cavity_is_inside_the_abdominal_wall(leak):
    # TotalSegmentator's abdomen-to-hips example (3 mm voxels): below the ribs there was no
    # cavity, and the aortic plaque in front of L4, bowel content and a kidney stone were
    # "intramuscular". The cavity there: more than 20 mm inside the subcutaneous fat's inner
    # edge, or where that fat joins the fat inside (``leak``) more than 60 mm from the skin.
    at = _lumbar_section(leak=leak)
    assert at(0.0, 10.0)  # in front of the vertebral body: the aorta's place, 90 mm deep
    assert at(0.0, -25.0)  # the intra-abdominal fat, 75 mm deep
    assert at(-40.0, 0.0)
    assert not at(0.0, -69.0)  # the front wall's muscle
    assert not at(0.0, -85.0)  # subcutaneous fat
    assert not at(120.0, 0.0)  # the lateral wall
    assert not at(0.0, 72.0)  # the back muscles
    assert not at(0.0, 30.0)  # the vertebral body
    assert at.beside_spine(30.0, 30.0) and not at(30.0, 30.0)  # the psoas' place
    # Taken for its depth alone only where the fat under the skin seems to join the inside.
    assert at.depth_only(0.0, -25.0) == leak
    assert not at.depth_only(0.0, 10.0) or leak


def test_below_the_ribs_the_cavity_reaches_back_to_the_kidneys():
    # Stones in both kidneys of that example lie 27-39 mm behind the spine's front, 60-90 mm
    # from the midline: the cavity's reach behind the front beside the central strip is 30 mm
    # inside the rib cage, 45 mm below it. Thicker back muscles (40 mm more) put that place
    # well under the wall.
    at = _lumbar_section(leak=False, back_extra_mm=40.0)
    assert at(60.0, 59.0)  # 35 mm behind the front, 60 mm out
    assert not at(60.0, 75.0)  # 51 mm behind: the quadratus lumborum's place
    assert not at(0.0, 40.0)  # the vertebral body


def test_below_the_ribs_an_obese_walls_fat_is_cavity_by_depth_only():
    # 80 mm of fat in front: 65 mm deep in it is deeper than the cavity's depth rule, but it
    # lies in the fat under the skin (the trunk's rules keep a deposit there subcutaneous).
    at = _lumbar_section(front_fat_mm=80.0, leak=False)
    y_fat = -BODY[1] - (80.0 - FAT_MM) + 65.0
    assert at(0.0, y_fat) and at.depth_only(0.0, y_fat)
    assert at(0.0, 10.0) and not at.depth_only(0.0, 10.0)
