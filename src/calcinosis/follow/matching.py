"""Match deposits between two visits and give each a status.

Follow-up centroids are mapped into baseline coordinates and paired one-to-one
(Hungarian assignment on distance, within a gate that grows with deposit size).
Label-map overlap after resampling the follow-up labels onto the baseline grid
adds what distance alone misses: a deposit that split in two, or two that merged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
from scipy.optimize import linear_sum_assignment

from calcinosis.follow.config import CompareConfig
from calcinosis.measure.lesion import Lesion, combined_sd
from calcinosis.volume import Volume

_FORBIDDEN = 1.0e9


class Status(str, Enum):
    STABLE = "stable"
    GROWN = "grown"
    SHRUNK = "shrunk"
    NEW = "new"
    RESOLVED = "resolved"
    NOT_COVERED = "not_covered"


@dataclass(frozen=True)
class Change:
    """One tracked deposit (or split / merged group) between baseline and follow-up.

    Masses in mg, volumes in mm^3, position in baseline LPS mm (for a new deposit,
    its follow-up centroid mapped into the baseline). ``nan`` where a side is absent.
    ``mass_change_sd_mg`` is the SD that image noise alone gives the mass change (the
    masses' own SDs in quadrature; NaN when unknown or when the deposit is not covered).
    """

    track_id: int
    baseline_ids: tuple[int, ...]
    followup_ids: tuple[int, ...]
    status: Status
    baseline_mass_mg: float
    followup_mass_mg: float
    mass_change_pct: float
    baseline_volume_mm3: float
    followup_volume_mm3: float
    x_mm: float
    y_mm: float
    z_mm: float
    distance_mm: float
    detail: str
    region: str
    compartment: str
    mass_change_sd_mg: float = float("nan")

    @property
    def mass_change_mg(self) -> float:
        """Follow-up minus baseline mass (mg): a resolved deposit's change is minus its mass, a
        new one's its mass; NaN when the deposit is not covered by one of the scans."""
        if self.status is Status.NOT_COVERED:
            return float("nan")
        before = self.baseline_mass_mg if self.baseline_ids else 0.0
        after = self.followup_mass_mg if self.followup_ids else 0.0
        return float(after - before)


def radius_mm(lesion: Lesion) -> float:
    """Radius (mm) of the sphere with the lesion's volume."""
    return float((3.0 * max(lesion.volume_mm3, 0.0) / (4.0 * np.pi)) ** (1.0 / 3.0))


def centroids(lesions: Sequence[Lesion]) -> np.ndarray:
    return np.array([[les.x_mm, les.y_mm, les.z_mm] for les in lesions], float).reshape(-1, 3)


def extent_mm(lesion: Lesion) -> float:
    """How far (mm) a deposit reaches from its centroid: half its largest diameter, and at
    least the radius of the sphere of its volume (an elongated or irregular deposit reaches
    farther than that sphere)."""
    half = 0.5 * float(lesion.max_diameter_mm) if np.isfinite(lesion.max_diameter_mm) else 0.0
    return max(radius_mm(lesion), half)


def inside_fov(volume: Volume, points_lps: np.ndarray, margin_mm: np.ndarray, edge_voxels: float = 0.0) -> np.ndarray:
    """Whether each point lies at least ``margin_mm`` inside the volume's field of view.

    ``edge_voxels`` layers of voxels at each end of every axis do not count as inside:
    with 1, a deposit that reaches the first or last slice is not inside, as the analysis
    cannot report it there (it excludes a finding cut by the scan's edge, ``scan_edge``).
    """
    if len(points_lps) == 0:
        return np.zeros(0, bool)
    idx = volume.lps_to_index(points_lps)  # (n, 3) z, y, x
    sp = np.asarray(volume.spacing_zyx, float)
    n = np.asarray(volume.shape, float)
    m = np.asarray(margin_mm, float).reshape(-1, 1) / sp + float(edge_voxels)
    lo = idx * sp >= (-0.5 + m) * sp - 1e-6
    hi = idx <= n - 0.5 - m + 1e-6
    return np.all(lo & hi, axis=1)


def change_status(baseline_mass_mg: float, followup_mass_mg: float, change_pct: float,
                  noise_sd_mg: float = float("nan"), noise_sds: float = 0.0) -> tuple[Status, float]:
    """Status and percentage mass change of a matched deposit (or of a total burden).

    A change of more than ``change_pct`` is growth or shrinkage unless it is within
    ``noise_sds`` times ``noise_sd_mg`` (the SD that image noise gives the difference of the
    two masses; NaN when unknown: then the percentage alone decides).
    """
    if baseline_mass_mg > 0:
        pct = 100.0 * (followup_mass_mg - baseline_mass_mg) / baseline_mass_mg
    else:
        pct = float("inf") if followup_mass_mg > 0 else 0.0
    if abs(followup_mass_mg - baseline_mass_mg) <= noise_sds * noise_sd_mg:  # False when NaN
        return Status.STABLE, pct
    if pct > change_pct:
        return Status.GROWN, pct
    if pct < -change_pct:
        return Status.SHRUNK, pct
    return Status.STABLE, pct


def difference_sd_mg(baseline: Sequence[Lesion], followup: Sequence[Lesion]) -> float:
    """SD (mg) that image noise gives the difference of two groups' summed masses: every
    lesion's own noise SD in quadrature (NaN when one is unknown: an older lesions.csv)."""
    return combined_sd(les.mass_sd_mg for les in (*baseline, *followup))


def match_lesions(baseline: Sequence[Lesion], followup: Sequence[Lesion], followup_in_baseline: np.ndarray,
                  overlaps: dict[tuple[int, int], int], baseline_covered: np.ndarray,
                  followup_covered: np.ndarray, config: CompareConfig,
                  track_ids: dict[int, int] | None = None) -> tuple[Change, ...]:
    """Pair deposits and give every baseline and follow-up deposit a row.

    Parameters
    ----------
    baseline, followup : sequence of Lesion
    followup_in_baseline : numpy.ndarray
        ``(n_followup, 3)`` follow-up centroids mapped into baseline LPS mm.
    overlaps : dict
        ``(baseline_id, followup_id) -> voxels in common`` after resampling the follow-up
        label map onto the baseline grid.
    baseline_covered, followup_covered : numpy.ndarray of bool
        Whether each deposit lies inside the other scan's field of view.
    config : CompareConfig
    track_ids : dict, optional
        Track identifier of each baseline lesion id (from an earlier comparison);
        by default the baseline lesion id. New deposits are numbered after the largest.
    """
    b_pts = centroids(baseline)
    f_pts = np.asarray(followup_in_baseline, float).reshape(-1, 3)
    b_ids = [les.lesion_id for les in baseline]
    f_ids = [les.lesion_id for les in followup]
    pairs = _assign(baseline, followup, b_pts, f_pts, overlaps, config)
    # Groups: connected components of matched pairs plus overlap links of unmatched deposits.
    parent = {("b", i): ("b", i) for i in range(len(baseline))}
    parent.update({("f", j): ("f", j) for j in range(len(followup))})

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a, b):
        parent[find(a)] = find(b)

    for i, j in pairs:
        union(("b", i), ("f", j))
    matched_b = {i for i, _ in pairs}
    matched_f = {j for _, j in pairs}
    b_index = {bid: i for i, bid in enumerate(b_ids)}
    f_index = {fid: j for j, fid in enumerate(f_ids)}
    for (bid, fid), n in sorted(overlaps.items()):
        i, j = b_index.get(bid), f_index.get(fid)
        if i is None or j is None or n <= 0:
            continue
        # A deposit left over by the assignment that overlaps a matched one split from it or merged into it.
        if (i in matched_b) != (j in matched_f):
            union(("b", i), ("f", j))
    groups: dict = {}
    for node in parent:
        groups.setdefault(find(node), []).append(node)
    tracks = dict(track_ids or {})
    next_track = max([*tracks.values(), *b_ids, 0]) + 1
    changes = []
    for members in groups.values():
        bi = sorted(i for kind, i in members if kind == "b")
        fj = sorted(j for kind, j in members if kind == "f")
        if bi and fj:
            changes.append(_matched(baseline, followup, bi, fj, b_pts, f_pts, tracks, config))
        elif bi:
            les = baseline[bi[0]]
            status = Status.RESOLVED if baseline_covered[bi[0]] else Status.NOT_COVERED
            changes.append(_single(les, status, b_pts[bi[0]], tracks.get(les.lesion_id, les.lesion_id),
                                   baseline_side=True,
                                   detail="" if baseline_covered[bi[0]] else "outside the follow-up field of view"))
    for j in sorted(j for j in range(len(followup)) if j not in matched_f):
        if any(c for c in changes if followup[j].lesion_id in c.followup_ids):
            continue
        les = followup[j]
        status = Status.NEW if followup_covered[j] else Status.NOT_COVERED
        changes.append(_single(les, status, f_pts[j], next_track, baseline_side=False,
                               detail="" if followup_covered[j] else "outside the baseline field of view"))
        next_track += 1
    return tuple(sorted(changes, key=lambda c: c.track_id))


