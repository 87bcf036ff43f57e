"""Exact geometric primitives of the phantoms: 2-D cross-sections, prisms and lumpy blobs.

All coordinates are patient LPS millimetres. Anatomy is built from 2-D
cross-sections (in the axial x-y plane) extruded along z over one or more
z-intervals ("prisms"); deposits and objects on the skin are unions of
ellipsoids ("blobs"). Every shape answers ``contains`` on grids and exact
signed distances on point sets, so placement rules and ground truth never
depend on the voxel grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_BISECTION_STEPS = 64


def ellipse_signed_distance(
    x: np.ndarray, y: np.ndarray, semi_x: float, semi_y: float
) -> np.ndarray:
    """Exact signed distance (mm, negative inside) from points to an axis-aligned ellipse.

    The ellipse is centred at the origin. Uses Eberly's robust bisection on the
    first-quadrant reduction; accurate to float64 rounding for any point.
    """
    x = np.abs(np.asarray(x, dtype=float))
    y = np.abs(np.asarray(y, dtype=float))
    if semi_x < semi_y:  # the method wants the first semi-axis to be the longer one
        x, y = y, x
        semi_x, semi_y = semi_y, semi_x
    e0, e1 = float(semi_x), float(semi_y)
    # Points exactly on an axis are nudged off it: the general branch is then exact
    # to well below a micrometre and no special cases are needed.
    y0 = np.maximum(x, 1e-9)
    y1 = np.maximum(y, 1e-9)
    z0, z1 = y0 / e0, y1 / e1
    g = z0 * z0 + z1 * z1 - 1.0
    r0 = (e0 / e1) ** 2
    n0 = r0 * z0
    # Bisection on t = s + 1 > 0, where s is Eberly's root variable.
    lo = z1.copy()
    hi = np.where(g < 0, 1.0, np.hypot(n0, z1))
    for _ in range(_BISECTION_STEPS):
        t = 0.5 * (lo + hi)
        gt = (n0 / (t - 1.0 + r0)) ** 2 + (z1 / t) ** 2 - 1.0
        lo = np.where(gt > 0, t, lo)
        hi = np.where(gt > 0, hi, t)
    t = 0.5 * (lo + hi)
    c0 = r0 * y0 / (t - 1.0 + r0)
    c1 = y1 / t
    dist = np.hypot(c0 - y0, c1 - y1)
    return np.where(g < 0, -dist, dist)


def interval_signed_distance(z: np.ndarray, intervals: tuple[tuple[float, float], ...]) -> np.ndarray:
    """Signed distance (mm, negative inside) from z values to a union of disjoint intervals."""
    z = np.asarray(z, dtype=float)
    out = np.full(z.shape, np.inf)
    for z0, z1 in intervals:
        half = 0.5 * (z1 - z0)
        out = np.minimum(out, np.abs(z - 0.5 * (z0 + z1)) - half)
    return out


@dataclass(frozen=True)
class Ellipse2D:
    """A (possibly rotated) ellipse in the axial plane.

    ``angle_deg`` rotates the ``semi_x`` axis from +x towards +y.
    """

    center: tuple[float, float]
    semi_x: float
    semi_y: float
    angle_deg: float = 0.0

    def _local(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx = np.asarray(x, dtype=float) - self.center[0]
        dy = np.asarray(y, dtype=float) - self.center[1]
        if self.angle_deg == 0.0:
            return dx, dy
        c, s = np.cos(np.radians(self.angle_deg)), np.sin(np.radians(self.angle_deg))
        return c * dx + s * dy, -s * dx + c * dy

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        u, v = self._local(x, y)
        return (u / self.semi_x) ** 2 + (v / self.semi_y) ** 2 <= 1.0

    def signed_distance(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        u, v = self._local(x, y)
        return ellipse_signed_distance(u, v, self.semi_x, self.semi_y)

    def bbox(self) -> tuple[float, float, float, float]:
        """``(x_min, x_max, y_min, y_max)`` in mm."""
        c, s = np.cos(np.radians(self.angle_deg)), np.sin(np.radians(self.angle_deg))
        hx = np.hypot(self.semi_x * c, self.semi_y * s)
        hy = np.hypot(self.semi_x * s, self.semi_y * c)
        return (self.center[0] - hx, self.center[0] + hx, self.center[1] - hy, self.center[1] + hy)

    def grown(self, margin_mm: float) -> "Ellipse2D":
        """The ellipse with both semi-axes changed by ``margin_mm``."""
        return Ellipse2D(self.center, self.semi_x + margin_mm, self.semi_y + margin_mm, self.angle_deg)

    def boundary_points(self, n: int = 720) -> np.ndarray:
        """``(n, 2)`` points on the outline."""
        t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
        u, v = self.semi_x * np.cos(t), self.semi_y * np.sin(t)
        c, s = np.cos(np.radians(self.angle_deg)), np.sin(np.radians(self.angle_deg))
        return np.stack([self.center[0] + c * u - s * v, self.center[1] + s * u + c * v], axis=1)


@dataclass(frozen=True)
class Rect2D:
    """An axis-aligned rectangle ``[x0, x1] x [y0, y1]`` in mm (table rails)."""

    x0: float
    x1: float
    y0: float
    y1: float

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x, y = np.asarray(x), np.asarray(y)
        return (x >= self.x0) & (x <= self.x1) & (y >= self.y0) & (y <= self.y1)

    def signed_distance(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        qx = np.abs(np.asarray(x, float) - 0.5 * (self.x0 + self.x1)) - 0.5 * (self.x1 - self.x0)
        qy = np.abs(np.asarray(y, float) - 0.5 * (self.y0 + self.y1)) - 0.5 * (self.y1 - self.y0)
        outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
        return outside + np.minimum(np.maximum(qx, qy), 0)

    def bbox(self) -> tuple[float, float, float, float]:
        return (self.x0, self.x1, self.y0, self.y1)


@dataclass(frozen=True)
class CurvedPlate2D:
    """A cradle-shaped table top: the lower arc band of a circle, limited in x.

    Points with ``radius <= |p - centre| <= radius + thickness``, ``y >= centre_y``
    and ``|x - centre_x| <= half_width``. The top surface is lowest (highest y)
    at ``x = centre_x`` and rises towards the edges.
    """

    center: tuple[float, float]
    radius: float
    thickness: float
    half_width: float

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        dx = np.asarray(x, float) - self.center[0]
        dy = np.asarray(y, float) - self.center[1]
        r = np.hypot(dx, dy)
        return (r >= self.radius) & (r <= self.radius + self.thickness) & (dy >= 0) & (
            np.abs(dx) <= self.half_width
        )

    def signed_distance(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        # Only used to keep objects away from the table; an annulus distance is enough.
        r = np.hypot(np.asarray(x, float) - self.center[0], np.asarray(y, float) - self.center[1])
        return np.abs(r - (self.radius + 0.5 * self.thickness)) - 0.5 * self.thickness

    def top_y(self, x: np.ndarray) -> np.ndarray:
        """y (mm) of the top surface at ``x``."""
        dx = np.asarray(x, float) - self.center[0]
        return self.center[1] + np.sqrt(np.maximum(self.radius**2 - dx**2, 0.0))

    def bbox(self) -> tuple[float, float, float, float]:
        r = self.radius + self.thickness
        w = self.half_width
        y_edge = self.center[1] + np.sqrt(max(self.radius**2 - w**2, 0.0))
        return (self.center[0] - w, self.center[0] + w, y_edge, self.center[1] + r)


Shape2D = Ellipse2D | Rect2D | CurvedPlate2D


@dataclass(frozen=True)
class Prism:
    """A 2-D cross-section extruded along z over a union of disjoint z-intervals (mm).

    ``z_intervals=None`` means all z.
    """

    shape: Shape2D
    z_intervals: tuple[tuple[float, float], ...] | None = None

    def active_weight(self, z0: float, z1: float) -> float:
        """Fraction of the slab ``[z0, z1]`` covered by the prism's z-intervals."""
        if self.z_intervals is None:
            return 1.0
        cover = sum(max(0.0, min(z1, b) - max(z0, a)) for a, b in self.z_intervals)
        return cover / (z1 - z0)

    def contains(self, p: np.ndarray) -> np.ndarray:
        """Inside test for ``(n, 3)`` LPS points."""
        inside = self.shape.contains(p[:, 0], p[:, 1])
        if self.z_intervals is not None:
            inside &= interval_signed_distance(p[:, 2], self.z_intervals) <= 0
        return inside

    def signed_distance(self, p: np.ndarray) -> np.ndarray:
        """Exact 3-D signed distance (mm, negative inside) for ``(n, 3)`` LPS points."""
        d2 = self.shape.signed_distance(p[:, 0], p[:, 1])
        if self.z_intervals is None:
            return d2
        dz = interval_signed_distance(p[:, 2], self.z_intervals)
        outside = np.hypot(np.maximum(d2, 0), np.maximum(dz, 0))
        return outside + np.minimum(np.maximum(d2, dz), 0)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3 x 3 rotation matrix."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _fibonacci_sphere(n: int) -> np.ndarray:
    k = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * k / n)
    theta = np.pi * (1 + 5**0.5) * k
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1)


