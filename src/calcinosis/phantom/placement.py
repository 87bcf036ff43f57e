"""Placing deposits and skin-contact objects in a phantom anatomy, and classifying them.

Every rule is checked on the exact shapes: a deposit lies wholly inside one
soft tissue, keeps ``margin_mm`` from every other tissue boundary, keeps its
gap to bone, and does not come near another deposit. The compartment, side
and region written into the truth are computed from the final geometry, so
they agree with the DESIGN definitions by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calcinosis.phantom.anatomy_parts import SKIN_MM, SOFT_TISSUES, Anatomy, Structure, Tissue
from calcinosis.phantom.shapes import Blob, Ellipse2D, blob_with_diameter, lumpy_blob

MIN_DEPOSIT_GAP_MM = 2.0
# The smallest deposit the phantom makes (equivalent diameter, mm): the issue's 1.5-15 mm range.
MIN_DEPOSIT_MM = 1.5
COMPARTMENTS = ("cutaneous", "subcutaneous", "intramuscular", "juxta_osseous")
_SHARE = {
    "thighs": (0.12, 0.55, 0.13, 0.20),
    "trunk": (0.15, 0.35, 0.20, 0.30),
    "elbow": (0.15, 0.30, 0.10, 0.45),
    # A finger has no muscle, and all of its fat lies within 5 mm of a phalanx: juxta-osseous.
    "fingers": (0.35, 0.0, 0.0, 0.65),
}


@dataclass(frozen=True)
class Placed:
    """A deposit shape with its density and the compartment it was meant for (or ``None``)."""

    blob: Blob
    density_hu: float
    intended: str | None = None


def blob_extent(blob: Blob) -> tuple[float, np.ndarray, float]:
    """``(volume_mm3, centroid, r_max_mm)``: r_max is the farthest surface point from the centroid."""
    vol, c = blob.moments()
    r_max = float(np.linalg.norm(blob.surface_points(200) - c, axis=1).max())
    return vol, c, r_max


def check_fit(anatomy: Anatomy, blob: Blob, tissues: frozenset, margin_mm: float, bone_gap_min_mm: float,
              z_limits: tuple[float, float], placed: list[Placed]) -> str | None:
    """Why ``blob`` cannot be placed (one line), or ``None`` if it fits."""
    lo, hi = blob.bbox()
    if lo[2] < z_limits[0] or hi[2] > z_limits[1]:
        return f"it reaches beyond the slices (z {lo[2]:.1f}..{hi[2]:.1f} mm, allowed {z_limits[0]:.1f}..{z_limits[1]:.1f})"
    _, c, r = blob_extent(blob)
    for k, other in enumerate(placed):
        _, c2, r2 = blob_extent(other.blob)
        if np.linalg.norm(c - c2) < r + r2 + MIN_DEPOSIT_GAP_MM:
            return f"it comes within {MIN_DEPOSIT_GAP_MM} mm of deposit {k + 1}"
    surf = blob.surface_points(300)
    pts = np.concatenate([surf, blob.centers, c[None]])
    labels = anatomy.tissue_at(pts)
    found_set = set(labels.tolist())
    if len(found_set) != 1 or labels[-1] not in tissues:
        found = sorted(t.value for t in found_set)
        return f"it is not inside one soft tissue (touches {', '.join(found)})"
    for st in _near(anatomy.structures, lo, hi, margin_mm + 6.0):
        if st.tissue in (Tissue.MARROW, Tissue.TABLE, Tissue.TABLE_RAIL):
            continue
        d = st.prism.signed_distance(surf)
        if st.tissue == Tissue.CORTICAL_BONE:
            if d.min() < bone_gap_min_mm:
                return f"it is within {bone_gap_min_mm} mm of bone ({st.name})"
        elif np.abs(d).min() < margin_mm:
            return f"it is within {margin_mm} mm of a tissue boundary ({st.name})"
    return None


def _near(structures: tuple[Structure, ...], lo: np.ndarray, hi: np.ndarray, reach: float) -> list[Structure]:
    out = []
    for st in structures:
        x0, x1, y0, y1 = st.prism.shape.bbox()
        if x0 - reach <= hi[0] and x1 + reach >= lo[0] and y0 - reach <= hi[1] and y1 + reach >= lo[1]:
            out.append(st)
    return out


def classify(anatomy: Anatomy, blob: Blob) -> dict:
    """Geometry-derived truth of one placed deposit (compartment, side, region, distances)."""
    vol, c, _ = blob_extent(blob)
    surf = blob.surface_points(1000)
    depth = float(-anatomy.body_signed_distance(c[None])[0])
    bone_gap = anatomy.bone_gap_mm(surf)
    tissue = anatomy.tissue_at(c[None])[0]
    if depth <= 3.0:
        compartment = "cutaneous"
    elif bone_gap <= 5.0:
        compartment = "juxta_osseous"
    elif tissue == Tissue.FAT:
        compartment = "subcutaneous"
    elif tissue == Tissue.MUSCLE:
        compartment = "intramuscular"
    else:
        compartment = "visceral"
    return {
        "centroid": c, "volume_mm3": vol, "depth_mm": depth, "bone_gap_mm": bone_gap,
        "tissue": tissue, "background_hu": float(anatomy.hu_at(c[None])[0]), "compartment": compartment,
        "side": anatomy.side_of(float(c[0])), "region": anatomy.region_of(c),
    }


def compartment_counts(body_part: str, n: int) -> dict[str, int]:
    """How many of ``n`` deposits go to each compartment (at least one in each the body part
    has, when n >= 4)."""
    share = np.array(_SHARE[body_part])
    raw = share * n
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    if n >= 4:
        for i in range(4):
            if counts[i] == 0 and share[i] > 0:
                counts[int(np.argmax(counts))] -= 1
                counts[i] = 1
    return dict(zip(COMPARTMENTS, (int(v) for v in counts)))


def _frame(outline: Ellipse2D, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Skin point at ellipse parameter ``t`` and its outward unit normal (z = 0)."""
    cx, cy = outline.center
    p = np.array([cx + outline.semi_x * np.cos(t), cy + outline.semi_y * np.sin(t), 0.0])
    n = np.array([np.cos(t) / outline.semi_x, np.sin(t) / outline.semi_y, 0.0])
    return p, n / np.linalg.norm(n)


