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
inner edge. Computed on
a grid of about 2 mm (slices of up to 2 mm are sampled too): none of this needs
fine detail.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import convex_hull_image

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
    """Cavity and rib-cage masks on a coarse grid; query with full-grid indices."""

    cavity: np.ndarray
    rib_band: np.ndarray
    step: tuple[int, int, int]
    front: np.ndarray | None = None  # anterior half of the body in rib-cage slices

    def _at(self, mask: np.ndarray, index_zyx) -> bool:
        i = tuple(min(int(v) // s, n - 1) for v, s, n in zip(index_zyx, self.step, mask.shape))
        return bool(mask[i])

    def in_cavity(self, index_zyx) -> bool:
        return self._at(self.cavity, index_zyx)

    def in_rib_cage(self, index_zyx) -> bool:
        return self._at(self.rib_band, index_zyx)

    def in_front_wall(self, index_zyx) -> bool:
        return self.front is not None and self._at(self.front, index_zyx)


def find_cavity(body: np.ndarray, bone: np.ndarray, spacing_zyx, trunk_slices: np.ndarray,
                posterior_sign: float = 1.0, hu: np.ndarray | None = None) -> Cavity:
    """Body cavity and rib cage of the trunk slices (``trunk_slices``: bool per array slice).

    ``body`` and ``bone`` are on the cropped grid, slices along array axis 0, array axis 1
    running posterior when ``posterior_sign`` is +1 (anterior when -1). The cavity stops
    at the front of the spine: behind it lie the psoas and the back muscles, which the
    hull of the ribs also takes in. In rib-cage slices without a sternum (given ``hu``), the
    anterior half of the cavity reaches forward to ``ABDOMINAL_WALL_MM`` inside the
    subcutaneous fat, past the chord between the lowest ribs.
    """
    if posterior_sign < 0:
        flip = find_cavity(body[:, ::-1], bone[:, ::-1], spacing_zyx, trunk_slices,
                           hu=None if hu is None else hu[:, ::-1])
        return Cavity(flip.cavity[:, ::-1], flip.rib_band[:, ::-1], flip.step, flip.front[:, ::-1])
    sz, sy, sx = (float(s) for s in spacing_zyx)
    step = (max(1, int(GRID_MM // sz)), max(1, int(round(GRID_MM / sy))), max(1, int(round(GRID_MM / sx))))
    grid = (slice(None, None, step[0]), slice(None, None, step[1]), slice(None, None, step[2]))
    b = body[grid]
    spine_bone = bone[grid]
    trunk_slices = np.asarray(trunk_slices, bool)[::step[0]]
    slab = max(1, int(round(2 * RIB_SLAB_MM / (sz * step[0]))) | 1)
    bn = ndi.maximum_filter1d(spine_bone.view(np.uint8), size=slab, axis=0).view(bool) & b
    hull = np.zeros_like(b)
    for z in np.flatnonzero(trunk_slices):
        if bn[z].sum() < 8:
            continue
        h = _hull_in_plane(bn[z])
        if h.sum() >= MIN_HULL_FRACTION * max(b[z].sum(), 1):
            hull[z] = h & b[z]
    sp = (sz * step[0], sy * step[1], sx * step[2])
    inside = distance_inside_mm(hull, sp, in_plane=True)
    outside = distance_outside_mm(hull, sp, in_plane=True)
    outside[~b] = 0.0
    has = hull.any(axis=(1, 2))
    thorax = np.zeros(b.shape[0], bool)
    hu = None if hu is None else hu[grid]
    if hu is not None:
        # Slices through the lungs: there the cavity reaches back beside the vertebral
        # body (descending aorta, azygos, oesophagus); lower down the psoas lies there.
        air = (hu < -500) & hull
        thorax = air.sum(axis=(1, 2)) >= THORAX_MIN_LUNG_FRACTION * np.maximum(hull.sum(axis=(1, 2)), 1)
    anterior = _anterior_to_spine(b, spine_bone, sp, thorax)
    cavity = (inside > CAVITY_INSET_MM) & anterior
    if hu is not None:
        open_front = has & ~_has_sternum(b, spine_bone, sp)
        if open_front.any():
            cavity |= _below_abdominal_wall(b, hu, sp, open_front) & anterior
    # In front, costal cartilage runs on from the rib ends towards the sternum, in front of
    # the line between the anterior ribs: the band reaches further out there.
    front = _anterior_half(b)
    reach = (outside <= RIB_BAND_MM) | (front & (outside <= ANTERIOR_BAND_MM))
    band = has[:, None, None] & (((inside > 0) & (inside <= RIB_BAND_MM)) | ((outside > 0) & reach))
    return Cavity(cavity, band, step, has[:, None, None] & front)


def _hull_in_plane(mask: np.ndarray) -> np.ndarray:
    """Convex hull image of a 2-D mask, computed on the mask's bounding box only."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    out = np.zeros_like(mask)
    out[box] = convex_hull_image(mask[box])
    return out


def _has_sternum(body: np.ndarray, bone: np.ndarray, sp) -> np.ndarray:
    """Per slice: bone within ``STERNUM_HALF_WIDTH_MM`` of the midline in the anterior third
    of the body (the sternum, or the xiphoid)."""
    out = np.zeros(body.shape[0], bool)
    half = max(1, int(round(STERNUM_HALF_WIDTH_MM / sp[2])))
    for z in np.flatnonzero(bone.any(axis=(1, 2))):
        rows = np.flatnonzero(body[z].any(axis=1))
        cols = np.flatnonzero(body[z].any(axis=0))
        if rows.size == 0:
            continue
        centre = (cols[0] + cols[-1]) // 2
        y1 = rows[0] + (rows[-1] - rows[0]) // 3 + 1
        out[z] = bool(bone[z, rows[0]:y1, max(centre - half, 0):centre + half + 1].any())
    return out


def _below_abdominal_wall(body: np.ndarray, hu: np.ndarray, sp, slices: np.ndarray) -> np.ndarray:
    """In the anterior half of ``slices``: more than ``ABDOMINAL_WALL_MM`` inside the
    subcutaneous fat's inner edge (in-plane)."""
    out = np.zeros_like(body)
    rows = np.flatnonzero(body.any(axis=(0, 2)))
    cols = np.flatnonzero(body.any(axis=(0, 1)))
    mid = (rows[0] + rows[-1]) // 2
    # Rows down to the wall depth past the middle: a point of the anterior half nearer the
    # fat than that finds the fat in the crop.
    r1 = min(body.shape[1], mid + int(np.ceil(ABDOMINAL_WALL_MM / sp[1])) + 2)
    box = (slices, slice(0, r1), slice(max(cols[0] - 1, 0), cols[-1] + 2))
    deep = _depth_under_fat_mm(body[box], hu[box], sp) > ABDOMINAL_WALL_MM
    deep[:, mid:] = False
    out[box] = deep
    return out


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


def _anterior_half(body: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(body.any(axis=(0, 2)))
    out = np.zeros_like(body)
    if rows.size:
        out[:, : (rows[0] + rows[-1]) // 2, :] = True
    return out


def _anterior_to_spine(body: np.ndarray, bone: np.ndarray, sp, thorax: np.ndarray) -> np.ndarray:
    """Per slice, the part of the grid in front of the spine. The spine's front edge is
    the most anterior row where bone fills a 20 mm wide midline strip of the body's back
    60 % for at least 6 mm (a vertebral body; a calcified aortic wall or a tracheal ring
    crossing the strip does not), the most anterior within +-15 mm (slices through a disc
    find the laminae).
    Within 50 mm of the midline (vertebra, psoas) the cavity stops at that edge, 30 mm
    further back in slices through the lungs (aorta beside the spine); further out
    (kidneys, colon) 30 mm behind it, in front of the back muscles."""
    out = np.ones_like(body)
    half = max(1, int(round(10.0 / sp[2])))
    central = int(round(SPINE_CENTRAL_MM / sp[2]))
    behind = int(round(LATERAL_BEHIND_SPINE_MM / sp[1]))
    beside = int(round(THORAX_BESIDE_SPINE_MM / sp[1]))
    run = max(1, int(round(SPINE_MIN_DEPTH_MM / sp[1])))
    n = body.shape[0]
    front = np.full(n, -1)
    centre = np.full(n, -1)
    for z in range(n):
        cols = np.flatnonzero(body[z].any(axis=0))
        rows = np.flatnonzero(body[z].any(axis=1))
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
    if found.size == 0:
        return out
    # Through a disc the strip finds the laminae instead: take the most anterior edge
    # within +-15 mm, which is a vertebral body's.
    k = max(1, int(round(RIB_SLAB_MM / sp[0])))
    for z in range(n):
        if centre[z] < 0:
            continue
        near = found[np.abs(found - z) <= k]
        f = (front[near].min() if near.size else front[found[np.argmin(np.abs(found - z))]])
        f += beside if thorax[z] else 0
        lo, hi = max(centre[z] - central, 0), centre[z] + central + 1
        out[z, f:, lo:hi] = False
        out[z, f + behind:, :] = False
    return out