def _assign(baseline, followup, b_pts, f_pts, overlaps, config: CompareConfig) -> list[tuple[int, int]]:
    if len(baseline) == 0 or len(followup) == 0:
        return []
    d = np.linalg.norm(b_pts[:, None, :] - f_pts[None, :, :], axis=2)
    r_b = np.array([radius_mm(les) for les in baseline])
    r_f = np.array([radius_mm(les) for les in followup])
    gate = np.maximum(config.gate_min_mm, config.gate_radius_factor * (r_b[:, None] + r_f[None, :]))
    allowed = d <= gate
    for (bid, fid), n in overlaps.items():
        i = next((k for k, les in enumerate(baseline) if les.lesion_id == bid), None)
        j = next((k for k, les in enumerate(followup) if les.lesion_id == fid), None)
        if i is not None and j is not None and n > 0:
            allowed[i, j] = True
    cost = np.where(allowed, d, _FORBIDDEN)
    rows, cols = linear_sum_assignment(cost)
    return [(int(i), int(j)) for i, j in zip(rows, cols) if allowed[i, j]]


def _matched(baseline, followup, bi, fj, b_pts, f_pts, tracks, config: CompareConfig) -> Change:
    bl = [baseline[i] for i in bi]
    fl = [followup[j] for j in fj]
    mb = sum(les.mass_mg for les in bl)
    mf = sum(les.mass_mg for les in fl)
    sd = difference_sd_mg(bl, fl)
    status, pct = change_status(mb, mf, config.change_pct, sd, config.noise_sds)
    wb = np.array([max(les.mass_mg, 1e-9) for les in bl])
    wf = np.array([max(les.mass_mg, 1e-9) for les in fl])
    pb = (b_pts[bi] * wb[:, None]).sum(0) / wb.sum()
    pf = (f_pts[fj] * wf[:, None]).sum(0) / wf.sum()
    detail = []
    if len(bl) > 1:
        detail.append("merged")
    if len(fl) > 1:
        detail.append("split")
    if status is Status.STABLE and abs(pct) > config.change_pct:
        detail.append("within_noise")
    first = max(bl, key=lambda les: les.mass_mg)
    return Change(
        track_id=min(tracks.get(les.lesion_id, les.lesion_id) for les in bl),
        baseline_ids=tuple(les.lesion_id for les in bl), followup_ids=tuple(les.lesion_id for les in fl),
        status=status, baseline_mass_mg=mb, followup_mass_mg=mf, mass_change_pct=pct,
        baseline_volume_mm3=sum(les.volume_mm3 for les in bl), followup_volume_mm3=sum(les.volume_mm3 for les in fl),
        x_mm=float(pb[0]), y_mm=float(pb[1]), z_mm=float(pb[2]), distance_mm=float(np.linalg.norm(pf - pb)),
        detail="+".join(detail), region=first.region, compartment=first.compartment, mass_change_sd_mg=sd,
    )