@dataclass(frozen=True)
class Blob:
    """A union of ellipsoids in LPS mm (a deposit or a small object).

    ``centers`` is ``(n, 3)``, ``radii`` ``(n, 3)`` and ``rotations`` ``(n, 3, 3)``;
    column ``k`` of a rotation is the LPS direction of that ellipsoid's axis ``k``.
    """

    centers: np.ndarray
    radii: np.ndarray
    rotations: np.ndarray
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def contains(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Inside test on broadcastable coordinate arrays (e.g. a grid from ``np.ix_``)."""
        inside = None
        for c, r, rot in zip(self.centers, self.radii, self.rotations):
            dx, dy, dz = x - c[0], y - c[1], z - c[2]
            q = None
            for k in range(3):
                u = (rot[0, k] * dx + rot[1, k] * dy + rot[2, k] * dz) / r[k]
                q = u * u if q is None else q + u * u
            hit = q <= 1.0
            inside = hit if inside is None else inside | hit
        return inside

    def contains_points(self, p: np.ndarray) -> np.ndarray:
        return self.contains(p[:, 0], p[:, 1], p[:, 2])

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lo, hi)`` LPS corners (mm) of the axis-aligned bounding box."""
        half = np.sqrt(np.einsum("nik,nk->ni", self.rotations**2, self.radii**2))
        return (self.centers - half).min(axis=0), (self.centers + half).max(axis=0)

    def surface_points(self, n_per_lobe: int = 600) -> np.ndarray:
        """``(m, 3)`` points on the outer surface of the union (not inside another lobe)."""
        key = ("surface", n_per_lobe)
        if key not in self._cache:
            unit = _fibonacci_sphere(n_per_lobe)
            pts = []
            for i, (c, r, rot) in enumerate(zip(self.centers, self.radii, self.rotations)):
                p = c + (unit * r) @ rot.T
                keep = np.ones(len(p), bool)
                for j in range(len(self.centers)):
                    if j != i:
                        other = Blob(self.centers[j : j + 1], self.radii[j : j + 1], self.rotations[j : j + 1])
                        # strictly inside another lobe -> not on the union's surface
                        keep &= ~_strictly_inside(other, p)
                pts.append(p[keep])
            self._cache[key] = np.concatenate(pts, axis=0)
        return self._cache[key]

    def moments(self, n_steps: int = 72) -> tuple[float, np.ndarray]:
        """``(volume_mm3, centroid_lps)`` of the continuous shape, by a fine midpoint grid."""
        key = ("moments", n_steps)
        if key not in self._cache:
            lo, hi = self.bbox()
            h = float((hi - lo).max()) / n_steps
            axes = [lo[k] + h * (np.arange(int(np.ceil((hi[k] - lo[k]) / h))) + 0.5) for k in range(3)]
            xs, ys, zs = np.ix_(axes[0], axes[1], axes[2])
            inside = self.contains(xs, ys, zs)
            count = inside.sum()
            vol = float(count) * h**3
            cx = (inside.sum(axis=(1, 2)) * axes[0]).sum() / count
            cy = (inside.sum(axis=(0, 2)) * axes[1]).sum() / count
            cz = (inside.sum(axis=(0, 1)) * axes[2]).sum() / count
            self._cache[key] = (vol, np.array([cx, cy, cz]))
        return self._cache[key]

    def transformed(self, scale: float, shift: np.ndarray) -> "Blob":
        """The blob scaled about the origin by ``scale`` then moved by ``shift`` (mm)."""
        return Blob(self.centers * scale + np.asarray(shift), self.radii * scale, self.rotations)

    def rotated(self, rot: np.ndarray) -> "Blob":
        """The blob rotated about the origin by ``rot``."""
        return Blob(self.centers @ rot.T, self.radii, np.einsum("ij,njk->nik", rot, self.rotations))


def _strictly_inside(blob: Blob, p: np.ndarray) -> np.ndarray:
    c, r, rot = blob.centers[0], blob.radii[0], blob.rotations[0]
    u = ((p - c) @ rot) / r
    return (u * u).sum(axis=1) < 1.0 - 1e-9


def lumpy_blob(rng: np.random.Generator, n_lobes: int | None = None) -> Blob:
    """An irregular union of 2-4 overlapping ellipsoids, centred on its own centroid.

    The size is arbitrary (main lobe radius ~1); scale it with :func:`blob_with_diameter`.
    """
    n = int(rng.integers(2, 5)) if n_lobes is None else int(n_lobes)
    centers = [np.zeros(3)]
    radii = [np.array([1.0, rng.uniform(0.6, 1.0), rng.uniform(0.5, 0.9)])]
    rots = [random_rotation(rng)]
    for _ in range(n - 1):
        d = rng.standard_normal(3)
        d /= np.linalg.norm(d)
        # a bud centred inside the main lobe, so the union stays one connected piece
        centers.append(d * rng.uniform(0.45, 0.8))
        radii.append(rng.uniform(0.35, 0.7, size=3))
        rots.append(random_rotation(rng))
    return Blob(np.array(centers), np.array(radii), np.array(rots))


def ellipsoid_blob(radii_mm: tuple[float, float, float]) -> Blob:
    """One axis-aligned ellipsoid centred at the origin."""
    return Blob(np.zeros((1, 3)), np.asarray([radii_mm], float), np.eye(3)[None])


def blob_with_diameter(shape: Blob, diameter_mm: float, center_lps: np.ndarray) -> Blob:
    """``shape`` scaled to equivalent-sphere ``diameter_mm`` with its centroid at ``center_lps``."""
    vol, centroid = shape.moments()
    target = np.pi / 6.0 * diameter_mm**3
    k = (target / vol) ** (1.0 / 3.0)
    return shape.transformed(k, np.asarray(center_lps, float) - k * centroid)
