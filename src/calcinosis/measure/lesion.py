"""One record per lesion: position, size, density, scores and place in the body."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull, QhullError, cKDTree
from scipy.spatial.distance import cdist, pdist, squareform
from scipy.special import ndtr

from calcinosis.anatomy.morphology import distance_inside_mm, distance_outside_mm, grow_box, grow_one
from calcinosis.config import AnalysisConfig
from calcinosis.measure.scores import AGATSTON_BANDS_HU, agatston_score, background_corrected_mass_mg

# Contract columns of lesions.csv, in order; more may follow.
CSV_COLUMNS = (
    "lesion_id", "x_mm", "y_mm", "z_mm", "volume_mm3", "mass_mg", "agatston", "peak_hu",
    "mean_hu", "max_diameter_mm", "compartment", "side", "region", "depth_mm",
    "bone_distance_mm", "background_hu", "n_voxels", "confidence", "flags",
    "volume_sd_mm3", "mass_sd_mg",
)
BACKGROUND_RING_MM = 2.0
# Below this a voxel is air or lung (fat reads about -100 HU), not soft tissue that holds
# a deposit's blur or gives its background.
SOFT_TISSUE_MIN_HU = -250.0
# Soft tissue below this (HU) is fat: a deposit whose surroundings are fat is subcutaneous.
FAT_MAX_HU = -30.0
# Nominal muscle (HU): the detection threshold's height over it is how far up a deposit's
# blurred edge the lesion's outline lies. In fat the mass's region is grown to the same
# height over the fat, at most ``TAIL_REACH_MM`` from the lesion (_tail_region).
MUSCLE_HU = 50.0
TAIL_REACH_MM = 1.5
# Soft-tissue calcinosis proper; vascular and visceral calcification is reported beside it.
CALCINOSIS_COMPARTMENTS = ("cutaneous", "subcutaneous", "intramuscular", "juxta_osseous")
# Flags of a low-confidence lesion: ``small`` under this volume (mm3) or a single voxel,
# ``low_contrast`` when its peak stands fewer than this many noise SDs above its background.
SMALL_MAX_MM3 = 3.0
LOW_CONTRAST_NOISE_SDS = 4.0


@dataclass(frozen=True)
class Lesion:
    """A calcified deposit. Positions in patient LPS mm (DICOM/ITK convention)."""

    lesion_id: int
    x_mm: float
    y_mm: float
    z_mm: float
    volume_mm3: float
    mass_mg: float
    agatston: float
    peak_hu: float
    mean_hu: float
    max_diameter_mm: float
    compartment: str
    side: str
    region: str
    depth_mm: float
    bone_distance_mm: float
    background_hu: float
    n_voxels: int
    confidence: str  # "high" or "low": a low-confidence lesion is reported with its flags
    flags: str  # ';'-separated reasons for low confidence, or ""
    # Standard deviations that the image noise alone gives ``volume_mm3`` and ``mass_mg`` (see
    # :func:`volume_sd_mm3` and :func:`mass_sd_mg`); NaN where unknown (an older lesions.csv).
    volume_sd_mm3: float = float("nan")
    mass_sd_mg: float = float("nan")

    def row(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class LesionContext:
    """Maps on the cropped grid that measurement reads (all the same shape as ``hu``).

    ``depth_mm`` (distance inside the body) and ``bone_distance_mm`` (distance outside
    bone) may be None: they are then computed only where lesions are, on boxes around
    them (see :class:`LocalDistance`), with the same values as the whole-grid maps.
    """

    hu: np.ndarray
    labels: np.ndarray
    body: np.ndarray
    bone: np.ndarray
    depth_mm: np.ndarray | None
    bone_distance_mm: np.ndarray | None
    spacing_zyx: tuple[float, float, float]
    offset_zyx: tuple[int, int, int]  # crop start in the full array
    boxes: tuple | None = None  # tight box of each label 1..N, when known (else found here)
    from_bone: frozenset[int] = frozenset()  # labels split off a bone: flagged ``split_from_bone``


def measure_lesions(ctx: LesionContext, to_lps, config: AnalysisConfig, *, midline_x_mm: float,
                    noise_hu: float, region_of=None, noise_structure=None) -> list[Lesion]:
    """Measure every labelled lesion (labels 1..N) and return records in label order.

    ``to_lps`` maps full-array indices ``(..., 3)`` in ``(z, y, x)`` to LPS mm;
    ``region_of`` maps an LPS point to a body-region name (``unknown`` when absent).
    ``noise_hu`` is the image noise the flags judge contrast by. The noise SDs of volume and
    mass take, from ``noise_structure`` (:class:`calcinosis.anatomy.noise.NoiseStructure`)
    when given, one voxel's noise SD, and for the mass how far correlated noise widens the
    sum over its region and the median of its background ring (each by its own voxels);
    without it, ``noise_hu`` and independent voxels.
    """
    sd_noise = noise_structure.voxel_sd_hu if noise_structure is not None else noise_hu
    lesions = []
    sp = np.asarray(ctx.spacing_zyx, float)
    vv = float(np.prod(sp))
    pad = np.ceil((config.shell_mm + BACKGROUND_RING_MM + sp.max()) / sp).astype(int)
    boxes = ctx.boxes if ctx.boxes is not None else ndi.find_objects(ctx.labels)
    axial = axial_axis(to_lps)
    depth_map = LocalDistance(ctx.body, sp, inside=True, full=ctx.depth_mm)
    bone_map = LocalDistance(ctx.bone, sp, inside=False, full=ctx.bone_distance_mm)
    for lab, tight in enumerate(boxes, start=1):
        if tight is None:
            continue
        box = grow_box(tight, pad, ctx.labels.shape)
        hu = ctx.hu[box].astype(np.float32)
        labels = ctx.labels[box]
        mask = labels == lab
        region, ring = _shell_and_ring(mask, sp, config.shell_mm)
        other = (labels > 0) & ~mask
        bone_near = ctx.bone[box]
        usable = ctx.body[box] & ~bone_near & ~other
        ring_ok = ring & usable & (hu < config.threshold_hu)
        if ring_ok.sum() < 5:
            ring_ok = ring & ctx.body[box] & (hu < config.threshold_hu)
        # The surroundings (lung for a nodule in the lung: the trunk's rules read it).
        background = float(np.median(hu[ring_ok])) if ring_ok.any() else 0.0
        # In fat (the ring's 90th percentile is fat: no skin, muscle or vessel in it, whose
        # voxels above the fat would not be the deposit's blur) the region takes the blur
        # that reaches past the shell.
        if SOFT_TISSUE_MIN_HU <= background and ring_ok.any() and np.percentile(hu[ring_ok], 90.0) < FAT_MAX_HU:
            region |= _tail_region(mask, hu, background, sp, config, ~bone_near & ~other)
        # Outside the body is air (or a table, clothing, an object on the skin): not the
        # deposit's blur. Against the tissue's background each such voxel counted about
        # -1000 HU of missing mass (deposits in the skin on 2.5 mm pixels: negative masses).
        region = (region | mask) & ~bone_near & ~other & (ctx.body[box] | mask)
        vals = hu[mask]
        coords = np.argwhere(mask)
        w = np.clip(vals - background, 1e-3, None)
        centroid_local = (coords * w[:, None]).sum(0) / w.sum()
        offset = np.array([s.start for s in box]) + np.asarray(ctx.offset_zyx)
        ci = tuple(int(round(c)) for c in centroid_local)
        corner = tuple(s.start for s in box)
        centre = tuple(c + o for c, o in zip(ci, corner))
        depth = depth_map.at_point(centre) if ctx.body[centre] else 0.0
        bone_dist = bone_map.min_over(tight, ctx.labels[tight] == lab)
        diameter = max_diameter_mm(coords, sp)
        # Deep in the body, the mass is measured against soft tissue only: air or lung in
        # the shell is neither the deposit's blur nor its background (an intramuscular
        # deposit beside the lung base counted the lung's voxels as missing mass: 0.66 of
        # its true mass on 3 mm slices). Where the ring reaches the skin (partial volume
        # with the air outside) or holds (almost) no soft tissue (a nodule in the lung),
        # the surroundings' background stays.
        mass_background = background
        ring_used = ring_ok  # the voxels the mass's background is the median of
        soft = hu >= SOFT_TISSUE_MIN_HU
        if depth > diameter / 2 + max(config.shell_mm, float(sp.max())) + BACKGROUND_RING_MM \
                and (ring_ok & soft).sum() >= 5:
            mass_background = float(np.median(hu[ring_ok & soft]))
            ring_used = ring_ok & soft
            region &= soft
            # Along z the voxels at the threshold leave out the deposit's partial volume on
            # the slices above and below, which is what tells where between two thick slices
            # it lies: the voxels right above and below the lesion count too, weighted by
            # their excess over the soft tissue (30 HU noise on 3 mm slices: centroid errors
            # of 1 mm or more 6 -> 2 of 358 deposits, median 0.091 -> 0.073 mm).
            centroid_local[0] = _z_with_partial_volume(coords, w, mask, hu, region, mass_background)
        mass = background_corrected_mass_mg(hu, region, mass_background, vv,
                                            config.mass_calibration_mg_per_hu_cm3)
        # Correlated noise: the region's sum and the ring's median vary more, each by the factor
        # of its own voxels (noise_structure.factor_over).
        mass_sd = mass_sd_mg(int(region.sum()), int(ring_used.sum()), sd_noise, vv,
                             config.mass_calibration_mg_per_hu_cm3,
                             region_factor=noise_structure.factor_over(region) if noise_structure else 1.0,
                             background_factor=noise_structure.factor_over(ring_used) if noise_structure else 1.0)
        fringe = grow_one(mask, corners=True) & ~mask & ~other & ~bone_near & (hu < config.threshold_hu)
        volume_sd = volume_sd_mm3(vals, hu[fringe], config.threshold_hu, sd_noise, vv)
        x, y, z = (float(v) for v in to_lps(centroid_local + offset))
        compartment = _compartment(depth, bone_dist, background, config)
        side = _side(x - midline_x_mm, config.midline_mm)
        region_name = region_of((x, y, z)) if region_of else "unknown"
        flags = []
        if mask.sum() * vv < SMALL_MAX_MM3 or mask.sum() == 1:
            # One voxel (27 mm3 on 3 mm voxels) tells neither size nor shape: a point's
            # partial volume may lift a single coarse voxel over the threshold.
            flags.append("small")
        if vals.max() - background < LOW_CONTRAST_NOISE_SDS * noise_hu:
            flags.append("low_contrast")
        if bone_dist < 0.5 * min(sp):
            flags.append("touches_bone")
        if lab in ctx.from_bone:
            # Parted from a bone by the bone split: right on phantoms, but real bone (its
            # processes, edges, cartilage) has met the split only in stand-ins made from
            # 5 mm scans, where it parts many pieces of bone (bench/real_thin_slices.py).
            flags.append("split_from_bone")
        lesions.append(Lesion(
            lesion_id=lab, x_mm=x, y_mm=y, z_mm=z,
            volume_mm3=float(mask.sum() * vv), mass_mg=mass,
            agatston=_axial_agatston(hu, _agatston_mask(mask, hu, ~bone_near & ~other, config.threshold_hu), sp,
                                     axial),
            peak_hu=float(vals.max()), mean_hu=float(vals.mean()),
            max_diameter_mm=diameter,
            compartment=compartment, side=side, region=region_name,
            depth_mm=depth, bone_distance_mm=bone_dist, background_hu=background,
            n_voxels=int(mask.sum()), confidence="low" if flags else "high",
            flags=";".join(flags), volume_sd_mm3=volume_sd, mass_sd_mg=mass_sd,
        ))
    return lesions


# First box margin (mm) round a lesion for its local distances; doubled until exact.
LOCAL_DISTANCE_MARGIN_MM = 30.0
# Brute-force distances up to this many point pairs; a k-d tree beyond.
_BRUTE_PAIRS = 2_000_000


class LocalDistance:
    """Distances to a mask's edge read at lesion voxels, computed where they are needed.

    ``inside=True``: distance (mm) from voxels of ``mask`` to the nearest voxel outside it
    (depth below the skin for the body mask); ``inside=False``: distance from voxels outside
    ``mask`` to it (distance to bone). The values equal those of the whole-grid transform
    (:func:`distance_inside_mm` / :func:`distance_outside_mm`, the array border not an edge).

    The nearest voxel of the target set (outside the mask for depth, the mask for bone
    distance) has a 6-neighbour not in it: a step from it towards the query voxel, along
    any axis they differ on, comes strictly nearer, so is not in the set. Only those edge
    voxels are measured against. They are found on a box round the lesion: a box grown by
    ``m`` voxels holds every voxel nearer than ``m`` voxel steps, so a distance no larger
    than that is exact; otherwise the margin is doubled (starting at
    ``LOCAL_DISTANCE_MARGIN_MM``; for depth at a point, the in-slice depth, which bounds
    it) until it is. When a box would exceed a quarter of the grid, or the boxes together
    would cost more than one pass over the grid, the edge voxels of the whole grid are put
    in a k-d tree once and read from then on. ``full``, when given, is the whole-grid map,
    read directly.
    """

    def __init__(self, mask: np.ndarray, spacing_zyx, *, inside: bool, full: np.ndarray | None = None):
        self.mask = mask
        self.sp = np.asarray(spacing_zyx, float)
        self.inside = inside
        self.full = full
        self.tree: tuple[cKDTree, int] | None = None  # (tree of the grid's edge voxels in mm, their number)
        self.spent = 0  # voxels of boxes searched so far

    def at_point(self, index: tuple[int, ...]) -> float:
        """Distance at one voxel (``index`` on the mask's grid)."""
        box = tuple(slice(i, i + 1) for i in index)
        start_mm = LOCAL_DISTANCE_MARGIN_MM
        if self.inside and self.full is None and self.tree is None:
            # The distance within the voxel's own slice bounds the 3-D one from above: a box
            # that reaches that far holds the nearest outside voxel.
            in_slice = distance_inside_mm(self.mask[index[0]:index[0] + 1], tuple(self.sp), in_plane=True)
            start_mm = float(in_slice[(0, *index[1:])]) + float(self.sp.max())
            if not np.isfinite(start_mm):  # the mask fills the slice: no bound from it
                start_mm = LOCAL_DISTANCE_MARGIN_MM
        return self.min_over(box, np.ones((1,) * len(index), bool), start_mm=start_mm)

    def min_over(self, box: tuple[slice, ...], where: np.ndarray, *,
                 start_mm: float = LOCAL_DISTANCE_MARGIN_MM) -> float:
        """Smallest distance over the voxels ``where`` (a mask on ``box``)."""
        if self.full is not None:
            return float(self.full[box][where].min())
        points = np.argwhere(where) + [s.start for s in box]
        if self.tree is None:
            shape = self.mask.shape
            margin_mm = start_mm
            while True:
                grow = np.ceil(margin_mm / self.sp).astype(int)
                big = grow_box(box, grow, shape)
                whole = all(b.start == 0 and b.stop == n for b, n in zip(big, shape))
                size = int(np.prod([b.stop - b.start for b in big]))
                if whole or size > self.mask.size // 4 or self.spent + size > self.mask.size:
                    break
                self.spent += size
                corner = np.array([b.start for b in big])
                value = self._nearest_mm(self.mask[big], points - corner)
                if value <= self._reach_mm(box, big):
                    return value
                margin_mm *= 2.0
            edge = np.argwhere(self._edge(self.mask)) * self.sp
            self.tree = (cKDTree(edge), len(edge))
        if self._in_target(self.mask, points):
            return 0.0
        tree, n = self.tree
        return float(tree.query(points * self.sp)[0].min()) if n else float("inf")

    def _in_target(self, local: np.ndarray, points: np.ndarray) -> bool:
        """Whether any point lies in the target set (where the distance is 0)."""
        hit = local[tuple(points.T)]
        return bool((~hit).any() if self.inside else hit.any())

    def _edge(self, local: np.ndarray) -> np.ndarray:
        """Voxels of the target set (outside ``local`` for depth, ``local`` for bone
        distance) with a 6-neighbour not in it."""
        target = ~local if self.inside else local
        return grow_one(~target) & target

    def _nearest_mm(self, local: np.ndarray, points: np.ndarray) -> float:
        """Smallest distance from ``points`` (indices on ``local``) to the target set in ``local``."""
        if self._in_target(local, points):
            return 0.0
        edge = np.argwhere(self._edge(local))
        if len(edge) == 0:
            return float("inf")
        edge_mm, points_mm = edge * self.sp, points * self.sp
        if len(edge) * len(points) <= _BRUTE_PAIRS:
            # Every pair's squared distance, summed over z, y, x in that order: the same
            # floats as the broadcast ((p - e) ** 2).sum(axis=2), without its [P, E, 3] temporaries.
            d2 = cdist(points_mm, edge_mm, "sqeuclidean")
            return float(np.sqrt(d2.min()))
        return float(cKDTree(edge_mm).query(points_mm)[0].min())

    def _reach_mm(self, box, big) -> float:
        """Distance (mm) within which every voxel of the grid, seen from ``box``, lies in ``big``."""
        reach = np.inf
        for s, b, n, d in zip(box, big, self.mask.shape, self.sp):
            if b.start > 0:
                reach = min(reach, (s.start - b.start + 1) * d)
            if b.stop < n:
                reach = min(reach, (b.stop - s.stop + 1) * d)
        return float(reach)


def volume_sd_mm3(inside_hu: np.ndarray, fringe_hu: np.ndarray, threshold_hu: float, noise_hu: float,
                  voxel_volume_mm3: float) -> float:
    """Standard deviation (mm3) that image noise alone gives a lesion's voxel count.

    Each voxel at the lesion's edge could have fallen on the other side of the threshold:
    with Gaussian noise of SD ``noise_hu``, a voxel read at ``v`` HU is at or above the
    threshold in the noiseless image with probability ``p = Phi((v - threshold) / noise)``.
    The voxels of the lesion (``inside_hu``) and those next to it below the threshold
    (``fringe_hu``, its 26-neighbours that are not bone or another lesion) are counted or
    not independently, so the count's variance is ``sum p (1 - p)``. Voxels far from the
    threshold add nothing: a large, dense deposit's volume is known to a few voxels, a
    2-3 mm one on thick, noisy slices to 10-20 %.

    ``noise_hu`` is one voxel's noise SD (the pipeline gives the one measured past the noise's
    correlation: :func:`calcinosis.anatomy.noise.noise_structure`). Edge voxels count as
    independent: with noise correlated as a reconstruction kernel correlates it (neighbours
    about 0.5 apart) the SD still matched the spread over 150 noise draws (2.2 against 2.2 mm3,
    ``tests/measure/test_noise_sd.py``). On phantoms
    (30 HU, 3 mm slices, 428 deposits of 2 mm or more, two noise draws of seeds 0-5) 63.6 % of
    the voxel counts lie within one SD of the ideal segmentation's and 90.9 % within two
    (``bench/bench_accuracy.py`` prints it).

    Examples
    --------
    >>> round(volume_sd_mm3(np.array([130.0, 1000.0]), np.array([130.0 - 1e9]), 130.0, 20.0, 1.0), 3)
    0.5
    >>> volume_sd_mm3(np.array([500.0]), np.array([]), 130.0, 0.0, 1.0)
    0.0
    """
    if not noise_hu > 0:
        return 0.0
    values = np.concatenate([np.ravel(inside_hu), np.ravel(fringe_hu)]).astype(np.float64)
    p = ndtr((values - threshold_hu) / noise_hu)
    return float(np.sqrt((p * (1.0 - p)).sum()) * voxel_volume_mm3)


def combined_sd(sds: Iterable[float]) -> float:
    """SD of a sum (or difference) of measurements with independent noise: their SDs in
    quadrature; NaN when one is NaN (unknown).

    >>> combined_sd([3.0, 4.0])
    5.0
    """
    return math.sqrt(sum(sd * sd for sd in sds))


def mass_sd_mg(n_region: int, n_background: int, noise_hu: float, voxel_volume_mm3: float,
               calibration_mg_per_hu_cm3: float, *, region_factor: float = 1.0,
               background_factor: float = 1.0) -> float:
    """Standard deviation (mg) that image noise alone gives a lesion's background-corrected mass.

    The mass sums ``HU - background`` over ``n_region`` voxels (the lesion and its shell);
    each voxel's noise (SD ``noise_hu``) adds ``noise^2`` to the sum's variance, and the
    background (the median of ``n_background`` ring voxels, SD about
    ``sqrt(pi / 2) * noise / sqrt(n_background)``) is taken off every voxel of the region.
    With correlated noise the region's sum varies ``region_factor`` times more and the ring's
    median ``background_factor`` times more (fewer independent voxels) than independent voxels
    would make them (:meth:`calcinosis.anatomy.noise.NoiseStructure.factor_over` of each).

    Examples
    --------
    >>> round(mass_sd_mg(100, 10**9, 10.0, 1.0, 0.8), 4)  # 0.8 * sqrt(100) * 10 / 1000
    0.08
    """
    if not noise_hu > 0 or n_region <= 0:
        return 0.0
    variance = n_region * noise_hu ** 2 * region_factor
    if n_background > 0:
        variance += n_region ** 2 * (np.pi / 2.0) * noise_hu ** 2 * background_factor / n_background
    return float(calibration_mg_per_hu_cm3 * np.sqrt(variance) * voxel_volume_mm3 / 1000.0)


def _z_with_partial_volume(coords, w, mask, hu, region, background) -> float:
    """The lesion's z centroid (index) with the shell's voxels right above and below it,
    weighted by their excess over ``background`` (none below it)."""
    above_below = np.zeros(mask.shape, bool)
    above_below[1:] |= mask[:-1]
    above_below[:-1] |= mask[1:]
    above_below &= region & ~mask
    wz = np.clip(hu[above_below] - background, 0.0, None)
    z = np.concatenate([coords[:, 0], np.argwhere(above_below)[:, 0]])
    weights = np.concatenate([w, wz])
    return float((z * weights).sum() / weights.sum())


def _tail_region(mask: np.ndarray, hu: np.ndarray, background: float, sp: np.ndarray, config: AnalysisConfig,
                 allowed: np.ndarray) -> np.ndarray:
    """The mass's region of a lesion in fat: the lesion grown,
    within ``TAIL_REACH_MM``, through the voxels that stand as far above its own background
    as the threshold stands above muscle, then by the shell.

    The shell is drawn round the voxels at the threshold. Over muscle the threshold lies low
    on a deposit's blurred edge (130 HU: 80 above muscle), and the shell holds the rest of
    the blur. Over fat the same threshold lies 230 HU up the edge: the lesion is drawn
    tighter, and the blur reaches past the shell (a 3.5 mm, 467 HU deposit in fat on 3 mm
    slices, no noise: 0.88 of its true mass; grown: 1.00)."""
    lowered = hu >= background + (config.threshold_hu - MUSCLE_HU)
    near = distance_outside_mm(mask, tuple(sp)) <= TAIL_REACH_MM
    grown = ndi.binary_propagation(mask, mask=(lowered & near & allowed) | mask)
    region, _ = _shell_and_ring(grown, sp, config.shell_mm)
    return region | grown


def _shell_and_ring(mask: np.ndarray, sp: np.ndarray, shell_mm: float):
    """The lesion grown by a shell (at least ``shell_mm``, at least one voxel on every axis),
    and a ring of soft tissue around that shell for the local background."""
    radius = np.maximum(shell_mm, sp * 1.01)
    # Distance in units of the per-axis shell radius: <= 1 is the ellipsoidal shell.
    d = distance_outside_mm(mask, tuple(sp / radius))
    region = (d <= 1.0) & ~mask
    ring_radius = radius + BACKGROUND_RING_MM
    ring = (d > 1.0) & (d <= float((ring_radius / radius).min()))
    return region, ring


def _compartment(depth_mm: float, bone_distance_mm: float, background_hu: float,
                 config: AnalysisConfig) -> str:
    """The contract's compartment rules, in order: skin depth, bone distance, then the
    tissue the deposit sits in (its surrounding ring is fat, or it is muscle)."""
    if depth_mm <= config.cutaneous_mm:
        return "cutaneous"
    if bone_distance_mm <= config.juxta_osseous_mm:
        return "juxta_osseous"
    return "subcutaneous" if background_hu < FAT_MAX_HU else "intramuscular"


def _side(dx_mm: float, midline_mm: float) -> str:
    if abs(dx_mm) <= midline_mm:
        return "midline"
    return "left" if dx_mm > 0 else "right"  # LPS: x grows to the patient's left


def max_diameter_mm(coords: np.ndarray, spacing_zyx) -> float:
    """Largest distance across the lesion (mm): between voxel centres, plus one voxel's extent
    along that direction."""
    sp = np.asarray(spacing_zyx, float)
    pts = coords.astype(float) * sp
    if len(pts) == 1:
        return float(np.sqrt((sp ** 2).mean()))
    a, b, dist = farthest_pair(pts)
    u = (b - a) / max(dist, 1e-9)
    return float(dist + np.sqrt(((u * sp) ** 2).sum()))


def farthest_pair(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The two of ``pts`` (at least two points, N x d, mm) farthest apart and their distance:
    read on the convex hull's vertices when there are many points."""
    if len(pts) > 64:
        try:
            pts = pts[ConvexHull(pts).vertices]
        except QhullError:  # flat set (one slice or one row): the hull is degenerate
            pts = pts[np.unique(np.r_[pts.argmin(0), pts.argmax(0)])] if len(pts) > 2000 else pts
    dist = squareform(pdist(pts))
    i, j = np.unravel_index(int(dist.argmax()), dist.shape)
    return pts[i], pts[j], float(dist[i, j])


def axial_axis(to_lps) -> int:
    """The array axis (0, 1, 2 of ``z, y, x``) that runs most nearly head to foot, read from
    ``to_lps`` (array indices to LPS mm); the first of equals.

    >>> axial_axis(lambda idx: np.asarray(idx, float)[..., ::-1])  # axial slices stored first
    0
    >>> axial_axis(lambda idx: np.asarray(idx, float)[..., [2, 0, 1]])  # coronal slices first
    1
    """
    steps = to_lps(np.eye(3)) - to_lps(np.zeros(3))  # row a: one index step along array axis a, in LPS
    superior = np.abs(steps[:, 2]) / np.linalg.norm(steps, axis=1)
    return int(np.flatnonzero(superior >= superior.max() - 1e-9)[0])


def _axial_agatston(hu: np.ndarray, mask: np.ndarray, sp: np.ndarray, axial: int) -> float:
    """Agatston's score on the axial slices, the ones it is defined on, whichever array axis
    holds them: a scan stored as coronal slices scored its coronal ones (a deposit 1.5 times
    its score stored axially)."""
    order = [axial, *(a for a in range(3) if a != axial)]
    return agatston_score(np.moveaxis(hu, axial, 0), np.moveaxis(mask, axial, 0), tuple(float(sp[a]) for a in order))


def _agatston_mask(mask: np.ndarray, hu: np.ndarray, free: np.ndarray, threshold_hu: float) -> np.ndarray:
    """The lesion's voxels at Agatston's own 130 HU, whatever the detection threshold: below
    130, the lesion's voxels of 130 HU or more; above it, the lesion grown through the free
    voxels (not bone, not another lesion) of 130 HU or more joined to it (26-connected). At
    130 HU, the lesion itself. (A 200 HU threshold scored 3.84 where 130 HU gives 10.88.)"""
    floor = AGATSTON_BANDS_HU[0]
    if threshold_hu == floor:
        return mask
    if threshold_hu < floor:
        return mask & (hu >= floor)
    parts, _ = ndi.label(mask | (free & (hu >= floor)), structure=np.ones((3, 3, 3), bool))
    return np.isin(parts, np.unique(parts[mask]))