def _single(les: Lesion, status: Status, pos: np.ndarray, track: int, *, baseline_side: bool, detail: str) -> Change:
    nan = float("nan")
    return Change(
        track_id=int(track),
        baseline_ids=(les.lesion_id,) if baseline_side else (),
        followup_ids=() if baseline_side else (les.lesion_id,),
        status=status,
        baseline_mass_mg=les.mass_mg if baseline_side else nan,
        followup_mass_mg=nan if baseline_side else les.mass_mg,
        mass_change_pct=(-100.0 if status == Status.RESOLVED else nan) if baseline_side else nan,
        baseline_volume_mm3=les.volume_mm3 if baseline_side else nan,
        followup_volume_mm3=nan if baseline_side else les.volume_mm3,
        x_mm=float(pos[0]), y_mm=float(pos[1]), z_mm=float(pos[2]), distance_mm=nan, detail=detail,
        region=les.region, compartment=les.compartment,
        mass_change_sd_mg=nan if status == Status.NOT_COVERED else float(les.mass_sd_mg),
    )


def refine_with_deposits(b_pts: np.ndarray, f_pts: np.ndarray, b_mass: np.ndarray, f_mass: np.ndarray,
                         max_shift_mm: float, tol_mm: float = 3.0,
                         max_candidates: int = 40, min_offset_mm: float = 1.0) -> tuple[np.ndarray, int, int]:
    """A translation (baseline mm) that lines up more deposits than none does.

    Every baseline-minus-follow-up difference within ``max_shift_mm`` among the
    ``max_candidates`` heaviest deposits of each visit is a candidate; the one that
    brings the most baseline deposits to within ``tol_mm`` of a follow-up deposit
    wins and is refined as the median difference of those pairs. Returns
    ``(shift, deposits lined up at shift, at zero)``; the shift is zero unless it
    lines up at least three deposits and more than no shift does, or, when no shift
    lines up more, unless the deposits already lined up (three or more) sit by a common
    offset of more than ``min_offset_mm`` (along a limb that is nearly the same all
    along, the image registration can leave the deposits 2-3 mm off, within ``tol_mm``)
    that keeps them all lined up.
    """
    from scipy.spatial import cKDTree

    zero = np.zeros(3)
    if len(b_pts) == 0 or len(f_pts) == 0:
        return zero, 0, 0
    tree = cKDTree(f_pts)

    def support(shift: np.ndarray) -> tuple[int, np.ndarray]:
        dist, j = tree.query(b_pts - shift, distance_upper_bound=tol_mm)
        ok = np.isfinite(dist)
        return int(ok.sum()), b_pts[ok] - f_pts[j[ok]]

    n_zero, _ = support(zero)
    top_b = b_pts[np.argsort(-np.asarray(b_mass), kind="stable")[:max_candidates]]
    top_f = f_pts[np.argsort(-np.asarray(f_mass), kind="stable")[:max_candidates]]
    diffs = (top_b[:, None, :] - top_f[None, :, :]).reshape(-1, 3)
    diffs = diffs[np.linalg.norm(diffs, axis=1) <= max_shift_mm]
    best_n, best = n_zero, zero
    for cand in diffs:
        n, _ = support(cand)
        if n > best_n:
            best_n, best = n, cand
    if best_n < 3 or best_n <= n_zero:
        if n_zero < 3:
            return zero, n_zero, n_zero
        offset = np.median(support(zero)[1], axis=0)
        n_offset = support(offset)[0]
        if np.linalg.norm(offset) <= min_offset_mm or n_offset < n_zero:
            return zero, n_zero, n_zero
        return offset, n_offset, n_zero
    _, pairs = support(best)
    return np.median(pairs, axis=0), best_n, n_zero
