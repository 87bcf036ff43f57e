"""A dense deposit on the bone's shoulder: its basin took in the piece of bone beside it.

The valley split (:mod:`calcinosis.anatomy.valley`) floods a bone structure from its
maxima. A deposit denser than the bone that lies a millimetre from it on thick slices
joins it at the threshold through the gap's partial volume; the piece of bone beside it
has no maximum of its own when its intensity rises all the way to the deposit's flank.
The deposit's basin then holds that piece of bone too: too large or facing the bone too
much to be a deposit, it stayed bone, and the deposit was lost (a 6.9 mm 1472 HU deposit
0.9 mm from the elbow's bone, 3 mm slices: a 2924 mm3 basin).

Inside such a basin the deposit is a peak on a shoulder. Going down from the basin's
maximum in steps of ``h / 2``, the part of the basin above each level that holds the
maximum grows as a blurred blob does, a little at each step, until the level reaches the
bone's shoulder: then it takes in the shoulder and grows at once to several times its
size. When that jump comes at least ``SHOULDER_MIN_RISE_H * h`` below the maximum, the
part just above it is the deposit's core, and the part the jump added, away from the
core, is the bone's. Flooding a window round the core from the two (the bone also from
its border with the other basins and from the window's edge) gives the deposit's piece,
which must be a deposit's size and face soft tissue more than bone (the rule of the other
steps, :func:`calcinosis.anatomy.basins.faces_tissue`). A bone basin's own maximum sits on its plateau: the jump
comes at the first step; a ridge of cortex grows along the bone, wider than any deposit,
before its jump.

Cost: on the 400-slice trunk phantom (1 mm slices) the spine's ~360 basins are looked at
in about 0.2 s of CPU (the search stops at the first jump, at a core larger or wider than
a deposit, and reads each level on the box of the level before).
"""

from __future__ import annotations

import cc3d
import numpy as np

from calcinosis.anatomy.basins import piece_from_core
from calcinosis.anatomy.morphology import grow, grow_box, inner_faces

# The deposit's core stands at least this many h above the level where the bone joins it.
SHOULDER_MIN_RISE_H = 2.0
# Levels are stepped by this many h.
SHOULDER_STEP_H = 0.5
# The part above the level grows by at least this factor, and this many voxels, in one step
# when it takes in the bone's shoulder (a blurred blob grows by well under twice per step
# once it holds a few tens of voxels).
SHOULDER_JUMP = 2.0
SHOULDER_JUMP_MIN_VOXELS = 20
# The bone's marker keeps this many voxels (face steps) away from the deposit's core.
CORE_CLEARANCE_VOXELS = 2

# How far (voxels) the part above a level may spread beyond its box in one step.
SPREAD_VOXELS = 2
# How far (voxels) beyond the core's box the deposit's piece may reach.
PIECE_REACH_VOXELS = 4


def part_above(basin, img, level, top, big):
    """The part of ``basin`` at or above ``level`` that holds ``top``, read on the box
    ``big``: its voxel count, its box (on the whole array), its mask on ``big``, and whether
    it reaches an edge of ``big`` that is not the array's."""
    labels = cc3d.connected_components(basin[big] & (img[big] >= level), connectivity=26)
    part = labels == labels[tuple(i - s.start for i, s in zip(top, big))]
    # The part's box from its projections on the axes (cc3d.statistics would measure every
    # component of the box: 2-4 times the labelling's own time).
    bounds = []
    for axis in range(part.ndim):
        on = np.flatnonzero(part.any(axis=tuple(a for a in range(part.ndim) if a != axis)))
        bounds.append((int(on[0]), int(on[-1]) + 1))
    part_box = tuple(slice(lo + s.start, hi + s.start) for (lo, hi), s in zip(bounds, big))
    spread = any((p.start == s.start > 0) or (p.stop == s.stop < size)
                 for p, s, size in zip(part_box, big, basin.shape))
    return int(np.count_nonzero(part)), part_box, part, spread


