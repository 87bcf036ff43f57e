"""Analytic anatomy of the CT phantoms: thighs, trunk, elbow and fingers, plus the CT table.

A body part is an ordered list of :class:`Structure` (a tissue prism with a HU
value) painted over air; later structures cover earlier ones. Structures
without z-intervals form the z-invariant base; z-gated ones (vertebral bodies,
discs, ribs, the bones of the elbow) are painted on top where active. Labels,
distances and regions are answered exactly from this description.

Geometry conventions: LPS mm, x to the patient's left, y to posterior (the
table is at high y), z to superior. The body's midline is ``x = 0`` for the
thighs and trunk; the elbow FOV does not contain the midline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from calcinosis.phantom.shapes import CurvedPlate2D, Ellipse2D, Prism, Rect2D

AIR_HU = -1000.0
SKIN_MM = 2.5  # skin layer thickness; the cutaneous compartment is the outer 3 mm
FAR_MM = 1.0e4  # an "open" end of a z-interval


class Tissue(str, Enum):
    AIR = "air"
    SKIN = "skin"
    FAT = "fat"
    FASCIA = "fascia"
    MUSCLE = "muscle"
    VISCERA = "viscera"
    CANAL = "spinal_canal"
    DISC = "disc"
    VESSEL = "vessel"
    CARTILAGE = "cartilage"
    CORTICAL_BONE = "cortical_bone"
    MARROW = "marrow"
    TABLE = "table"
    TABLE_RAIL = "table_rail"


BONE_TISSUES = frozenset({Tissue.CORTICAL_BONE, Tissue.MARROW})
SOFT_TISSUES = frozenset({Tissue.SKIN, Tissue.FAT, Tissue.MUSCLE, Tissue.VISCERA})


@dataclass(frozen=True)
class Structure:
    """One tissue piece: a prism filled with ``hu``."""

    name: str
    prism: Prism
    tissue: Tissue
    hu: float

    @property
    def is_bone(self) -> bool:
        return self.tissue in BONE_TISSUES


@dataclass(frozen=True)
class Anatomy:
    """A body part in a field of view.

    ``fov_mm`` is ``(x_min, x_max, y_min, y_max)`` of the wanted axial field of
    view. ``outlines`` are the skin surfaces (one per separate body piece).
    ``landmarks`` hold named positions used for regions and placement.
    """

    body_part: str
    structures: tuple[Structure, ...]
    outlines: tuple[Ellipse2D, ...]
    fov_mm: tuple[float, float, float, float]
    midline_x_mm: float | None
    limb_side: str | None = None
    landmarks: dict = field(default_factory=dict)

    def tissue_at(self, p: np.ndarray) -> np.ndarray:
        """Tissue label (object array of :class:`Tissue`) at ``(n, 3)`` LPS points."""
        out = np.empty(len(p), dtype=object)
        out.fill(Tissue.AIR)  # np.full would store the plain string "air", not the member
        for s in self.structures:
            out[s.prism.contains(p)] = s.tissue
        return out

    def hu_at(self, p: np.ndarray) -> np.ndarray:
        """Noiseless, unblurred HU at ``(n, 3)`` LPS points."""
        out = np.full(len(p), AIR_HU)
        for s in self.structures:
            out[s.prism.contains(p)] = s.hu
        return out

    def body_signed_distance(self, p: np.ndarray) -> np.ndarray:
        """Signed distance (mm, negative inside) to the skin surface."""
        return np.min([o.signed_distance(p[:, 0], p[:, 1]) for o in self.outlines], axis=0)

    def bone_signed_distance(self, p: np.ndarray) -> np.ndarray:
        """Signed distance (mm, negative inside) to the nearest bone."""
        d = [s.prism.signed_distance(p) for s in self.structures if s.tissue == Tissue.CORTICAL_BONE]
        return np.min(d, axis=0) if d else np.full(len(p), np.inf)

    def bone_gap_mm(self, p: np.ndarray) -> float:
        """Smallest signed distance (mm) from the points ``(n, 3)`` to bone (negative: inside bone).

        Same as ``bone_signed_distance(p).min()`` but skips bones whose bounding
        box is farther than the best distance found so far.
        """
        lo, hi = p[:, :2].min(axis=0), p[:, :2].max(axis=0)
        cands = []
        for s in self.structures:
            if s.tissue != Tissue.CORTICAL_BONE:
                continue
            x0, x1, y0, y1 = s.prism.shape.bbox()
            gx = max(x0 - hi[0], lo[0] - x1, 0.0)
            gy = max(y0 - hi[1], lo[1] - y1, 0.0)
            cands.append((float(np.hypot(gx, gy)), s))
        best = np.inf
        for bound, s in sorted(cands, key=lambda c: c[0]):
            if bound > best:
                break
            best = min(best, float(s.prism.signed_distance(p).min()))
        return best

    def side_of(self, x_mm: float) -> str:
        """``left``/``right``/``midline`` (within 10 mm of the midline) of an LPS x."""
        if self.midline_x_mm is None:
            return str(self.limb_side)
        dx = x_mm - self.midline_x_mm
        if abs(dx) <= 10.0:
            return "midline"
        return "left" if dx > 0 else "right"

    def region_of(self, p: np.ndarray) -> str:
        """Body region name of one LPS point."""
        if self.body_part == "thighs":
            return "thigh"
        if self.body_part == "elbow":
            return "elbow"
        if self.body_part == "fingers":
            return "wrist_hand"
        if p[1] > self.landmarks["back_y"]:
            return "back"
        return "chest" if p[2] >= self.landmarks["diaphragm_z"] else "abdomen"


def _bone(name: str, shape: Ellipse2D, cortex_mm: float, cortex_hu: float, marrow_hu: float,
          z: tuple | None = None) -> list[Structure]:
    inner = Ellipse2D(shape.center, shape.semi_x - cortex_mm, shape.semi_y - cortex_mm, shape.angle_deg)
    return [
        Structure(f"{name}_cortex", Prism(shape, z), Tissue.CORTICAL_BONE, cortex_hu),
        Structure(f"{name}_marrow", Prism(inner, z), Tissue.MARROW, marrow_hu),
    ]


def _layers(prefix: str, body: Ellipse2D, muscle: Ellipse2D, rng: np.random.Generator) -> list[Structure]:
    """Skin, subcutaneous fat, fascia and muscle of one body piece."""
    skin_inner = body.grown(-SKIN_MM)
    return [
        Structure(f"{prefix}_skin", Prism(body), Tissue.SKIN, 40.0),
        Structure(f"{prefix}_fat", Prism(skin_inner), Tissue.FAT, float(rng.uniform(-105, -95))),
        Structure(f"{prefix}_fascia", Prism(muscle.grown(1.0)), Tissue.FASCIA, 70.0),
        Structure(f"{prefix}_muscle", Prism(muscle), Tissue.MUSCLE, float(rng.uniform(45, 55))),
    ]


def _muscle_inside(body: Ellipse2D, lateral_sign: float, fat_lat: float, fat_med: float,
                   fat_ant: float, fat_post: float) -> Ellipse2D:
    """The muscle ellipse leaving the given fat thicknesses (mm) at the four poles."""
    cx, cy = body.center
    x_lat = cx + lateral_sign * (body.semi_x - fat_lat)
    x_med = cx - lateral_sign * (body.semi_x - fat_med)
    y_ant = cy - body.semi_y + fat_ant
    y_post = cy + body.semi_y - fat_post
    return Ellipse2D((0.5 * (x_lat + x_med), 0.5 * (y_ant + y_post)),
                     0.5 * abs(x_lat - x_med), 0.5 * (y_post - y_ant))


def thighs(rng: np.random.Generator) -> Anatomy:
    """Both thighs side by side (mid-thigh level), right thigh at low x."""
    structures: list[Structure] = []
    outlines = []
    cy = -25.0
    gap = rng.uniform(10, 20)
    femurs = {}
    for side, sign in (("right", -1.0), ("left", 1.0)):
        a, b = rng.uniform(72, 78), rng.uniform(62, 68)
        body = Ellipse2D((sign * (a + gap / 2), cy), a, b)
        muscle = _muscle_inside(body, sign, rng.uniform(16, 22), rng.uniform(11, 15),
                                rng.uniform(18, 25), rng.uniform(10, 13))
        structures += _layers(f"{side}_thigh", body, muscle, rng)
        r = rng.uniform(13, 15)
        fc = (muscle.center[0] - sign * rng.uniform(3, 7), muscle.center[1] + rng.uniform(3, 7))
        femur = Ellipse2D(fc, r, r - rng.uniform(0, 1.0))
        structures += _bone(f"{side}_femur", femur, rng.uniform(4, 6), rng.uniform(1200, 1500),
                            rng.uniform(80, 200))
        outlines.append(body)
        femurs[side] = femur
    half_w = max(o.center[0] + o.semi_x for o in outlines) + 30.0
    return Anatomy("thighs", tuple(structures), tuple(outlines), (-half_w, half_w, -130.0, 130.0), 0.0,
                   landmarks={"femurs": femurs})


def trunk(rng: np.random.Generator) -> Anatomy:
    """The trunk at the thoraco-abdominal junction (diaphragm level at z = 0)."""
    cy = -25.0
    body = Ellipse2D((0.0, cy), rng.uniform(155, 165), rng.uniform(110, 118))
    fat_l = rng.uniform(20, 30)
    wall = _muscle_inside(body, 1.0, fat_l, fat_l + rng.uniform(-2, 2), rng.uniform(18, 30),
                          rng.uniform(12, 18))
    s = list(_layers("trunk", body, wall, rng))
    w = rng.uniform(10, 14)
    s.append(Structure("cavity", Prism(wall.grown(-w)), Tissue.VISCERA, 40.0))
    back_skin_y = cy + body.semi_y
    y_v = back_skin_y - rng.uniform(92, 98)  # vertebral body centre
    back_y = wall.center[1] + wall.semi_y
    s.append(Structure("deep_back_muscles", Prism(Ellipse2D((0.0, y_v + 46), 60, min(28, back_y - y_v - 47))),
                       Tissue.MUSCLE, 50.0))
    for sign in (-1, 1):
        s.append(Structure(f"psoas_{sign}", Prism(Ellipse2D((sign * 36.0, y_v), 13, 17)), Tissue.MUSCLE, 50.0))
    s.append(Structure("spinal_canal", Prism(Ellipse2D((0.0, y_v + 25), 9, 7)), Tissue.CANAL, 20.0))
    cortex_hu, marrow_hu = rng.uniform(900, 1200), rng.uniform(180, 280)
    # Segmented lumbar column: 28 mm vertebral bodies, 8 mm discs.
    period, disc = 36.0, 8.0
    phase = rng.uniform(0, period)
    ks = range(-40, 41)
    bodies = tuple((k * period + phase + disc / 2, (k + 1) * period + phase - disc / 2) for k in ks)
    discs = tuple(((k + 1) * period + phase - disc / 2, (k + 1) * period + phase + disc / 2) for k in ks)
    vb = Ellipse2D((0.0, y_v), 22, 16)
    s += _bone("vertebral_body", vb, 2.0, cortex_hu, marrow_hu, bodies)
    s.append(Structure("disc", Prism(vb, discs), Tissue.DISC, 85.0))
    post = []
    for sign in (-1, 1):
        post.append(Ellipse2D((sign * 13.0, y_v + 22), 4.5, 7, 0.0))  # pedicle
        ang = float(np.degrees(np.arctan2(16.0, -sign * 12.0)))
        post.append(Ellipse2D((sign * 6.5, y_v + 37), 10.5, 3.2, ang))  # lamina
        post.append(Ellipse2D((sign * 21.0, y_v + 26), 5, 4.5))  # superior articular process
        post.append(Ellipse2D((sign * 22.5, y_v + 36.5), 5, 4.5))  # inferior articular process
    post.append(Ellipse2D((0.0, y_v + 56), 4, 13))  # spinous process
    for i, e in enumerate(post):
        s.append(Structure(f"posterior_element_{i}", Prism(e), Tissue.CORTICAL_BONE, cortex_hu))
    # Ribs: oval sections inside the muscle wall, each crossing the slice over its own z-bands.
    mid = wall.grown(-w / 2)
    rib_hu = rng.uniform(800, 1100)
    for i, t_deg in enumerate((15, 40, 140, 165, 195, 220, 320, 345)):
        t = np.radians(t_deg)
        c = (mid.center[0] + mid.semi_x * np.cos(t), mid.center[1] + mid.semi_y * np.sin(t))
        tangent = np.degrees(np.arctan2(mid.semi_y * np.cos(t), -mid.semi_x * np.sin(t)))
        rib_phase = rng.uniform(0, 30)
        z_bands = tuple((k * 30.0 + rib_phase, k * 30.0 + rib_phase + 14.0) for k in range(-25, 25))
        rib = Ellipse2D(c, 6.0, min(4.0, w / 2 - 1.5), float(tangent))
        s += _bone(f"rib_{i}", rib, 1.5, rib_hu, 200.0, z_bands)
    # Lungs above the diaphragm (z >= 0), in front of the spine: what tells chest from
    # abdomen on a real scan. Fixed sizes (no random draws, so deposits stay put).
    cav = wall.grown(-w)
    for sign in (-1, 1):
        lung = Ellipse2D((sign * cav.semi_x * 0.5, cav.center[1] - cav.semi_y * 0.2),
                         cav.semi_x * 0.38, cav.semi_y * 0.6)
        s.append(Structure(f"lung_{sign}", Prism(lung, ((0.0, FAR_MM),)), Tissue.AIR, -850.0))
    landmarks = {"back_y": y_v, "diaphragm_z": 0.0, "vertebra_y": y_v, "wall": wall,
                 "cavity": wall.grown(-w)}
    return Anatomy("trunk", tuple(s), (body,), (-200.0, 200.0, -160.0, 160.0), 0.0, landmarks=landmarks)


def elbow(rng: np.random.Generator, limb_side: str = "left") -> Anatomy:
    """One elbow with the arm along z; humerus above ``z = +1.5``, radius and ulna below ``-1.5``."""
    sign = 1.0 if limb_side == "left" else -1.0  # lateral direction of this arm in x
    lx, ly = sign * 260.0, -10.0
    body = Ellipse2D((lx, ly), rng.uniform(43, 47), rng.uniform(38, 42))
    # thin fat except behind the olecranon (low y is anterior)
    muscle = _muscle_inside(body, sign, rng.uniform(6, 9), rng.uniform(6, 9), rng.uniform(5, 7),
                            rng.uniform(10, 13))
    s = list(_layers("arm", body, muscle, rng))
    cortex_hu, marrow_hu = rng.uniform(1000, 1300), rng.uniform(150, 300)
    hum_z = ((1.5, FAR_MM),)
    fa_z = ((-FAR_MM, -1.5),)
    mc = muscle.center
    humerus = [Ellipse2D((mc[0] + sign * 2, mc[1]), 24, 12),
               Ellipse2D((mc[0] - sign * 25, mc[1] - 1), 6, 5.5)]  # condyles + medial epicondyle
    forearm = [Ellipse2D((mc[0] + sign * 14, mc[1] - 3), 10, 10),  # radial head
               Ellipse2D((mc[0] - sign * 11, mc[1] + 8), 10, 14)]  # ulna (coronoid / olecranon)
    for group, z, names in ((humerus, hum_z, ("humerus", "medial_epicondyle")),
                            (forearm, fa_z, ("radius", "ulna"))):
        bones = [_bone(n, e, 2.0, cortex_hu, marrow_hu, z) for n, e in zip(names, group)]
        s += [b[0] for b in bones] + [b[1] for b in bones]  # all cortices, then all marrow
    half = 110.0
    fx = lx - sign * 30.0  # the limb sits 30 mm lateral of the FOV centre
    return Anatomy("elbow", tuple(s), (body,), (fx - half, fx + half, -100.0, 100.0), None,
                   limb_side=limb_side, landmarks={"joint_z": 0.0})


# The fingers phantom: index to little finger, their widths (semi-axis in x, mm) and the
# lengths of their middle phalanges (mm); the little finger is the smallest.
_FINGERS = (("index", 9.5, 23.0), ("middle", 9.8, 27.0), ("ring", 9.3, 25.0), ("little", 8.3, 19.0))


def fingers(rng: np.random.Generator, limb_side: str = "left") -> Anatomy:
    """The four fingers of one hand, lying palm down with the arm overhead, the fingers
    along z (towards the fingertips at high z): a CT of the fingers alone (the hand's
    palm is outside the scan), where no body piece is as thick as a limb.

    Each finger (18-20 mm wide, 17-18 mm thick: skin, the fat of the finger and its pulp)
    holds its phalanges: the proximal one below the proximal interphalangeal (PIP) joint
    near ``z = 0``, the middle one above it, the distal one beyond the distal (DIP) joint,
    each a cortical shell round marrow, nearer the back of the finger (low y: the pulp
    lies on the table side), with joint cartilage in the 1.5-2 mm gaps. The finger's soft
    tissue does not change along z (the renderer paints z-gated structures over a
    z-invariant base), so the scan's 60 mm show no fingertip.
    """
    sign = 1.0 if limb_side == "left" else -1.0
    lx = sign * float(rng.uniform(60, 80))  # the hand lies off the isocentre on its own side
    s: list[Structure] = []
    outlines = []
    joints = []
    bones: list[Structure] = []
    cortex_hu, marrow_hu = float(rng.uniform(1100, 1400)), float(rng.uniform(180, 300))
    for i, (name, half_width, middle_len) in enumerate(_FINGERS):
        scale = half_width / 9.8
        x = lx + sign * (i - 1.5) * 21.0
        body = Ellipse2D((x, 0.0), half_width, float(rng.uniform(8.5, 9.0)) * scale)
        s.append(Structure(f"{name}_skin", Prism(body), Tissue.SKIN, 40.0))
        s.append(Structure(f"{name}_fat", Prism(body.grown(-SKIN_MM)), Tissue.FAT, float(rng.uniform(-95, -85))))
        outlines.append(body)
        gap = float(rng.uniform(1.5, 2.0))
        pip = float(rng.uniform(-4.0, 4.0))
        dip = pip + gap + middle_len * float(rng.uniform(0.93, 1.07))
        by = -1.5 * scale  # the bone's centre, nearer the back of the finger
        spans = (("proximal", (-FAR_MM, pip - gap / 2), 4.5, 3.3), ("middle", (pip + gap / 2, dip - gap / 2), 4.0, 3.0),
                 ("distal", (dip + gap / 2, dip + gap / 2 + 18.0 * scale), 3.2, 2.5))
        for part, z, a, b in spans:
            shape = Ellipse2D((x, by), a * scale, b * scale)
            bones += _bone(f"{name}_{part}_phalanx", shape, 1.3 * scale, cortex_hu, marrow_hu, (z,))
        for joint, zj in (("pip", pip), ("dip", dip)):
            s.append(Structure(f"{name}_{joint}_cartilage", Prism(Ellipse2D((x, by), 4.0 * scale, 3.0 * scale),
                                                                   ((zj - gap / 2, zj + gap / 2),)),
                               Tissue.CARTILAGE, 100.0))
            joints.append(zj)
    s += [b for b in bones if b.tissue == Tissue.CORTICAL_BONE] + [b for b in bones if b.tissue == Tissue.MARROW]
    half = 60.0
    return Anatomy("fingers", tuple(s), tuple(outlines), (lx - 1.5 * half, lx + 1.5 * half, -half, half), None,
                   limb_side=limb_side, landmarks={"joints_z": tuple(joints)})


def add_table(anatomy: Anatomy, rng: np.random.Generator, gap_mm: float | None = None) -> tuple[Anatomy, dict]:
    """Add a curved carbon-fibre table top with dense rails under the body.

    The air gap between the lowest skin point and the table top is ``gap_mm``, by default
    drawn from 0.5-10 mm (drawn either way, so the rest of the phantom does not change).
    Returns the new anatomy and the table's truth record.
    """
    x0, x1, y0, y1 = anatomy.fov_mm
    cx = 0.5 * (x0 + x1)
    half_w = 0.5 * (x1 - x0) - 12.0
    radius, thick = 700.0, 10.0
    pts = np.concatenate([o.boundary_points(2000) for o in anatomy.outlines])
    gap = float(rng.uniform(0.5, 10.0))
    if gap_mm is not None:
        gap = float(gap_mm)
    # Lowest possible table: top surface touches the body at its closest approach, plus the gap.
    dy_top = np.sqrt(np.maximum(radius**2 - (pts[:, 0] - cx) ** 2, 0))
    centre_y = float(np.max(pts[:, 1] - dy_top)) + gap
    plate = CurvedPlate2D((cx, centre_y), radius, thick, half_w)
    edge_top = float(plate.top_y(np.array(cx + half_w)))
    structures = list(anatomy.structures)
    structures.append(Structure("table_top", Prism(plate), Tissue.TABLE, float(rng.uniform(150, 250))))
    rail_hu = float(rng.uniform(900, 1400))
    for k, xs in enumerate(((cx - half_w, cx - half_w + 8), (cx + half_w - 8, cx + half_w))):
        rail = Rect2D(xs[0], xs[1], edge_top + thick, edge_top + thick + 12)
        structures.append(Structure(f"table_rail_{k}", Prism(rail), Tissue.TABLE_RAIL, rail_hu))
    y_bottom = edge_top + thick + 12
    fov = (x0, x1, y0, max(y1, centre_y + radius + thick + 5, y_bottom + 5))
    new = Anatomy(anatomy.body_part, tuple(structures), anatomy.outlines, fov, anatomy.midline_x_mm,
                  anatomy.limb_side, anatomy.landmarks)
    truth = {"kind": "table", "air_gap_mm": gap, "top_y_mm": centre_y + radius, "hu": structures[-3].hu,
             "rail_hu": rail_hu}
    return new, truth
