"""Phantom radiographs with exact ground truth: hand, elbow and thigh.

Each limb is an analytic 3-D model made of primitives whose axis lies parallel
to the detector (capsules: cylinders with hemispherical ends; ellipsoids), so
the X-ray path length through each primitive is known in closed form at every
pixel: ``2 * sqrt(R**2 - d**2)`` for a capsule at in-plane distance ``d`` from
its axis segment, ``2 * c * sqrt(1 - u**2/a**2 - v**2/b**2)`` for an ellipsoid.
Nested materials are added as attenuation *differences* (a bone inside soft
tissue contributes ``chord * (mu_bone - mu_soft)``), which is exact when the
child lies wholly inside its parent in 3-D. Overlapping primitives of one
material (two limb segments meeting at the elbow, touching bone ends) are
joined, not added: all primitives are centred on the mid-plane, so the union of
their chords along a ray is the longest chord.

Image formation (Beer-Lambert, one effective energy of about 50 keV): primary
counts ``N0 * exp(-sum(mu * chord))``; scatter = a fraction of the removed
photons spread by a wide Gaussian; for thick parts (the thigh) an anti-scatter
grid, as in clinical practice for parts over about 10-12 cm, which passes 70 %
of the primary and 10 % of the scatter (a typical 10:1 grid), with the exposure
raised by its Bucky factor as automatic exposure control does; collimator with
a blurred edge; Poisson quantum noise; the detector reports ``-ln(counts / N0)`` scaled to 12 bits
(bright = dense, MONOCHROME2 sense), clipped at 4095 like a blanked border.
A lead letter "R" sits in the field outside the limb and a burned-in label in
a corner.

Ground truth: each deposit's centre (pixels and mm), projected footprint area
(mm², the ellipse ``pi*a*b``), diameter, hydroxyapatite fraction, whether its
footprint overlaps bone, and its anatomical area. Coordinates: ``x`` = column
direction, ``y`` = row direction, millimetres from the centre of pixel (0, 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
from scipy import ndimage

# Linear attenuation coefficients at ~50 keV, 1/mm.
MU_SOFT_TISSUE = 0.0227
MU_FAT = 0.0190
MU_CORTICAL_BONE = 0.080
MU_MARROW = 0.030
MU_HYDROXYAPATITE = 0.180
MU_LEAD = 8.0
DETECTOR_SCALE = 800.0  # stored value per unit of -ln(counts / N0)
DETECTOR_MAX = 4095


class LimbKind(str, Enum):
    HAND = "hand"
    ELBOW = "elbow"
    THIGH = "thigh"


@dataclass(frozen=True)
class PhantomDeposit:
    """Ground truth for one deposit (a hydroxyapatite ellipsoid in soft tissue)."""

    deposit_id: int
    row_px: float
    col_px: float
    x_mm: float
    y_mm: float
    diameter_mm: float  # largest footprint diameter
    footprint_area_mm2: float  # pi * a * b of the projected ellipse
    ha_fraction: float
    over_bone: bool
    area: str


@dataclass(frozen=True)
class RadiographPhantom:
    """A synthetic radiograph and its ground truth.

    ``image`` is uint16 ``[row, col]``, bright = dense; ``pixel_spacing_mm`` is
    ``(row_mm, col_mm)``; the masks have the image's shape.
    """

    kind: LimbKind
    image: np.ndarray
    pixel_spacing_mm: tuple[float, float]
    deposits: tuple[PhantomDeposit, ...]
    body_mask: np.ndarray
    bone_mask: np.ndarray
    marker_mask: np.ndarray
    label_mask: np.ndarray
    field_mask: np.ndarray
    body_part: str


@dataclass(frozen=True)
class _Capsule:
    p0: tuple[float, float]
    p1: tuple[float, float]
    radius: float
    delta_mu: float


@dataclass(frozen=True)
class _Ellipsoid:
    center: tuple[float, float]
    a: float
    b: float
    c: float
    angle_deg: float
    delta_mu: float


def _bone(p0, p1, radius):  # cortical tube with marrow: two nested capsules
    marrow = 0.6 * radius
    d = np.subtract(p1, p0)
    n = np.linalg.norm(d)
    shrink = (radius - marrow) / n * d if n > 0 else np.zeros(2)
    return [
        _Capsule(p0, p1, radius, MU_CORTICAL_BONE - MU_SOFT_TISSUE),
        _Capsule(tuple(np.add(p0, shrink)), tuple(np.subtract(p1, shrink)), marrow, MU_MARROW - MU_CORTICAL_BONE),
    ]


def _limb(p0, p1, radius, fat_mm):  # fat layer around muscle
    return [
        _Capsule(p0, p1, radius, MU_FAT),
        _Capsule(p0, p1, radius - fat_mm, MU_SOFT_TISSUE - MU_FAT),
    ]


def _hand():
    soft = [
        _Ellipsoid((100, 130), 42, 48, 14, 0, MU_SOFT_TISSUE),
        _Capsule((100, 178), (100, 290), 28, MU_SOFT_TISSUE),
        _Capsule((55, 150), (22, 100), 9, MU_SOFT_TISSUE),
    ]
    bones = []
    fingers = [(69, 74, -6), (91, 84, -2), (112, 80, 3), (132, 64, 8)]  # base x, length, angle
    for x0, length, ang in fingers:
        t = math.radians(ang)
        ux, uy = math.sin(t), -math.cos(t)
        base = (x0, 92.0)
        tip = (x0 + ux * length, 92 + uy * length)
        soft.append(_Capsule(base, tip, 8, MU_SOFT_TISSUE))
        s = 2.0
        for frac, r in ((0.42, 3.8), (0.28, 3.2), (0.20, 2.9)):
            seg = frac * length
            a = (x0 + ux * s, 92 + uy * s)
            b = (x0 + ux * (s + seg - 2), 92 + uy * (s + seg - 2))
            bones += _bone(a, b, r)
            s += seg + 1.5
        bones += _bone((x0 + 0.2 * (x0 - 100), 165), (x0 - ux * 3, 89), 4.4)  # metacarpal
    bones += _bone((60, 160), (42, 134), 4.6) + _bone((38, 128), (29, 112), 3.8) + _bone((27, 108), (21, 98), 3.0)
    for cx, cy in ((84, 176), (100, 174), (116, 176), (90, 188), (108, 188)):
        bones.append(_Ellipsoid((cx, cy), 7, 6, 7, 0, MU_CORTICAL_BONE - MU_SOFT_TISSUE))
    bones += _bone((88, 198), (86, 300), 7.5) + _bone((116, 200), (118, 300), 6.0)
    # x, y, diameter x, diameter y, angle, ha fraction, area
    deposits = [
        (58.3, 46.6, 2.0, 2.0, 0, 0.55, "fingers"),  # beside the index proximal phalanx
        (95.1, 37.2, 3.0, 2.5, 30, 0.50, "fingers"),
        (141.3, 26.2, 4.0, 4.0, 0, 0.45, "fingers"),  # little fingertip pulp
        (40.6, 116.4, 2.5, 2.5, 0, 0.60, "fingers"),  # thumb
        (75, 128, 6.0, 4.5, 20, 0.40, "hand"),
        (125, 140, 2.0, 2.0, 0, 0.60, "hand"),
        (135, 110, 1.2, 1.2, 0, 0.50, "hand"),  # below the 2 mm target size
        (101.5, 120, 8.0, 6.0, 90, 0.35, "hand"),  # between middle and ring metacarpals
        (125, 215, 2.5, 2.5, 0, 0.55, "forearm"),  # ulnar side of the distal forearm
        (93, 96, 3.0, 3.0, 0, 0.60, "hand"),  # over the middle metacarpal head
        (66.9, 72.1, 2.5, 2.5, 0, 0.70, "fingers"),  # over the index proximal phalanx
        (89.8, 140, 4.5, 4.0, 0, 0.55, "hand"),  # over the middle metacarpal shaft
        (100, 176, 5.0, 4.0, 0, 0.60, "wrist"),  # over the carpals
        (87, 222, 5.0, 5.0, 0, 0.60, "forearm"),  # over the radius (inside the collimated field)
    ]
    return soft, bones, deposits, (200.0, 240.0), "HAND"


def _elbow():
    soft = _limb((100, -30), (100, 112), 42, 6) + _limb((100, 112), (100, 280), 38, 6)
    bones = _bone((100, -30), (100, 92), 10) + [_Ellipsoid((100, 104), 28, 10, 14, 0, MU_CORTICAL_BONE - MU_SOFT_TISSUE)]
    bones += _bone((90, 122), (84, 280), 6.5) + _bone((112, 118), (116, 280), 7.0)
    deposits = [
        (70, 90, 3.0, 3.0, 0, 0.55, "elbow"),
        (136, 118, 5.0, 3.5, 40, 0.45, "elbow"),
        (125, 60, 2.0, 2.0, 0, 0.60, "elbow"),
        (74, 150, 7.0, 7.0, 0, 0.40, "elbow"),
        (127, 165, 2.5, 2.5, 0, 0.65, "elbow"),
        (100, 60, 4.0, 4.0, 0, 0.60, "elbow"),  # over the humerus
        (100, 112, 3.0, 3.0, 0, 0.70, "elbow"),  # over the joint
        (115, 180, 3.5, 3.5, 0, 0.65, "elbow"),  # over the ulna
    ]
    return soft, bones, deposits, (200.0, 220.0), "ELBOW"


def _thigh():
    soft = _limb((100, -40), (100, 260), 78, 14)
    bones = _bone((104, -40), (98, 260), 14)
    deposits = [
        (50, 60, 6.0, 5.0, 10, 0.45, "thigh"),
        (150, 40, 3.0, 3.0, 0, 0.60, "thigh"),
        (140, 130, 8.0, 8.0, 0, 0.40, "thigh"),
        (40, 160, 4.0, 3.0, -20, 0.55, "thigh"),
        (62, 105, 2.5, 2.5, 0, 0.70, "thigh"),
        (101, 70, 6.0, 6.0, 0, 0.60, "thigh"),  # over the femur
        (97, 150, 5.0, 5.0, 0, 0.70, "thigh"),  # over the femur
    ]
    return soft, bones, deposits, (200.0, 200.0), "THIGH"


_BUILDERS = {LimbKind.HAND: _hand, LimbKind.ELBOW: _elbow, LimbKind.THIGH: _thigh}
#: Limbs radiographed with an anti-scatter grid by default (thick parts, over ~10-12 cm).
_GRID_BY_DEFAULT = frozenset({LimbKind.THIGH})
GRID_PRIMARY_TRANSMISSION = 0.70
GRID_SCATTER_TRANSMISSION = 0.10
GRID_BUCKY_FACTOR = 3.0  # exposure increase with the grid in place


def _union_line_integral(prims, xs, ys, shape) -> np.ndarray:
    """Line integral of overlapping primitives without counting shared tissue twice.

    Every primitive is centred on the mid-plane, so each ray crosses it along an
    interval centred on that plane; the union of such intervals is the longest one.
    Primitives of one material (same ``delta_mu``) therefore combine by the maximum
    of their chords, and the materials (nested shells) add: exact for limbs made of
    overlapping capsules (an elbow, a thumb meeting the palm, touching bone ends).
    """
    groups: dict[float, np.ndarray] = {}
    for prim in prims:
        chord = np.zeros(shape)
        _chord(prim, xs, ys, chord, scale=1.0)
        g = groups.setdefault(prim.delta_mu, np.zeros(shape))
        np.maximum(g, chord, out=g)
    total = np.zeros(shape)
    for delta_mu, chord in groups.items():
        total += delta_mu * chord
    return total


def _chord(prim, xs, ys, out, scale=None):
    """Add ``delta_mu * chord`` of ``prim`` (or ``scale * chord``) to ``out`` (in place), within its bounding box."""
    if isinstance(prim, _Capsule):
        r = prim.radius
        lo = np.minimum(prim.p0, prim.p1) - r
        hi = np.maximum(prim.p0, prim.p1) + r
    else:
        r = max(prim.a, prim.b)
        lo = np.subtract(prim.center, r)
        hi = np.add(prim.center, r)
    ci = np.searchsorted(xs, [lo[0], hi[0]])
    ri = np.searchsorted(ys, [lo[1], hi[1]])
    if ci[0] >= ci[1] or ri[0] >= ri[1]:
        return
    x = xs[ci[0] : ci[1]][None, :]
    y = ys[ri[0] : ri[1]][:, None]
    if isinstance(prim, _Capsule):
        p0, d = np.asarray(prim.p0), np.subtract(prim.p1, prim.p0)
        L2 = float(d @ d) or 1e-12
        t = np.clip(((x - p0[0]) * d[0] + (y - p0[1]) * d[1]) / L2, 0, 1)
        d2 = (x - p0[0] - t * d[0]) ** 2 + (y - p0[1] - t * d[1]) ** 2
        chord = 2 * np.sqrt(np.maximum(r * r - d2, 0))
    else:
        th = math.radians(prim.angle_deg)
        u = (x - prim.center[0]) * math.cos(th) + (y - prim.center[1]) * math.sin(th)
        v = -(x - prim.center[0]) * math.sin(th) + (y - prim.center[1]) * math.cos(th)
        chord = 2 * prim.c * np.sqrt(np.maximum(1 - (u / prim.a) ** 2 - (v / prim.b) ** 2, 0))
    out[ri[0] : ri[1], ci[0] : ci[1]] += (prim.delta_mu if scale is None else scale) * chord


def _letter_r(x0: float, y0: float, h: float) -> list[tuple[float, float, float, float]]:
    """Rectangles (x, y, w, h) in mm drawing a block letter R of height ``h``."""
    s, w = 0.18 * h, 0.62 * h
    return [
        (x0, y0, s, h),  # stem
        (x0, y0, w, s),  # top bar
        (x0 + w - s, y0, s, 0.5 * h),  # bowl right side
        (x0, y0 + 0.45 * h, w, s),  # middle bar
        (x0 + 0.35 * w, y0 + 0.55 * h, s, 0.2 * h),  # leg, upper part
        (x0 + 0.55 * w, y0 + 0.72 * h, s, 0.28 * h),  # leg, lower part
    ]


def make_radiograph_phantom(
    kind: LimbKind | str = LimbKind.HAND,
    *,
    pixel_spacing_mm: float = 0.25,
    photons_per_pixel: float = 8000.0,
    scatter_fraction: float = 0.12,
    grid: bool | None = None,
    seed: int = 0,
    deposit_scale: float = 1.0,
    density_scale: float = 1.0,
) -> RadiographPhantom:
    """Project one limb phantom to a noisy radiograph with exact ground truth.

    Parameters
    ----------
    kind : {"hand", "elbow", "thigh"}
    pixel_spacing_mm : float
        Square detector pixel size, mm.
    photons_per_pixel : float
        Unattenuated photon count per pixel (sets the quantum noise).
    scatter_fraction : float
        Fraction of the attenuated photons that reach the detector as scatter,
        spread by a Gaussian of 20 mm.
    grid : bool, optional
        Anti-scatter grid in front of the detector (passes
        ``GRID_PRIMARY_TRANSMISSION`` of the primary, ``GRID_SCATTER_TRANSMISSION``
        of the scatter; the exposure is raised by ``GRID_BUCKY_FACTOR``). Default:
        on for the thigh, off for the hand and elbow, as in clinical practice.
    seed : int
        Seed of the noise generator (same seed, same image, byte for byte).
    deposit_scale : float
        Every deposit's diameters times this (centres kept): a follow-up whose deposits grew
        or shrank, for the 25 % rule (areas scale by its square).
    density_scale : float
        Every deposit's hydroxyapatite fraction times this (at most 1): fainter or denser
        deposits.
    """
    kind = LimbKind(kind)
    if pixel_spacing_mm <= 0 or photons_per_pixel <= 0:
        raise ValueError("pixel_spacing_mm and photons_per_pixel must be positive")
    if not (deposit_scale > 0 and density_scale > 0):
        raise ValueError("deposit_scale and density_scale must be positive")
    soft, bones, deposit_specs, (width_mm, height_mm), body_part = _BUILDERS[kind]()
    sp = float(pixel_spacing_mm)
    xs = np.arange(int(round(width_mm / sp))) * sp
    ys = np.arange(int(round(height_mm / sp))) * sp
    shape = (ys.size, xs.size)
    soft_li = _union_line_integral(soft, xs, ys, shape)
    bone_li = _union_line_integral(bones, xs, ys, shape)
    deposit_li = np.zeros(shape)
    truths = []
    bone_mask = bone_li > 1e-9
    for i, (x, y, dx, dy, ang, ha, area) in enumerate(deposit_specs, start=1):
        dx, dy, ha = dx * deposit_scale, dy * deposit_scale, min(ha * density_scale, 1.0)
        a, b = dx / 2, dy / 2
        single = np.zeros(shape)
        _chord(_Ellipsoid((x, y), a, b, (a + b) / 2, ang, ha * (MU_HYDROXYAPATITE - MU_SOFT_TISSUE)), xs, ys, single)
        deposit_li += single
        truths.append(
            PhantomDeposit(i, y / sp, x / sp, x, y, max(dx, dy), math.pi * a * b, ha, bool((bone_mask & (single > 0)).any()), area)
        )
    line_integral = soft_li + bone_li + deposit_li

    # Lead marker in the field, outside the limb, and a burned-in label in a corner.
    marker = np.zeros(shape, dtype=bool)
    mx, my = (width_mm - 30, 14.0) if kind is not LimbKind.THIGH else (width_mm - 17, height_mm - 34)
    for rx, ry, rw, rh in _letter_r(mx, my, 14.0):
        marker[(ys[:, None] >= ry) & (ys[:, None] < ry + rh) & (xs[None, :] >= rx) & (xs[None, :] < rx + rw)] = True
    # 0.5 mm of lead: dense, but (like a real marker behind a grid) not clipped to the detector maximum.
    line_integral = line_integral + MU_LEAD * 0.5 * marker

    use_grid = kind in _GRID_BY_DEFAULT if grid is None else bool(grid)
    n0 = float(photons_per_pixel) * (GRID_BUCKY_FACTOR if use_grid else 1.0)
    primary = n0 * np.exp(-line_integral)
    scatter = scatter_fraction * ndimage.gaussian_filter(n0 - primary, sigma=20.0 / sp, mode="nearest")
    if use_grid:
        # The detector is calibrated flat-field with the grid in place, so the
        # unattenuated level is GRID_PRIMARY_TRANSMISSION * n0.
        primary = GRID_PRIMARY_TRANSMISSION * primary
        scatter = GRID_SCATTER_TRANSMISSION * scatter
        n0 = GRID_PRIMARY_TRANSMISSION * n0
    field = np.zeros(shape)
    margin = 6.0 / sp
    field[int(margin) : shape[0] - int(margin), int(margin) : shape[1] - int(1.6 * margin)] = 1.0
    transmission = 0.002 + 0.998 * ndimage.gaussian_filter(field, sigma=0.8 / sp)
    expected = ndimage.gaussian_filter((primary + scatter) * transmission, sigma=0.08 / sp)
    rng = np.random.default_rng(seed)
    counts = rng.poisson(expected).astype(np.float64)
    log_signal = -np.log(np.maximum(counts, 0.5) / n0)
    image = np.clip(np.round(log_signal * DETECTOR_SCALE), 0, DETECTOR_MAX).astype(np.uint16)

    label = np.zeros(shape, dtype=bool)
    lr, lc = int(10 / sp), int(10 / sp)
    for k in range(5):  # five "characters" of bars: text-like, saturated
        c0 = lc + int(k * 4.5 / sp)
        label[lr : lr + int(5 / sp), c0 : c0 + int(0.8 / sp)] = True
        label[lr : lr + int(0.8 / sp), c0 : c0 + int(3 / sp)] = True
    image[label] = DETECTOR_MAX
    return RadiographPhantom(
        kind=kind,
        image=image,
        pixel_spacing_mm=(sp, sp),
        deposits=tuple(truths),
        body_mask=soft_li > 1e-9,
        bone_mask=bone_mask,
        marker_mask=marker,
        label_mask=label,
        field_mask=field > 0.5,
        body_part=body_part,
    )


def write_phantom_dicom(
    phantom: RadiographPhantom,
    path: str | Path,
    *,
    photometric: str = "MONOCHROME1",
    with_spacing: bool = True,
) -> Path:
    """Write the phantom as a DX DICOM file (MONOCHROME1 stores the negative)."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from calcinosis.atomic import write_with

    if photometric not in {"MONOCHROME1", "MONOCHROME2"}:
        raise ValueError(f"photometric must be MONOCHROME1 or MONOCHROME2, got {photometric!r}")
    pixels = phantom.image
    if photometric == "MONOCHROME1":
        pixels = (DETECTOR_MAX - pixels.astype(np.int32)).astype(np.uint16)
    entropy = [phantom.kind.value, str(phantom.image.shape), str(int(phantom.image.sum()))]
    sop_class = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=entropy + ["sop"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid(entropy_srcs=entropy + ["study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=entropy + ["series"])
    ds.Modality = "DX"
    ds.PatientName = "Phantom^Radiograph"
    ds.PatientID = f"PHANTOM-{phantom.kind.value.upper()}"
    ds.BodyPartExamined = phantom.body_part
    ds.ViewPosition = "PA" if phantom.kind is LimbKind.HAND else "AP"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if with_spacing:
        ds.ImagerPixelSpacing = [f"{v:.4f}" for v in phantom.pixel_spacing_mm]
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    return write_with(path, lambda tmp: ds.save_as(tmp, enforce_file_format=True))