def shoulder_piece(basin: np.ndarray, img: np.ndarray, solid: np.ndarray, others: np.ndarray,
                   h_hu: float, floor_hu: float, max_voxels: float, spacing_zyx) -> np.ndarray | None:
    """The deposit on the shoulder of one basin, or None.

    ``basin``: the basin's voxels on a box; ``img``: the smoothed HU on it; ``solid``: the
    bone structure's voxels on it; ``others``: voxels of the other basins on it (the rest of
    the bone); ``floor_hu``: the lowest level looked at (the threshold); ``max_voxels``: the
    largest deposit, whose core spans at most the diameter of a ball of that volume.
    """
    max_span_mm = 2.0 * (3.0 * max_voxels * float(np.prod(spacing_zyx)) / (4.0 * np.pi)) ** (1.0 / 3.0)
    vals = np.where(basin, img, -np.inf)
    top = np.unravel_index(int(np.argmax(vals)), basin.shape)
    peak = float(img[top])
    step = SHOULDER_STEP_H * h_hu
    if peak < floor_hu + (SHOULDER_MIN_RISE_H + SHOULDER_STEP_H) * h_hu:
        return None  # no room for a core and a step below it
    # The part above each level is read on its box at the level before, grown by
    # ``SPREAD_VOXELS``: exact while it stays inside; reaching that box's edge it spread
    # further in one step than a blob grows, which is a jump too.
    # The first level is read on the box of the widest core round the top: a part that
    # reaches that box's edge spans more than a deposit's diameter and ends the search
    # (as read on the whole basin), and one inside it is the same part.
    reach = [int(max_span_mm // float(d)) + 1 for d in spacing_zyx]
    box = tuple(slice(max(t - r, 0), min(t + r + 1, size)) for t, r, size in zip(top, reach, basin.shape))
    core = None
    n_core = 0
    level = peak - step
    while level > floor_hu:
        big = box if core is None else grow_box(box, (SPREAD_VOXELS,) * basin.ndim, basin.shape)
        n, part_box, part, spread = part_above(basin, img, level, top, big)
        if core is not None and (spread or (n >= SHOULDER_JUMP * n_core and n - n_core >= SHOULDER_JUMP_MIN_VOXELS)):
            break
        span = max((p.stop - p.start) * d for p, d in zip(part_box, spacing_zyx))
        if n > max_voxels or spread or span > max_span_mm:
            # The cores below are larger still (or as wide: a ridge of cortex); or a plateau
            # from the first step.
            return None
        core, n_core, core_box = (part, big), n, part_box
        box = part_box
        level -= step
    else:
        return None  # no jump above the floor: one blob, or no shoulder to it
    if peak - level < SHOULDER_MIN_RISE_H * h_hu:
        return None
    # The deposit's piece is flooded on a window round the core (``PIECE_REACH_VOXELS``
    # beyond its box): its blur below the core reaches a voxel or two; the window's edge,
    # away from the core, floods as bone.
    win = grow_box(core_box, (PIECE_REACH_VOXELS,) * basin.ndim, basin.shape)
    basin_w, img_w = basin[win], img[win]
    core_part, core_big = core
    core_w = np.zeros(basin_w.shape, bool)
    core_w[tuple(slice(c.start - w.start, c.stop - w.start) for c, w in zip(core_box, win))] = \
        core_part[tuple(slice(c.start - b.start, c.stop - b.start) for c, b in zip(core_box, core_big))]
    labels = cc3d.connected_components(basin_w & (img_w >= level), connectivity=26)
    local = tuple(i - w.start for i, w in zip(top, win))
    part = labels == labels[local]
    bone_w = part | inner_faces(win, basin.shape) | grow(others[win])
    piece_w = piece_from_core(core_w, bone_w, img_w, basin_w, solid[win], CORE_CLEARANCE_VOXELS, max_voxels)
    if piece_w is None:
        return None
    piece = np.zeros(basin.shape, bool)
    piece[win] = piece_w
    return piece
