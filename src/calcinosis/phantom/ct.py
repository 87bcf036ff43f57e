"""Synthetic CT phantoms with exact ground truth: :func:`make_ct_phantom`.

A phantom is an analytic body part (thighs, trunk, elbow or fingers) on a CT table,
with calcified deposits of known shape, density and compartment, optional
objects on the skin that are not deposits, and optional distractors. It is
"scanned" by the model in :mod:`calcinosis.phantom.render` (Gaussian in-plane
PSF, box slice profile, Gaussian noise) into an int16 HU :class:`Volume`
with identity direction (x to the patient's left, y posterior, z superior).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from scipy import ndimage

from calcinosis.errors import InputError
from calcinosis.phantom import anatomy_parts as parts
from calcinosis.phantom.distractors import add_distractor_anatomy, check_kinds, make_distractors
from calcinosis.phantom.placement import (
    COMPARTMENTS,
    DepositPlacer,
    Placed,
    blob_extent,
    classify,
    compartment_counts,
    skin_objects,
    soft_tissue_fit,
)
from calcinosis.phantom.render import Grid, add_noise, render_anatomy, render_blob
from calcinosis.phantom.shapes import Blob, blob_with_diameter, ellipsoid_blob, lumpy_blob
from calcinosis.volume import Volume

BODY_PARTS = ("thighs", "trunk", "elbow", "fingers")
HA_MG_PER_CM3_HU = 0.8  # hydroxyapatite-equivalent mass per (cm3 * HU)
IDEAL_THRESHOLD_HU = 130.0
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class DepositSpec:
    """An explicitly placed deposit.

    Parameters
    ----------
    center_lps : tuple of float
        LPS mm of the deposit's centroid.
    density_hu : float
        HU inside the deposit (uniform).
    equivalent_diameter_mm : float, optional
        Diameter (mm) of the sphere of equal volume; with ``shape_seed`` the shape
        is an irregular union of ellipsoids, without it a sphere.
    radii_mm : tuple of float, optional
        Semi-axes (mm) of an axis-aligned ellipsoid (x, y, z); instead of
        ``equivalent_diameter_mm``.
    shape_seed : int, optional
        Seed of the irregular shape.
    """

    center_lps: tuple[float, float, float]
    density_hu: float
    equivalent_diameter_mm: float | None = None
    radii_mm: tuple[float, float, float] | None = None
    shape_seed: int | None = None

    def __post_init__(self) -> None:
        if (self.equivalent_diameter_mm is None) == (self.radii_mm is None):
            raise InputError("DepositSpec needs exactly one of equivalent_diameter_mm or radii_mm")
        size = self.radii_mm if self.radii_mm is not None else (self.equivalent_diameter_mm,)
        if len(size) not in (1, 3) or min(size) <= 0:
            raise InputError(f"DepositSpec size must be positive mm, got {size}")
        if not 130.0 < float(self.density_hu) <= 3071.0:
            raise InputError(f"DepositSpec density_hu must be in (130, 3071] HU, got {self.density_hu}")
        if len(self.center_lps) != 3:
            raise InputError(f"DepositSpec center_lps must be (x, y, z) mm, got {self.center_lps}")

    def blob(self) -> Blob:
        c = np.asarray(self.center_lps, float)
        if self.radii_mm is not None:
            return ellipsoid_blob(tuple(float(r) for r in self.radii_mm)).transformed(1.0, c)
        shape = lumpy_blob(np.random.default_rng(self.shape_seed)) if self.shape_seed is not None \
            else ellipsoid_blob((1.0, 1.0, 1.0))
        return blob_with_diameter(shape, float(self.equivalent_diameter_mm), c)


@dataclass(frozen=True)
class DepositTruth:
    """Ground truth of one deposit (mm, HU, mg; positions in LPS mm)."""

    id: int
    centroid_lps: tuple[float, float, float]
    equivalent_diameter_mm: float
    true_volume_mm3: float
    ideal_volume_mm3: float
    density_hu: float
    background_hu: float
    mass_mg: float
    compartment: str
    side: str
    region: str
    bone_gap_mm: float
    depth_mm: float
    tissue: str
    bbox_lps: tuple[tuple[float, float, float], tuple[float, float, float]]


@dataclass(frozen=True)
class ObjectTruth:
    """Ground truth of a non-deposit object (skin-contact object or distractor)."""

    kind: str
    centroid_lps: tuple[float, float, float]
    hu: float
    volume_mm3: float
    note: str = ""


@dataclass(frozen=True)
class PhantomSettings:
    """Everything that determines a phantom (with the seed, it is reproducible)."""

    body_part: str
    seed: int
    noise_hu: float
    slice_thickness_mm: float
    pixel_mm: float
    length_mm: float
    matrix: tuple[int, int] | None
    psf_fwhm_mm: float
    noise_correlation_mm: float
    limb_side: str
    n_deposits: int | None
    explicit_deposits: bool
    external_objects: bool
    table: bool
    distractors: tuple[str, ...]
    table_gap_mm: float | None = None
    bone_texture: float = 0.0


@dataclass(frozen=True)
class PhantomCT:
    """A CT phantom and its truth.

    ``labels`` (uint16, same grid) holds, per deposit id, the voxels of its ideal
    mask: background + its own blurred contribution >= 130 HU. ``noiseless`` is
    the float32 volume before noise, clipping and rounding.
    """

    volume: Volume
    deposits: tuple[DepositTruth, ...]
    external_objects: tuple[ObjectTruth, ...]
    distractors: tuple[ObjectTruth, ...]
    body_part: str
    settings: PhantomSettings
    noiseless: Volume | None = None
    labels: np.ndarray | None = field(default=None, repr=False)
    table: dict | None = None

    def truth_dict(self) -> dict[str, Any]:
        """JSON-able truth: geometry, settings, deposits, objects, totals."""
        vol = self.volume
        deps = [asdict(d) for d in self.deposits]
        totals: dict[str, Any] = {
            "count": len(deps),
            "true_volume_mm3": sum(d.true_volume_mm3 for d in self.deposits),
            "ideal_volume_mm3": sum(d.ideal_volume_mm3 for d in self.deposits),
            "mass_mg": sum(d.mass_mg for d in self.deposits),
        }
        for key in ("compartment", "side", "region"):
            by: dict[str, int] = {}
            for d in self.deposits:
                by[getattr(d, key)] = by.get(getattr(d, key), 0) + 1
            totals[f"count_by_{key}"] = by
        return _jsonable({
            "schema_version": SCHEMA_VERSION,
            "body_part": self.body_part,
            "geometry": {"shape_zyx": list(vol.shape), "spacing_xyz_mm": list(vol.spacing),
                         "origin_lps_mm": list(vol.origin), "direction": vol.direction.tolist()},
            "settings": asdict(self.settings),
            "ideal_threshold_hu": IDEAL_THRESHOLD_HU,
            "mass_mg_per_cm3_hu": HA_MG_PER_CM3_HU,
            "deposits": deps,
            "totals": totals,
            "external_objects": [asdict(o) for o in self.external_objects],
            "distractors": [asdict(o) for o in self.distractors],
            "table": self.table,
        })


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return round(float(obj), 6)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


# A generated phantom holds at most this many voxels (about 1100 slices of 512 x 512: the
# generator keeps a float32 copy of the volume and a few more), at most this many deposits
# (placing each one searches the anatomy for room) and a matrix at most this wide.
MAX_VOXELS = 300_000_000
MAX_DEPOSITS = 200
MAX_MATRIX = 2048


def _check_options(body_part: str, noise_hu: float, slice_mm: float, pixel_mm: float, length_mm: float,
                   limb_side: str, matrix: tuple[int, int] | None, table_gap_mm: float | None,
                   bone_texture: float, seed=0, n_deposits: int | None = None) -> None:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise InputError(f"seed must be a whole number 0 or more, got {seed!r}")
    if n_deposits is not None and n_deposits > MAX_DEPOSITS:
        raise InputError(f"n_deposits must be at most {MAX_DEPOSITS}, got {n_deposits}")
    if body_part not in BODY_PARTS:
        raise InputError(f"unknown body part {body_part!r}; choose one of {', '.join(BODY_PARTS)}")
    if not 0.0 <= noise_hu <= 200.0:
        raise InputError(f"noise_hu must be in 0..200 HU, got {noise_hu}")
    if not 0.3 <= slice_mm <= 10.0:
        raise InputError(f"slice_thickness_mm must be in 0.3..10 mm, got {slice_mm}")
    if not 0.2 <= pixel_mm <= 3.0:
        raise InputError(f"pixel_mm must be in 0.2..3 mm, got {pixel_mm}")
    if not slice_mm <= length_mm <= 2000.0:
        raise InputError(f"length_mm must be between one slice and 2000 mm, got {length_mm}")
    if limb_side not in ("left", "right"):
        raise InputError(f"limb_side must be 'left' or 'right', got {limb_side!r}")
    if matrix is not None and (len(matrix) != 2 or min(matrix) < 16 or max(matrix) > MAX_MATRIX):
        raise InputError(f"matrix must be (rows, columns) of 16 to {MAX_MATRIX} each, got {matrix}")
    if table_gap_mm is not None and not 0.0 <= float(table_gap_mm) <= 50.0:
        raise InputError(f"table_gap_mm must be in 0..50 mm, got {table_gap_mm}")
    if not 0.0 <= float(bone_texture) <= 1.0:
        raise InputError(f"bone_texture must be in 0..1, got {bone_texture}")


def _make_grid(anatomy: parts.Anatomy, pixel_mm: float, slice_mm: float, length_mm: float,
               matrix: tuple[int, int] | None) -> Grid:
    x0, x1, y0, y1 = anatomy.fov_mm
    if matrix is None:
        ny, nx = int(np.ceil((y1 - y0) / pixel_mm)), int(np.ceil((x1 - x0) / pixel_mm))
        cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    else:
        ny, nx = int(matrix[0]), int(matrix[1])
        # the body must fit with 8 mm to spare; the table may be cut by the field of view
        b = np.array([o.bbox() for o in anatomy.outlines])
        bx0, bx1, by0, by1 = b[:, 0].min() - 8, b[:, 1].max() + 8, b[:, 2].min() - 8, b[:, 3].max() + 8
        if bx1 - bx0 > nx * pixel_mm or by1 - by0 > ny * pixel_mm:
            raise InputError(f"a {ny}x{nx} matrix of {pixel_mm} mm pixels is too small for the {anatomy.body_part}"
                             f" ({bx1 - bx0:.0f} x {by1 - by0:.0f} mm); use larger pixel_mm or matrix")
        cx = 0.5 * (bx0 + bx1)
        # keep the table in view where the matrix allows it
        cy = float(np.clip(0.5 * (y0 + y1), by1 - 0.5 * ny * pixel_mm, by0 + 0.5 * ny * pixel_mm))
    nz = max(1, int(round(length_mm / slice_mm)))
    if nx * ny * nz > MAX_VOXELS:
        raise InputError(f"a phantom of {nx} x {ny} x {nz} voxels is more than the generator makes "
                         f"({MAX_VOXELS / 1e6:.0f} million): use a shorter length_mm, thicker slices or larger pixels")
    return Grid(nx, ny, nz, pixel_mm, slice_mm,
                cx - 0.5 * (nx - 1) * pixel_mm, cy - 0.5 * (ny - 1) * pixel_mm, -0.5 * (nz - 1) * slice_mm)


def make_ct_phantom(
    body_part: str = "thighs",
    *,
    seed: int = 0,
    noise_hu: float = 15.0,
    slice_thickness_mm: float = 1.5,
    pixel_mm: float = 0.8,
    length_mm: float = 60.0,
    matrix: tuple[int, int] | None = None,
    n_deposits: int | None = None,
    deposits: list[DepositSpec] | tuple[DepositSpec, ...] | None = None,
    distractors: tuple[str, ...] | list[str] = (),
    external_objects: bool = True,
    table: bool = True,
    limb_side: str = "left",
    psf_fwhm_mm: float = 1.0,
    noise_correlation_mm: float = 0.3,
    keep_noiseless: bool = True,
    table_gap_mm: float | None = None,
    bone_texture: float = 0.0,
) -> PhantomCT:
    """A synthetic CT of ``body_part`` with calcified deposits and exact truth.

    Parameters
    ----------
    body_part : {"thighs", "trunk", "elbow", "fingers"}
    seed : int
        Everything random (anatomy jitter, deposits, objects, noise) follows from it.
    noise_hu : float
        Standard deviation (HU) of the added noise.
    slice_thickness_mm, pixel_mm : float
        Slice thickness (= spacing, contiguous slices) and in-plane pixel size, mm.
    length_mm : float
        Extent along z (mm); the slices are centred on ``z = 0``.
    matrix : (rows, columns), optional
        Fixed in-plane matrix; by default the field of view of the body part.
    n_deposits : int, optional
        Number of random deposits (default 8-14 from ``seed``); ignored with ``deposits``.
    deposits : sequence of DepositSpec, optional
        Place exactly these deposits instead of random ones.
    distractors : tuple of str
        Any of ``vessels, bowel, cartilage, necklace, ecg_leads``.
    external_objects, table : bool
        Put objects on the skin / a CT table under the patient.
    limb_side : {"left", "right"}
        The patient's side of the arm or hand (elbow and fingers phantoms only).
    psf_fwhm_mm, noise_correlation_mm : float
        In-plane blur (FWHM, mm) and in-plane noise correlation (Gaussian sigma, mm; sampled
        on the pixels, so a sigma under a pixel gives nearly white noise: see ``add_noise``).
    keep_noiseless : bool
        Keep the float32 noiseless volume in the result.
    table_gap_mm : float, optional
        Air gap (mm) between the lowest skin point and the table top; by default drawn
        from 0.5-10 mm. 0 lays the body on the table.
    bone_texture : float
        Relative amplitude (0-1) of a smooth random texture of the bones' density (cortex
        and marrow vary by this fraction, 1 SD, on a ``BONE_TEXTURE_MM`` scale), as real
        bone does; 0 (the default) keeps the bones uniform. Deposits are not textured.

    Returns
    -------
    PhantomCT
    """
    _check_options(body_part, noise_hu, slice_thickness_mm, pixel_mm, length_mm, limb_side, matrix,
                   table_gap_mm, bone_texture, seed, n_deposits)
    distractors = tuple(dict.fromkeys(str(k) for k in distractors))
    check_kinds(distractors, body_part)
    root = np.random.SeedSequence(int(seed))
    rng_anat, rng_dep, rng_obj, rng_noise, rng_dis = (np.random.default_rng(s) for s in root.spawn(5))
    if body_part == "thighs":
        anatomy = parts.thighs(rng_anat)
    elif body_part == "trunk":
        anatomy = parts.trunk(rng_anat)
    elif body_part == "elbow":
        anatomy = parts.elbow(rng_anat, limb_side)
    else:
        anatomy = parts.fingers(rng_anat, limb_side)
    anatomy = add_distractor_anatomy(anatomy, distractors)
    # The table is always laid out so that the grid does not depend on whether it is shown.
    with_table, table_truth = parts.add_table(anatomy, rng_anat, table_gap_mm)
    grid = _make_grid(with_table, pixel_mm, slice_thickness_mm, length_mm, matrix)
    if table:
        anatomy = with_table
    else:
        table_truth = None
    z_limits = (grid.z_min + slice_thickness_mm + 0.5, grid.z_max - slice_thickness_mm - 0.5)
    if z_limits[1] <= z_limits[0] and (deposits or (deposits is None and n_deposits != 0) or distractors):
        # Deposits keep a slice and half a millimetre from each end of the scan.
        need = grid.z_max - grid.z_min - (z_limits[1] - z_limits[0])
        raise InputError(f"length_mm {length_mm:g} leaves no room for deposits: give more than {need:g} mm "
                         f"(two slices and 1 mm), or no deposits")

    placed = _deposits(anatomy, rng_dep, z_limits, n_deposits, deposits, body_part)
    objects = skin_objects(anatomy, rng_obj, (grid.z_min, grid.z_max)) if external_objects else []
    distractor_objs = make_distractors(anatomy, distractors, rng_dis, z_limits, placed)
    if distractor_objs:  # a skin object never lies on top of a distractor
        taken = [blob_extent(o["blob"])[1:] for o in distractor_objs]
        objects = [o for o in objects if all(
            np.linalg.norm(blob_extent(o["blob"])[1] - c) > blob_extent(o["blob"])[2] + r + 1.0 for c, r in taken)]

    noiseless = render_anatomy(anatomy, grid, psf_fwhm_mm)
    if bone_texture > 0:
        # Its own random stream (the next child of the seed): the rest of the phantom is unchanged.
        _texture_bones(noiseless, anatomy, grid, psf_fwhm_mm, float(bone_texture),
                       np.random.default_rng(root.spawn(1)[0]))
    labels = np.zeros(noiseless.shape, dtype=np.uint16)
    voxel_mm3 = pixel_mm * pixel_mm * slice_thickness_mm
    truths = []
    for i, p in enumerate(placed, start=1):
        info = classify(anatomy, p.blob)
        bg = info["background_hu"]
        patch = render_blob(p.blob, grid, psf_fwhm_mm)
        contrib = (p.density_hu - bg) * patch.values
        sl = patch.slices()
        noiseless[sl] += contrib
        ideal = contrib + bg >= IDEAL_THRESHOLD_HU
        labels[sl][ideal] = i
        vol = info["volume_mm3"]
        lo, hi = p.blob.bbox()
        truths.append(DepositTruth(
            id=i, centroid_lps=tuple(float(v) for v in info["centroid"]),
            equivalent_diameter_mm=float((6.0 * vol / np.pi) ** (1 / 3)), true_volume_mm3=float(vol),
            ideal_volume_mm3=float(ideal.sum() * voxel_mm3), density_hu=p.density_hu, background_hu=bg,
            mass_mg=HA_MG_PER_CM3_HU * (p.density_hu - bg) * vol / 1000.0, compartment=info["compartment"],
            side=info["side"], region=info["region"], bone_gap_mm=info["bone_gap_mm"],
            depth_mm=info["depth_mm"], tissue=info["tissue"].value,
            bbox_lps=(tuple(float(v) for v in lo), tuple(float(v) for v in hi)),
        ))
    obj_truth = [_render_object(o, grid, psf_fwhm_mm, noiseless) for o in objects]
    dis_truth = [_render_object(o, grid, psf_fwhm_mm, noiseless) for o in distractor_objs]

    spacing = (pixel_mm, pixel_mm, slice_thickness_mm)
    origin = (grid.x0, grid.y0, grid.z0)
    meta = {"modality": "CT", "kvp": 120.0, "slice_thickness_mm": slice_thickness_mm, "source_format": "phantom",
            "phantom_body_part": body_part, "phantom_seed": int(seed), "contrast_agent": "bowel" in distractors}
    array = add_noise(noiseless, noise_hu, noise_correlation_mm if noise_hu > 0 else 0.0, pixel_mm, rng_noise)
    settings = PhantomSettings(body_part, int(seed), float(noise_hu), float(slice_thickness_mm), float(pixel_mm),
                               float(length_mm), None if matrix is None else tuple(matrix), float(psf_fwhm_mm),
                               float(noise_correlation_mm), limb_side, n_deposits, deposits is not None,
                               bool(external_objects), bool(table), distractors,
                               None if table_gap_mm is None else float(table_gap_mm), float(bone_texture))
    return PhantomCT(
        volume=Volume(array, spacing, origin, np.eye(3), meta),
        deposits=tuple(truths),
        external_objects=tuple(obj_truth),
        distractors=tuple(dis_truth),
        body_part=body_part,
        settings=settings,
        noiseless=Volume(noiseless, spacing, origin, np.eye(3), dict(meta, noiseless=True)) if keep_noiseless else None,
        labels=labels,
        table=table_truth,
    )


def _deposits(anatomy: parts.Anatomy, rng: np.random.Generator, z_limits: tuple[float, float],
              n_deposits: int | None, specs, body_part: str) -> list[Placed]:
    if specs is not None:
        placed: list[Placed] = []
        for k, spec in enumerate(specs, start=1):
            if not isinstance(spec, DepositSpec):
                raise InputError(f"deposit {k} must be a DepositSpec, got {type(spec).__name__}")
            blob = spec.blob()
            why = soft_tissue_fit(anatomy, blob, z_limits, placed)
            if why:
                raise InputError(f"deposit {k} at {tuple(spec.center_lps)} mm cannot be placed: {why}")
            placed.append(Placed(blob, float(spec.density_hu)))
        return placed
    n = int(rng.integers(8, 15)) if n_deposits is None else int(n_deposits)
    if n < 0:
        raise InputError(f"n_deposits must be >= 0, got {n}")
    placer = DepositPlacer(anatomy, rng, z_limits)
    counts = compartment_counts(body_part, n)
    k = 0
    for comp in COMPARTMENTS:
        for _ in range(counts[comp]):
            if placer.place(comp, k) is None:
                warnings.warn(f"phantom: no room for a {comp} deposit; the phantom has fewer deposits",
                              stacklevel=3)
            k += 1
    # Order by position so ids do not depend on the compartment loop.
    return sorted(placer.placed, key=lambda p: tuple(np.round(p.blob.moments()[1][::-1], 3)))


# Scale (mm, Gaussian sigma) of the bones' density texture.
BONE_TEXTURE_MM = 1.5
# The texture scales the bone's excess over soft tissue (HU).
_TEXTURE_BASE_HU = 50.0


def _texture_bones(noiseless: np.ndarray, anatomy: parts.Anatomy, grid: Grid, psf_fwhm_mm: float,
                   amount: float, rng: np.random.Generator) -> None:
    """Vary the bones' density in place: their excess over soft tissue times ``1 + amount
    x field``, the field a smooth Gaussian random field (unit SD, ``BONE_TEXTURE_MM``),
    weighted by how much of each voxel is bone (the bones rendered alone, blurred alike)."""
    bone_only = replace(anatomy, structures=tuple(replace(st, hu=1.0 if st.is_bone else 0.0)
                                                  for st in anatomy.structures))
    weight = np.clip(render_anatomy(bone_only, grid, psf_fwhm_mm), 0.0, 1.0)
    texture = rng.standard_normal(noiseless.shape, dtype=np.float32)
    sigma = (BONE_TEXTURE_MM / grid.slice_mm, BONE_TEXTURE_MM / grid.pixel_mm, BONE_TEXTURE_MM / grid.pixel_mm)
    texture = ndimage.gaussian_filter(texture, sigma)
    texture /= max(float(texture.std()), 1e-6)
    noiseless += np.float32(amount) * texture * weight * (noiseless - np.float32(_TEXTURE_BASE_HU))


def _render_object(obj: dict, grid: Grid, psf_fwhm_mm: float, noiseless: np.ndarray) -> ObjectTruth:
    blob: Blob = obj["blob"]
    background = obj.get("background_hu", parts.AIR_HU)
    patch = render_blob(blob, grid, psf_fwhm_mm)
    if patch is not None:
        noiseless[patch.slices()] += (obj["hu"] - background) * patch.values
    vol, c = blob.moments(48)
    return ObjectTruth(kind=obj["kind"], centroid_lps=tuple(float(v) for v in c), hu=float(obj["hu"]),
                       volume_mm3=float(vol), note=obj.get("note", ""))
