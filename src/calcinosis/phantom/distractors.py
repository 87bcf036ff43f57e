"""Distractors: dense things in or on a phantom that are NOT soft-tissue calcinosis.

``vessels``   calcified artery walls (femoral artery, aorta or brachial artery):
              a soft-tissue tube with partial rings of 400-800 HU wall plaque;
``bowel``     oral-contrast bowel content (300-600 HU blobs inside the abdomen, in front
              of the vertebral bodies' mid-plane: bowel lies in front of the psoas, the
              quadratus lumborum and the kidneys, never beside or behind the spine's back);
``cartilage`` calcified costal cartilage at the anterior rib ends;
``necklace``  metal beads (3000 HU) on the skin of the upper chest;
``ecg_leads`` metal snap electrodes (3000 HU) on the chest skin with a wire.

:func:`add_distractor_anatomy` adds the tissue the calcified parts sit in
(vessel, cartilage) before deposits are placed, so deposits keep clear of it;
:func:`make_distractors` then returns the dense parts as blobs with truth.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from calcinosis.errors import InputError
from calcinosis.phantom.anatomy_parts import Anatomy, Structure, Tissue
from calcinosis.phantom.placement import Placed, _frame, blob_extent, surface_rotation
from calcinosis.phantom.shapes import Blob, Ellipse2D, Prism, blob_with_diameter, lumpy_blob

DISTRACTOR_KINDS = ("vessels", "bowel", "cartilage", "necklace", "ecg_leads")
_TRUNK_ONLY = ("bowel", "cartilage", "necklace", "ecg_leads")
VESSEL_HU = 40.0
CARTILAGE_HU = 110.0


def check_kinds(kinds: tuple[str, ...], body_part: str) -> None:
    for k in kinds:
        if k not in DISTRACTOR_KINDS:
            raise InputError(f"unknown distractor {k!r}; choose from {', '.join(DISTRACTOR_KINDS)}")
        if k in _TRUNK_ONLY and body_part != "trunk":
            raise InputError(f"distractor {k!r} needs body part 'trunk', not {body_part!r}")


def add_distractor_anatomy(anatomy: Anatomy, kinds: tuple[str, ...]) -> Anatomy:
    """The anatomy with a vessel tube and costal cartilages added where asked."""
    extra: list[Structure] = []
    marks = dict(anatomy.landmarks)
    if "vessels" in kinds:
        for name, e in _vessels(anatomy):
            extra.append(Structure(name, Prism(e), Tissue.VESSEL, VESSEL_HU))
        marks["vessels"] = tuple(e for _, e in _vessels(anatomy))
    if "cartilage" in kinds:
        wall = anatomy.landmarks["wall"]
        mid_b = wall.semi_y - 6.0
        carts = []
        for t_deg in (250.0, 290.0):
            t = np.radians(t_deg)
            c = (wall.center[0] + (wall.semi_x - 6.0) * np.cos(t), wall.center[1] + mid_b * np.sin(t))
            ang = np.degrees(np.arctan2(mid_b * np.cos(t), -(wall.semi_x - 6.0) * np.sin(t)))
            carts.append(Ellipse2D(c, 9.0, 3.5, float(ang)))
        extra += [Structure(f"costal_cartilage_{i}", Prism(e), Tissue.CARTILAGE, CARTILAGE_HU)
                  for i, e in enumerate(carts)]
        marks["cartilages"] = tuple(carts)
    if not extra:
        return anatomy
    # painted over the soft tissues, under nothing else (they touch no bone)
    n_soft = max(i for i, s in enumerate(anatomy.structures) if s.tissue not in (Tissue.TABLE, Tissue.TABLE_RAIL)) + 1
    structures = anatomy.structures[:n_soft] + tuple(extra) + anatomy.structures[n_soft:]
    return replace(anatomy, structures=structures, landmarks=marks)


def _vessels(anatomy: Anatomy) -> list[tuple[str, Ellipse2D]]:
    if anatomy.body_part == "thighs":
        out = []
        for side, femur in anatomy.landmarks["femurs"].items():
            medial = 1.0 if femur.center[0] < 0 else -1.0
            c = (femur.center[0] + medial * (femur.semi_x + 9.0), femur.center[1] - femur.semi_y - 4.0)
            out.append((f"{side}_femoral_artery", Ellipse2D(c, 4.0, 4.0)))
        return out
    if anatomy.body_part == "trunk":
        y_v = anatomy.landmarks["vertebra_y"]
        return [("aorta", Ellipse2D((18.0, y_v - 30.0), 11.0, 11.0))]
    muscle = next(s.prism.shape for s in anatomy.structures if s.name == "arm_muscle")
    return [("brachial_artery", Ellipse2D((muscle.center[0], muscle.center[1] - 20.0), 3.0, 3.0))]


def make_distractors(anatomy: Anatomy, kinds: tuple[str, ...], rng: np.random.Generator,
                     z_limits: tuple[float, float], placed: list[Placed]) -> list[dict]:
    """Dense distractor parts: ``{"kind", "blob", "hu", "background_hu", "note"}`` each."""
    z0, z1 = z_limits
    out: list[dict] = []
    if "vessels" in kinds:
        for e in anatomy.landmarks["vessels"]:
            out += _plaques(e, rng, z_limits)
    if "bowel" in kinds:
        out += _bowel(anatomy, rng, z_limits, placed)
    if "cartilage" in kinds:
        for e in anatomy.landmarks["cartilages"]:
            for _ in range(2):
                z = rng.uniform(z0 + 4, z1 - 4)
                b = blob_with_diameter(lumpy_blob(rng), rng.uniform(2.5, 4.0), np.array([*e.center, z]))
                out.append({"kind": "costal_cartilage_calcification", "blob": b,
                            "hu": float(rng.uniform(400, 800)), "background_hu": CARTILAGE_HU,
                            "note": "calcified costal cartilage at an anterior rib end"})
    outline = anatomy.outlines[0]
    if "necklace" in kinds:
        for i, t_deg in enumerate(np.linspace(248, 292, 11)):
            p, n = _frame(outline, np.radians(t_deg))
            z = z1 - 3.0 - 0.6 * (22.0 - abs(t_deg - 270))  # a V hanging down the upper chest
            if z < z0 + 3.0:
                continue
            c = p + n * 2.3 + np.array([0, 0, z])
            out.append({"kind": "necklace_bead", "blob": Blob(c[None], np.full((1, 3), 2.0), np.eye(3)[None]),
                        "hu": 3000.0, "background_hu": -1000.0, "note": f"necklace bead {i + 1}"})
    if "ecg_leads" in kinds:
        for i, t_deg in enumerate((205.0, 335.0, 228.0)):
            p, n = _frame(outline, np.radians(t_deg + rng.uniform(-4, 4)))
            rot = surface_rotation(n)
            z = float(np.clip(rng.uniform(z0 + 8, z1 - 8), z0 + 6, z1 - 6)) if z1 - z0 > 16 else 0.5 * (z0 + z1)
            button = p + n * 1.8 + np.array([0, 0, z])
            out.append({"kind": "ecg_electrode", "blob": Blob(button[None], np.array([[4.0, 4.0, 1.5]]), rot[None]),
                        "hu": 3000.0, "background_hu": -1000.0, "note": f"ECG snap electrode {i + 1}"})
            half = min(15.0, 0.5 * (z1 - z0) - 2.0)
            wire = p + n * 4.3 + np.array([0, 0, 0.5 * (z0 + z1)])
            out.append({"kind": "ecg_wire", "blob": Blob(wire[None], np.array([[0.7, half, 0.7]]), rot[None]),
                        "hu": 2000.0, "background_hu": -1000.0, "note": f"ECG lead wire {i + 1}"})
    return out


def _plaques(vessel: Ellipse2D, rng: np.random.Generator, z_limits: tuple[float, float]) -> list[dict]:
    """Partial-ring wall calcification inside the vessel outline (background = vessel)."""
    r = vessel.semi_x
    out = []
    n = 2 if z_limits[1] - z_limits[0] > 20 else 1
    zs = np.linspace(z_limits[0] + 8, z_limits[1] - 8, n) if n > 1 else [0.5 * sum(z_limits)]
    for z in zs:
        start, extent = rng.uniform(0, 2 * np.pi), np.radians(rng.uniform(90, 200))
        half_len = rng.uniform(2.0, 5.0)
        thick = min(0.6, 0.1 * r + 0.3)
        angles = start + np.arange(0.0, extent, 0.35)
        centers, radii, rots = [], [], []
        for a in angles:
            radial = np.array([np.cos(a), np.sin(a), 0.0])
            centers.append(np.array([*vessel.center, z]) + radial * (r - thick - 0.15))
            rots.append(surface_rotation(radial))
            radii.append([0.25 * r + 0.3, half_len, thick])
        out.append({"kind": "vessel_wall_calcification",
                    "blob": Blob(np.array(centers), np.array(radii), np.array(rots)),
                    "hu": float(rng.uniform(400, 800)), "background_hu": VESSEL_HU,
                    "note": f"partial ring of wall plaque, {np.degrees(extent):.0f} degrees"})
    return out


def _bowel(anatomy: Anatomy, rng: np.random.Generator, z_limits: tuple[float, float],
           placed: list[Placed]) -> list[dict]:
    cavity: Ellipse2D = anatomy.landmarks["cavity"]
    # The phantom's viscera fill the whole cavity ellipse, which reaches back beside the spine
    # to the level of the laminae; real bowel (peritoneal) stays in front of the kidneys and
    # the psoas, which lie beside the vertebral bodies: no bowel behind their mid-plane.
    back_limit_y = anatomy.landmarks["vertebra_y"]
    out: list[dict] = []
    taken = [blob_extent(p.blob)[1:] for p in placed]
    for _ in range(60):
        if len(out) == 4:
            break
        d = rng.uniform(8.0, 18.0)
        t, f = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform(0, 0.7))
        c = np.array([cavity.center[0] + f * cavity.semi_x * np.cos(t),
                      cavity.center[1] + f * cavity.semi_y * np.sin(t),
                      rng.uniform(z_limits[0] + d, z_limits[1] - d) if z_limits[1] - z_limits[0] > 2 * d + 2
                      else 0.5 * sum(z_limits)])
        b = blob_with_diameter(lumpy_blob(rng), d, c)
        _, cen, rmax = blob_extent(b)
        pts = np.concatenate([b.surface_points(200), cen[None]])
        if not all(t is Tissue.VISCERA for t in anatomy.tissue_at(pts)):
            continue
        if pts[:, 1].max() > back_limit_y:
            continue
        if np.abs(anatomy.bone_signed_distance(pts)).min() < 2.0:
            continue
        lo, hi = b.bbox()
        if lo[2] < z_limits[0] or hi[2] > z_limits[1]:
            continue
        if any(np.linalg.norm(cen - c2) < rmax + r2 + 3.0 for c2, r2 in taken):
            continue
        taken.append((cen, rmax))
        out.append({"kind": "bowel_contrast", "blob": b, "hu": float(rng.uniform(300, 600)),
                    "background_hu": 40.0, "note": "dense oral contrast in bowel"})
    return out
