"""The back's frontal plane: the posterior coordinate of the vertebral bodies' centres.

Chest and abdomen points behind this plane are ``back``. The plane is taken
``VB_CENTRE_BEHIND_EDGE_MM`` behind the spine's anterior edge, read per slice in a
20 mm strip round the spine (:func:`_spine_front_mm`) and smoothed along z by a
running lower quartile (:func:`_running_low`) so that disc levels keep the vertebral
body's edge.
"""

from __future__ import annotations

import numpy as np

SPINE_WINDOW_MM = 20.0  # half-window for the anterior edge of the spine (longer than a disc)
VB_CENTRE_BEHIND_EDGE_MM = 15.0
SPINE_GAP_MM = 20.0  # wider than the spinal canal (AP), narrower than spine-to-sternum


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