def surface_rotation(normal: np.ndarray) -> np.ndarray:
    """Rotation whose columns are (in-plane tangent, +z, normal)."""
    tangent = np.array([-normal[1], normal[0], 0.0])
    return np.stack([tangent, np.array([0.0, 0.0, 1.0]), normal], axis=1)


def _flat_blob(rng: np.random.Generator, rot: np.ndarray, center: np.ndarray) -> Blob:
    """A small lentil-shaped skin deposit: two flat ellipsoids, thin along the normal."""
    t = rng.uniform(0.6, 0.8)
    r1 = rng.uniform(0.8, 1.5, size=2)
    off = rng.uniform(-0.6, 0.6, size=2)
    centers = np.array([[0.0, 0.0, 0.0], [off[0], off[1], 0.0]])
    radii = np.array([[r1[0], r1[1], t], [0.8 * r1[1], 0.8 * r1[0], 0.9 * t]])
    local = Blob(centers, radii, np.stack([np.eye(3)] * 2))
    _, c = local.moments()
    return Blob((centers - c) @ rot.T + center, radii, np.stack([rot] * 2))


class DepositPlacer:
    """Random deposit placement for one anatomy (deterministic given ``rng``)."""

    def __init__(self, anatomy: Anatomy, rng: np.random.Generator, z_limits: tuple[float, float]):
        self.anatomy, self.rng, self.z_limits = anatomy, rng, z_limits
        self.placed: list[Placed] = []
        zc = 0.5 * (z_limits[0] + z_limits[1])
        self.z_span = 0.5 * (z_limits[1] - z_limits[0])
        # thighs: one injection-site cluster on the anterolateral surface of each thigh
        self.clusters = {i: (np.radians(rng.uniform(200, 250) if o.center[0] < 0 else rng.uniform(290, 340)),
                             zc + rng.uniform(-0.4, 0.4) * self.z_span)
                         for i, o in enumerate(anatomy.outlines)}
        self._juxta_done = 0

    def _z(self, d: float = 0.0) -> float:
        """A random z (mm) leaving room for a deposit of size ``d`` (mm)."""
        a, b = self.z_limits[0] + 0.7 * d, self.z_limits[1] - 0.7 * d
        return float(self.rng.uniform(a, b)) if b > a else 0.5 * (a + b)

    def _outline(self, k: int) -> tuple[int, Ellipse2D]:
        i = k % len(self.anatomy.outlines)
        return i, self.anatomy.outlines[i]

    def propose(self, compartment: str, k: int) -> tuple[Blob, frozenset, float, float]:
        """One candidate: ``(blob, allowed tissues, margin_mm, bone_gap_min_mm)``."""
        rng, anat = self.rng, self.anatomy
        i, outline = self._outline(k)
        if compartment == "cutaneous":
            t = rng.uniform(0, 2 * np.pi)
            p, n = _frame(outline, t)
            if n[1] > 0.6:  # not where the body lies on the table
                p, n = _frame(outline, -t)
            center = p - n * (0.5 * SKIN_MM) + np.array([0, 0, self._z()])
            # Away from bone (5.5 mm), except in a finger, where no skin lies that far from a
            # phalanx (calcinosis cutis of the fingers lies over them).
            gap_min = 1.5 if anat.body_part == "fingers" else 5.5
            return _flat_blob(rng, surface_rotation(n), center), frozenset({Tissue.SKIN}), 0.15, gap_min
        if compartment == "subcutaneous":
            d = float(np.exp(rng.uniform(np.log(3.0), np.log(15.0))))
            if anat.body_part == "thighs":
                tc, zc = self.clusters[i]
                t, z = tc + np.radians(rng.normal(0, 14)), zc + rng.normal(0, 0.3 * self.z_span)
            else:
                t, z = rng.uniform(0, 2 * np.pi), self._z()
            for _ in range(20):  # find a spot where the fat is thick enough for a 2.5 mm deposit
                p, n = _frame(outline, t)
                # fat thickness along the inward normal here, so the deposit fits across it
                steps = SKIN_MM + 0.25 + 0.5 * np.arange(120)
                probe = anat.tissue_at(p - steps[:, None] * n)
                fat = steps[np.cumprod([x is Tissue.FAT for x in probe]).astype(bool)]
                room = (fat[-1] - fat[0]) if len(fat) else 0.0
                if room >= 6.5:
                    break
                t = rng.uniform(0, 2 * np.pi)
            # shrink to fit thin fat, but never below the smallest deposit (dividing the floor by
            # 1.15 as well made 1.3 mm deposits, e.g. elbow seed 32)
            d = min(d, max((room - 3.5) / 1.15, MIN_DEPOSIT_MM))
            depth = fat[0] + 1.5 + 0.6 * d + rng.uniform(0, max(room - 3.0 - 1.2 * d, 0.0)) if len(fat) else 0.0
            z = float(np.clip(z, self.z_limits[0] + 0.7 * d, self.z_limits[1] - 0.7 * d))
            center = p - n * depth + np.array([0, 0, z])
            return self._lumpy(d, center), frozenset({Tissue.FAT}), 1.5, 5.5
        if compartment == "intramuscular":
            d = rng.uniform(3.0, 10.0)
            muscles = [s for s in anat.structures if s.tissue == Tissue.MUSCLE
                       and (len(anat.outlines) == 1 or outline.contains(*s.prism.shape.center))]
            st = muscles[int(rng.integers(len(muscles)))]
            x0, x1, y0, y1 = st.prism.shape.bbox()
            for _ in range(50):  # cheap pre-check of the centre before building the shape
                center = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1), self._z(d)])
                if (anat.tissue_at(center[None])[0] == Tissue.MUSCLE
                        and anat.bone_gap_mm(center[None]) > 6.0 + 0.6 * d):
                    break
            return self._lumpy(d, center), frozenset({Tissue.MUSCLE}), 1.5, 6.0
        return self._juxta(outline)

    def _lumpy(self, d: float, center: np.ndarray) -> Blob:
        return blob_with_diameter(lumpy_blob(self.rng), d, center)

    def _juxta(self, outline: Ellipse2D) -> tuple[Blob, frozenset, float, float]:
        rng, anat = self.rng, self.anatomy
        bones = [s for s in anat.structures if s.tissue == Tissue.CORTICAL_BONE
                 and outline.contains(*s.prism.shape.center)]
        if anat.body_part == "trunk" and rng.uniform() < 0.7:  # favour facet joints / posterior arch
            post = [s for s in bones if s.name.startswith("posterior_element")]
            bones = post or bones
        st = bones[int(rng.integers(len(bones)))]
        shape = st.prism.shape
        if anat.body_part == "fingers":
            # The pulp, under the phalanx (high y: palm down), holds the only fat with room for
            # a deposit; elsewhere nearly every try failed and deposits went missing.
            t = rng.uniform(np.radians(35), np.radians(145))
        else:
            t = rng.uniform(0, 2 * np.pi)
        p2 = shape.boundary_points(360)[int(np.degrees(t)) % 360]
        q = shape.boundary_points(360)[(int(np.degrees(t)) + 1) % 360]
        tangent = q - p2
        n2 = np.array([tangent[1], -tangent[0]])
        n2 /= np.linalg.norm(n2)
        if shape.contains(*(p2 + 0.5 * n2)):
            n2 = -n2
        z = self._z(8.0)
        if st.prism.z_intervals is not None:
            a, b = st.prism.z_intervals[int(rng.integers(len(st.prism.z_intervals)))]
            a, b = max(a, self.z_limits[0]), min(b, self.z_limits[1])
            if anat.body_part == "elbow":  # periarticular: close to the joint line
                a, b = (max(a, -15.0), min(b, -2.0)) if b < 0 else (max(a, 2.0), min(b, 15.0))
            elif anat.body_part == "fingers":  # periarticular: within 8 mm of a joint in the scan
                joint = b if b < self.z_limits[1] and (rng.uniform() < 0.5 or a <= self.z_limits[0]) else a
                a, b = max(a, joint - 8.0), min(b, joint + 8.0)
        # A finger's fat leaves room for small deposits only (4-5 mm under the phalanx).
        d = rng.uniform(1.5, 3.0) if anat.body_part == "fingers" else rng.uniform(2.0, 8.0)
        if st.prism.z_intervals is not None:
            a, b = max(a, self.z_limits[0] + 0.7 * d), min(b, self.z_limits[1] - 0.7 * d)
            z = float(rng.uniform(a, b)) if b > a else self._z(d)
        gap = rng.uniform(0.3, 2.0) if self._juxta_done % 2 == 0 else rng.uniform(0.3, 4.0)
        n = np.array([n2[0], n2[1], 0.0])
        base = np.array([p2[0], p2[1], z])
        blob = self._lumpy(d, base + n * (gap + 0.5 * d))
        for _ in range(3):  # slide along the normal until the exact gap is the wanted one
            actual = anat.bone_gap_mm(blob.surface_points(300))
            blob = blob.transformed(1.0, n * (gap - actual))
        self._juxta_done += 1
        return blob, frozenset({Tissue.MUSCLE, Tissue.FAT}), 1.0, 0.2

    def place(self, compartment: str, k: int, attempts: int = 150) -> Placed | None:
        """Place one deposit of ``compartment``; ``None`` if no spot was found."""
        lo, hi = {"cutaneous": (700, 1600), "subcutaneous": (300, 1600),
                  "intramuscular": (300, 1200), "juxta_osseous": (300, 1500)}[compartment]
        for _ in range(attempts):
            blob, tissues, margin, gap_min = self.propose(compartment, k)
            if check_fit(self.anatomy, blob, tissues, margin, gap_min, self.z_limits, self.placed):
                continue
            if classify(self.anatomy, blob)["compartment"] != compartment:
                continue
            placed = Placed(blob, float(self.rng.uniform(lo, hi)), compartment)
            self.placed.append(placed)
            return placed
        return None


