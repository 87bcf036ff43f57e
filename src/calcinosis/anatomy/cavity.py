"""The trunk's body cavity and the rib cage around it.

The ribs lie in the chest wall: the convex hull of the bone in a slice of the trunk
(ribs, sternum and spine, gathered over a slab of +-15 mm so that ribs cut across
by the slice count) outlines the chest wall's middle. Its inside, a few mm in, is
the body cavity (lungs, heart, great vessels, abdominal organs and bowel); a band
round its outline is the rib cage itself (ribs and costal cartilage). Below the
sternum (the upper abdomen between the costal margins) no bone closes the front: the
hull's front runs as a chord between the lowest ribs, across the abdominal cavity.
There the front wall is the abdominal wall's muscle under the subcutaneous fat (rectus
and flat muscles, 10-15 mm), and the cavity starts a wall's thickness inside the fat's
inner edge. Below the rib cage (the lumbar abdomen, where no bone hull covers the body) the
same rule makes the whole cavity in front of the spine, and so does lying more than
``LUMBAR_CAVITY_DEPTH_MM`` from the skin (the fat inside often joins the subcutaneous fat
through a thin part of the wall on the grid). Computed on
a grid of about 2 mm (slices of up to 2 mm are sampled too): none of this needs
fine detail. Every step but a few whole-grid landmarks (the body's extent, the spine's
front edge) works within one slice of that grid, and the cavity is read only where
findings lie: each slice is computed when it is first read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull

from calcinosis.anatomy.morphology import distance_inside_mm, distance_outside_mm

RIB_SLAB_MM = 15.0
# The cavity starts this far inside the hull of the rib cage (half a rib and the pleura).
CAVITY_INSET_MM = 7.0
# The rib-cage band reaches this far either side of the hull outline.
RIB_BAND_MM = 8.0
ANTERIOR_BAND_MM = 20.0
SPINE_CENTRAL_MM = 50.0
SPINE_MIN_DEPTH_MM = 6.0
THORAX_MIN_LUNG_FRACTION = 0.1
THORAX_BESIDE_SPINE_MM = 30.0
LATERAL_BEHIND_SPINE_MM = 30.0
# Below the sternum the cavity starts this far inside the subcutaneous fat's inner edge:
# thicker than the abdominal wall's muscle layers (rectus, obliques: 10-15 mm), thinner
# than the distance to any bowel behind them.
ABDOMINAL_WALL_MM = 20.0
# Below the rib cage, without a pelvis round it (the lumbar abdomen): farther than this (mm)
# from the skin, in front of the spine, is the cavity even where the fat under the skin seems
# to join the fat inside (thicker than the wall of all but the most obese: skin, fat and
# muscle 15-40 mm; the aorta 110 mm deep on the 3 mm-voxel abdomen of TotalSegmentator's
# example).
LUMBAR_CAVITY_DEPTH_MM = 60.0
# There, beside the psoas, the cavity reaches this far (mm) behind the spine's front: the
# kidneys lie on the quadratus lumborum at about the transverse processes' level (stones in
# both kidneys of that example lie 27-39 mm behind it, 60-90 mm from the midline).
RENAL_BEHIND_SPINE_MM = 45.0
# Fat (HU); air (lung, gas) is below the range.
FAT_HU = (-250.0, -30.0)
# The skin (2-3 mm, soft-tissue density) is crossed on the way in from the outside.
SKIN_CROSS_MM = 4.0
# A sternum: bone this close (mm) to the midline in the anterior third of the body.
STERNUM_HALF_WIDTH_MM = 25.0
# A slice has a rib cage when its bone hull covers this share of the body's cross-section.
MIN_HULL_FRACTION = 0.35
GRID_MM = 2.0


@dataclass(frozen=True, eq=False)
class Cavity:
    """Cavity, rib-cage and front-wall masks on a coarse grid; query with full-grid indices.

    Built by :func:`find_cavity`. A slice of the grid is computed when a point of it is
    first read (and kept): the answers are those of the whole-grid masks, which
    :attr:`cavity`, :attr:`rib_band` and :attr:`front` compute. The arrays given to
    :func:`find_cavity` are read then: they must not change while the cavity is in use.
    """

    step: tuple[int, int, int]
    _grid: _CavityGrid = field(repr=False)
    _done: dict = field(default_factory=dict, repr=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of the coarse grid."""
        return self._grid.shape

    def _slice(self, z: int) -> tuple[np.ndarray, ...]:
        got = self._done.get(z)
        if got is None:
            got = self._done[z] = self._grid.slice_masks(z)
        return got

    def _at(self, which: int, index_zyx) -> bool:
        i = [int(v) // s for v, s in zip(index_zyx, self.step)]
        i = [min(v, n - 1) for v, n in zip(i, self.shape)]
        z = range(self.shape[0])[i[0]]  # numpy's indexing: a negative index counts from the end
        return bool(self._slice(z)[which][i[1], i[2]])

    def _whole(self, which: int) -> np.ndarray:
        return np.stack([self._slice(z)[which] for z in range(self.shape[0])])

    @property
    def cavity(self) -> np.ndarray:
        """Body cavity on the whole grid (bool)."""
        return self._whole(0)

    @property
    def rib_band(self) -> np.ndarray:
        """Band round the rib cage's hull on the whole grid (bool)."""
        return self._whole(1)

    @property
    def front(self) -> np.ndarray:
        """Anterior half of the body in rib-cage slices, on the whole grid (bool)."""
        return self._whole(2)

    def in_cavity(self, index_zyx) -> bool:
        return self._at(0, index_zyx)

    def in_rib_cage(self, index_zyx) -> bool:
        return self._at(1, index_zyx)

    def in_front_wall(self, index_zyx) -> bool:
        return self._at(2, index_zyx)

    def by_depth_only(self, index_zyx) -> bool:
        """In the cavity only for lying ``LUMBAR_CAVITY_DEPTH_MM`` or more from the skin, below
        the rib cage: the fat round a finding there may still be the wall's."""
        return self._at(4, index_zyx)

    def beside_spine(self, index_zyx) -> bool:
        """Beside the vertebral body behind the line where the cavity stops (see
        :meth:`_CavityGrid._beside_spine`)."""
        return self._at(3, index_zyx)

    def in_bone_hull(self, index_zyx) -> bool:
        """In the cavity for lying ``CAVITY_INSET_MM`` inside the hull of the bones round it
        (ribs, or the pelvis's bones: the iliac vessels and the pelvic organs), not only for
        its depth under the abdominal wall."""
        return self._at(5, index_zyx)


def find_cavity(body: np.ndarray, bone: np.ndarray, spacing_zyx, trunk_slices: np.ndarray,
                posterior_sign: float = 1.0, hu: np.ndarray | None = None,
                pelvis_slices: np.ndarray | None = None) -> Cavity:
    """Body cavity and rib cage of the trunk slices (``trunk_slices``: bool per array slice).

    ``body`` and ``bone`` are on the cropped grid, slices along array axis 0, array axis 1
    running posterior when ``posterior_sign`` is +1 (anterior when -1). The cavity stops
    at the front of the spine: behind it lie the psoas and the back muscles, which the
    hull of the ribs also takes in. In rib-cage slices without a sternum (given ``hu``), the
    anterior half of the cavity reaches forward to ``ABDOMINAL_WALL_MM`` inside the
    subcutaneous fat, past the chord between the lowest ribs, and (unless ``pelvis_slices``,
    bool per array slice, marks the slice as the pelvis's) beside the psoas it reaches
    ``RENAL_BEHIND_SPINE_MM`` behind the spine's front, as below the rib cage (the kidneys).

    Only the whole-grid landmarks are found here; each slice of the masks is computed
    when first read (see :class:`Cavity`).
    """
    sz, sy, sx = (float(s) for s in spacing_zyx)
    step = (max(1, int(GRID_MM // sz)), max(1, int(round(GRID_MM / sy))), max(1, int(round(GRID_MM / sx))))
    return Cavity(step, _CavityGrid(body, bone, (sz, sy, sx), step, trunk_slices, posterior_sign < 0, hu,
                                    pelvis_slices))


class _CavityGrid:
    """What the cavity's slices share: the coarse grid (views), the body's extent and the
    spine's front edge per slice. ``slice_masks`` computes one slice of the masks."""

    def __init__(self, body, bone, spacing_zyx, step, trunk_slices, flip: bool, hu, pelvis_slices=None):
        sz, sy, sx = spacing_zyx
        # Rows running anterior: worked on turned round (views from the last row), each slice
        # turned back.
        grid = (slice(None, None, step[0]), slice(None, None, -step[1] if flip else step[1]),
                slice(None, None, step[2]))
        self.flip = flip
        self.b = body[grid]
        self.bone = bone[grid]
        self.hu = None if hu is None else hu[grid]
        self.shape = tuple(int(n) for n in self.b.shape)
        self.trunk = np.asarray(trunk_slices, bool)[::step[0]]
        self.pelvis = (np.zeros(self.trunk.shape, bool) if pelvis_slices is None
                       else np.asarray(pelvis_slices, bool)[::step[0]])
        self.sp = (sz * step[0], sy * step[1], sx * step[2])
        self.slab_half = max(1, int(round(2 * RIB_SLAB_MM / (sz * step[0]))) | 1) // 2
        self.rows_any = self.b.any(axis=2)
        self.cols_any = self.b.any(axis=1)
        rows = np.flatnonzero(self.rows_any.any(axis=0))
        cols = np.flatnonzero(self.cols_any.any(axis=0))
        # The front wall and the abdominal wall's box are bounded by the body's extent over
        # the whole grid, not the slice's.
        self.mid = (rows[0] + rows[-1]) // 2 if rows.size else None
        self.cols = (cols[0], cols[-1]) if cols.size else None
        self.spine_front, self.centre = _spine_front(self.b, self.bone, self.sp, self.rows_any, self.cols_any)

    def slice_masks(self, z: int) -> tuple[np.ndarray, ...]:
        """Cavity, rib band, front wall, the strip beside the spine, the cavity taken for its
        depth alone and the cavity inside the bones' hull of grid slice ``z`` (2-D bool, rows
        as given)."""
        out = self._slice_masks(z)
        return tuple(m[::-1] for m in out) if self.flip else out

    def _slice_masks(self, z: int) -> tuple[np.ndarray, ...]:
        b = self.b[z]
        hull = self._hull(z)
        if hull is None:
            return self._without_rib_cage(z)
        sp = self.sp
        inside = distance_inside_mm(hull[None], sp, in_plane=True)[0]
        outside = distance_outside_mm(hull[None], sp, in_plane=True)[0]
        outside[~b] = 0.0
        thorax = False
        if self.hu is not None:
            # Slices through the lungs: there the cavity reaches back beside the vertebral
            # body (descending aorta, azygos, oesophagus); lower down the psoas lies there.
            air = (self.hu[z] < -500) & hull
            thorax = bool(air.sum() >= THORAX_MIN_LUNG_FRACTION * max(int(hull.sum()), 1))
        open_front = self.hu is not None and not _has_sternum(b, self.bone[z], sp, self.rows_any[z], self.cols_any[z])
        # The lowest ribs round the upper abdomen (no lungs, no sternum): the kidneys lie
        # there as below the rib cage, beside the psoas and back to the transverse processes.
        renal = open_front and not thorax and not self.pelvis[z]
        anterior = self._anterior_to_spine(z, thorax, lateral_behind_mm=RENAL_BEHIND_SPINE_MM if renal else None)
        in_hull = (inside > CAVITY_INSET_MM) & anterior
        beside = (inside > CAVITY_INSET_MM) & self._beside_spine(z, anterior)
        cavity = in_hull.copy()
        if open_front:
            cavity |= self._below_abdominal_wall(z) & anterior
        # In front, costal cartilage runs on from the rib ends towards the sternum, in front of
        # the line between the anterior ribs: the band reaches further out there.
        front = np.zeros(b.shape, bool)
        if self.mid is not None:
            front[: self.mid, :] = True
        reach = (outside <= RIB_BAND_MM) | (front & (outside <= ANTERIOR_BAND_MM))
        band = ((inside > 0) & (inside <= RIB_BAND_MM)) | ((outside > 0) & reach)
        return cavity, band, front, beside, np.zeros(b.shape, bool), in_hull

    def _without_rib_cage(self, z: int) -> tuple[np.ndarray, ...]:
        """Slice ``z``'s masks where no bone rings the cavity: a trunk slice with a spine between
        the rib cage and the pelvis (the lumbar abdomen). The cavity is what lies more than
        ``ABDOMINAL_WALL_MM`` inside the subcutaneous fat's inner edge, in front of the spine
        (and ``RENAL_BEHIND_SPINE_MM`` behind its front edge further out, in front of the back
        muscles): the bowel, the aorta and iliac vessels, the kidneys. No rib band, no front
        wall. Without ``hu``, a spine, or on a slice outside the trunk: nothing."""
        none = np.zeros(self.b.shape[1:], bool)
        if self.hu is None or not self.trunk[z] or self._spine_strip(z) is None:
            return none, none.copy(), none.copy(), none.copy(), none.copy(), none.copy()
        under_wall = _depth_under_fat_mm(self.b[z:z + 1], self.hu[z:z + 1], self.sp)[0] > ABDOMINAL_WALL_MM
        # The intra-abdominal fat often joins the subcutaneous fat through a thin part of the
        # wall at this grid's 2 mm (then the depth under the fat stays small deep inside); far
        # from the skin it is the cavity all the same, unless the fat round a finding is the
        # wall's (an obese wall: :meth:`Cavity.by_depth_only`).
        far = distance_inside_mm(self.b[z:z + 1], self.sp, in_plane=True)[0] > LUMBAR_CAVITY_DEPTH_MM
        deep = under_wall | far
        anterior = self._anterior_to_spine(z, thorax=False, lateral_behind_mm=RENAL_BEHIND_SPINE_MM)
        return (deep & anterior, none, none.copy(), deep & self._beside_spine(z, anterior),
                far & ~under_wall & anterior, none.copy())

    def _spine_strip(self, z: int) -> tuple[int, slice, int] | None:
        """Slice ``z``'s spine front row, the columns within ``SPINE_CENTRAL_MM`` of the spine's
        centre, and ``LATERAL_BEHIND_SPINE_MM`` in rows; None where no spine was found."""
        f = int(self.spine_front[z])
        if f < 0:
            return None
        sp = self.sp
        central = int(round(SPINE_CENTRAL_MM / sp[2]))
        c = self.centre[z]
        return f, slice(max(c - central, 0), c + central + 1), int(round(LATERAL_BEHIND_SPINE_MM / sp[1]))

    def _beside_spine(self, z: int, anterior: np.ndarray) -> np.ndarray:
        """Behind the spine's front edge, within ``LATERAL_BEHIND_SPINE_MM`` of it and
        ``SPINE_CENTRAL_MM`` of its centre: beside the vertebral body, where the cavity stops
        (the psoas and the crura, and the aorta and its branches)."""
        out = np.zeros(self.b.shape[1:], bool)
        strip = self._spine_strip(z)
        if strip is None:
            return out
        f, cols, behind = strip
        out[f:f + behind, cols] = True
        return out & ~anterior

    def _hull(self, z: int) -> np.ndarray | None:
        """The hull of the bone (gathered over the rib slab) in the body on slice ``z``,
        None where the slice has no rib cage."""
        if not self.trunk[z]:
            return None
        b = self.b[z]
        slab = self.bone[max(z - self.slab_half, 0): z + self.slab_half + 1]
        bn = slab.any(axis=0) & b
        if bn.sum() < 8:
            return None
        h = _hull_in_plane(bn)
        if h.sum() < MIN_HULL_FRACTION * max(int(b.sum()), 1):
            return None
        return h & b

    def _anterior_to_spine(self, z: int, thorax: bool, lateral_behind_mm: float | None = None) -> np.ndarray:
        """The part of slice ``z`` in front of the spine (see :func:`_spine_front`); beyond the
        central columns it reaches ``lateral_behind_mm`` behind the spine's front (by default
        ``LATERAL_BEHIND_SPINE_MM``)."""
        out = np.ones(self.b.shape[1:], bool)
        strip = self._spine_strip(z)
        if strip is None:
            return out
        f, cols, behind = strip
        if lateral_behind_mm is not None:
            behind = int(round(lateral_behind_mm / self.sp[1]))
        f += int(round(THORAX_BESIDE_SPINE_MM / self.sp[1])) if thorax else 0
        out[f:, cols] = False
        out[f + behind:, :] = False
        return out

    def _below_abdominal_wall(self, z: int) -> np.ndarray:
        """In the anterior half: more than ``ABDOMINAL_WALL_MM`` inside the subcutaneous fat's
        inner edge (in-plane)."""
        out = np.zeros(self.b.shape[1:], bool)
        sp = self.sp
        # Rows down to the wall depth past the middle: a point of the anterior half nearer the
        # fat than that finds the fat in the crop.
        r1 = min(self.b.shape[1], self.mid + int(np.ceil(ABDOMINAL_WALL_MM / sp[1])) + 2)
        box = (slice(z, z + 1), slice(0, r1), slice(max(self.cols[0] - 1, 0), self.cols[1] + 2))
        deep = _depth_under_fat_mm(self.b[box], self.hu[box], sp)[0] > ABDOMINAL_WALL_MM
        deep[self.mid:] = False
        out[box[1:]] = deep
        return out


def _hull_in_plane(mask: np.ndarray) -> np.ndarray:
    """Convex hull image of a 2-D mask: the pixels whose centres lie in the convex hull of the
    pixels' diamonds (the midpoints of their edges), borders included — skimage's
    ``convex_hull_image`` (its defaults), found by exact integer scanlines.

    The hull of the row ends' diamonds is that of all pixels. In doubled coordinates every
    corner is an integer, so which pixel centre lies on which side of an edge is decided
    exactly.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    width = mask.shape[1]
    first = np.argmax(mask[rows], axis=1)
    last = width - 1 - np.argmax(mask[rows, ::-1], axis=1)
    ends = np.concatenate([np.stack([rows, first], 1), np.stack([rows, last], 1)])
    diamond = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)])
    pts = np.unique((2 * ends[:, None, :] + diamond).reshape(-1, 2), axis=0)
    v = pts[ConvexHull(pts.astype(float)).vertices].astype(np.int64)  # (Y, X), doubled
    d = np.roll(v, -1, axis=0) - v
    e, f = v[1] - v[0], v[2] - v[0]
    sense = 1 if e[0] * f[1] - e[1] * f[0] > 0 else -1  # the vertices' turn (qhull's order)
    # Pixel (r, c) is in the hull when for every edge P -> P + d: sense * cross(d, (2r, 2c) - P) >= 0,
    # that is a c + b >= 0: a bound on c per edge and row, all rows at once.
    r = np.arange(rows[0], rows[-1] + 1)
    dy, dx, py, px = d[:, :1], d[:, 1:], v[:, :1], v[:, 1:]
    a = 2 * sense * dy  # [edge, 1]
    b = sense * (-dy * px - dx * (2 * r[None, :] - py))  # [edge, row]
    lo = np.where(a > 0, -(b // np.where(a > 0, a, 1)), 0).max(axis=0)  # ceil(-b / a)
    hi = np.where(a < 0, b // np.where(a < 0, -a, 1), width - 1).min(axis=0)  # floor(b / -a)
    hi[((a == 0) & (b < 0)).any(axis=0)] = -1
    lo, hi = np.maximum(lo, 0), np.minimum(hi, width - 1)
    out = np.zeros_like(mask)
    cols = np.arange(width)
    out[r[0]:r[-1] + 1] = (cols >= lo[:, None]) & (cols <= hi[:, None])
    return out


def _has_sternum(body: np.ndarray, bone: np.ndarray, sp, rows_any: np.ndarray, cols_any: np.ndarray) -> bool:
    """Bone within ``STERNUM_HALF_WIDTH_MM`` of the midline in the anterior third of the body
    on one slice (the sternum, or the xiphoid); ``rows_any``/``cols_any``: the body's rows
    and columns on the slice."""
    rows = np.flatnonzero(rows_any)
    cols = np.flatnonzero(cols_any)
    if rows.size == 0 or not bone.any():
        return False
    half = max(1, int(round(STERNUM_HALF_WIDTH_MM / sp[2])))
    centre = (cols[0] + cols[-1]) // 2
    y1 = rows[0] + (rows[-1] - rows[0]) // 3 + 1
    return bool(bone[rows[0]:y1, max(centre - half, 0):centre + half + 1].any())


def _depth_under_fat_mm(body: np.ndarray, hu: np.ndarray, sp) -> np.ndarray:
    """In-plane distance (mm) from the subcutaneous fat's inner edge, inside it; 0 in the fat,
    the skin and outside.

    The subcutaneous fat is the fat reached from outside the body through the skin and fat
    alone: fat inside the cavity lies behind the muscle wall and is not reached. Where a gap
    joins the two, the cavity found here shrinks (the finding keeps its wall compartment).
    """
    # Single samples, not smoothed: a noisy cell misread in the fat stays unreached (a hole
    # one cell deep); one misread in the muscle, next to the fat, moves its edge by a cell.
    fat = (hu >= FAT_HU[0]) & (hu < FAT_HU[1])
    k = 2 * max(1, int(round(SKIN_CROSS_MM / min(sp[1], sp[2])))) + 1
    near_outside = ndi.maximum_filter((~body).view(np.uint8), size=(1, k, k)).view(bool)
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = ndi.generate_binary_structure(2, 1)
    labels, n = ndi.label(near_outside | fat, structure=in_plane)
    reached = np.zeros(n + 1, bool)
    reached[labels[~body]] = True
    reached[0] = False
    return distance_inside_mm(body & ~reached[labels], sp, in_plane=True)


def _spine_front(body: np.ndarray, bone: np.ndarray, sp, rows_any: np.ndarray, cols_any: np.ndarray):
    """Per slice, the row of the spine's front edge (-1: none found anywhere, or no body on
    the slice) and the body's middle column. The edge is the most anterior row where bone
    fills a 20 mm wide midline strip of the body's back 60 % for at least 6 mm (a vertebral
    body; a calcified aortic wall or a tracheal ring crossing the strip does not), the most
    anterior within +-15 mm (slices through a disc find the laminae).
    Within 50 mm of the midline (vertebra, psoas) the cavity stops at that edge, 30 mm
    further back in slices through the lungs (aorta beside the spine); further out
    (kidneys, colon) 30 mm behind it (``RENAL_BEHIND_SPINE_MM`` below the rib cage), in front
    of the back muscles."""
    half = max(1, int(round(10.0 / sp[2])))
    run = max(1, int(round(SPINE_MIN_DEPTH_MM / sp[1])))
    n = body.shape[0]
    front = np.full(n, -1)
    centre = np.full(n, -1)
    for z in range(n):
        cols = np.flatnonzero(cols_any[z])
        rows = np.flatnonzero(rows_any[z])
        if cols.size == 0:
            continue
        centre[z] = (cols[0] + cols[-1]) // 2
        y0 = int(rows[0] + 0.4 * (rows[-1] - rows[0]))
        strip = bone[z, y0:, max(centre[z] - half, 0):centre[z] + half + 1]
        full = strip.mean(axis=1) >= 0.5
        solid = np.convolve(full.astype(int), np.ones(run, int), mode="valid") >= run
        hit = np.flatnonzero(solid)
        if hit.size:
            front[z] = y0 + hit[0]
    found = np.flatnonzero(front >= 0)
    edge = np.full(n, -1)
    if found.size == 0:
        return edge, centre
    # Through a disc the strip finds the laminae instead: take the most anterior edge
    # within +-15 mm, which is a vertebral body's.
    k = max(1, int(round(RIB_SLAB_MM / sp[0])))
    for z in range(n):
        if centre[z] < 0:
            continue
        near = found[np.abs(found - z) <= k]
        edge[z] = (front[near].min() if near.size else front[found[np.argmin(np.abs(found - z))]])
    return edge, centre