def skin_objects(anatomy: Anatomy, rng: np.random.Generator, z_limits: tuple[float, float]) -> list[dict]:
    """Objects lying on the skin that are not deposits: a metal bead chain, a snap button, a cloth fold.

    Each is ``{"kind", "blob", "hu", "gap_mm"}``; all lie outside the body, on
    its anterior / anterolateral surface (away from the table).
    """
    outlines = anatomy.outlines
    zc = 0.5 * (z_limits[0] + z_limits[1])
    span = 0.5 * (z_limits[1] - z_limits[0])
    objects = []
    # bead chain: six 3.2 mm metal beads in a row along z
    o = outlines[0]
    p, n = _frame(o, np.radians(rng.uniform(255, 285)))
    r = 1.6
    z0 = zc + rng.uniform(-0.3, 0.3) * span
    for b in range(6):
        z = z0 + (b - 2.5) * 4.0
        if z_limits[0] + r <= z <= z_limits[1] - r:
            c = p + n * (r + 0.3) + np.array([0, 0, z])
            objects.append({"kind": "metal_bead", "blob": Blob(c[None], np.full((1, 3), r), np.eye(3)[None]),
                            "hu": 3000.0, "gap_mm": 0.3})
    # snap button: a flat metal disc on the anterolateral skin
    o = outlines[-1]
    lateral = 1.0 if o.center[0] >= (anatomy.midline_x_mm or 0.0) else -1.0
    t = np.radians(rng.uniform(300, 320) if lateral > 0 else rng.uniform(220, 240))
    p, n = _frame(o, t)
    rot = surface_rotation(n)
    c = p + n * (1.2 + 0.3) + np.array([0, 0, zc - 0.5 * span + 1.2 + rng.uniform(0, 0.5) * span])
    objects.append({"kind": "snap_button", "blob": Blob(c[None], np.array([[5.0, 5.0, 1.2]]), rot[None]),
                    "hu": 3000.0, "gap_mm": 0.3})
    # cloth fold: a long soft roll touching the skin
    t = np.radians(rng.uniform(240, 250) if lateral > 0 else rng.uniform(290, 300))
    p, n = _frame(o, t)
    rot = surface_rotation(n)
    half_len = min(20.0, 0.8 * span)
    c = p + n * (2.5 + 0.1) + np.array([0, 0, zc])
    objects.append({"kind": "cloth_fold", "blob": Blob(c[None], np.array([[6.0, half_len, 2.5]]), rot[None]),
                    "hu": float(rng.uniform(-50, 0)), "gap_mm": 0.1})
    return objects


def soft_tissue_fit(anatomy: Anatomy, blob: Blob, z_limits: tuple[float, float],
                    placed: list[Placed]) -> str | None:
    """Why an explicitly requested deposit cannot be placed, or ``None``."""
    return check_fit(anatomy, blob, SOFT_TISSUES, 0.05, 0.05, z_limits, placed)
