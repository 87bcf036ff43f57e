"""Image noise in homogeneous soft tissue, measured on a few sampled slices."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from calcinosis.anatomy.morphology import box_2d


@dataclass(frozen=True, eq=False)
class NoiseSample:
    """Where the noise is measured: the sampled slices ``zs``; on each, the box
    ``(y0, y1, x0, x1)`` round the voxels whose in-plane 5 x 5 neighbourhood is all tissue,
    grown by 2 pixels (``boxes``), and those voxels on that box (``masks``, bool). Made once
    by :func:`noise_sample` and read by :func:`estimate_noise_hu` for the image and its
    smoothed copy alike."""

    zs: tuple[int, ...]
    masks: tuple[np.ndarray, ...]
    boxes: tuple[tuple[int, int, int, int], ...]


def noise_sample(nz: int, tissue: np.ndarray | Callable[[int], np.ndarray], *,
                 max_slices: int = 24) -> NoiseSample:
    """The slices and voxels :func:`estimate_noise_hu` reads: up to ``max_slices`` evenly
    spaced slices of ``nz``, on each the voxels whose in-plane 5 x 5 neighbourhood is all
    ``tissue`` (a boolean array ``[z, y, x]`` or a function giving slice ``z``'s mask);
    slices with fewer than 50 such voxels are left out."""
    zs, masks, boxes = [], [], []
    for z in np.unique(np.linspace(0, nz - 1, min(nz, max_slices)).round().astype(int)):
        t = tissue(int(z)) if callable(tissue) else tissue[z]
        # Erosion by a 5 x 5 square (outside the slice counts as not tissue), as two 1-D
        # minimum filters: the same as binary_erosion, several times faster.
        ok = ndi.minimum_filter(t.view(np.uint8), size=(5, 5), mode="constant", cval=0).view(bool)
        if np.count_nonzero(ok) >= 50:
            # The neighbourhoods of these voxels lie in their box grown by 2 pixels.
            y0, y1, x0, x1 = box_2d(ok, 2)
            zs.append(int(z))
            masks.append(ok[y0:y1, x0:x1].copy())
            boxes.append((y0, y1, x0, x1))
    return NoiseSample(tuple(zs), tuple(masks), tuple(boxes))


def estimate_noise_hu(hu: np.ndarray, tissue: np.ndarray | Callable[[int], np.ndarray] | NoiseSample, *,
                      max_slices: int = 24) -> float:
    """Standard deviation (HU) of image noise in homogeneous soft tissue.

    Robust (MAD) spread of the difference between each voxel and the mean of its
    in-plane 5 x 5 neighbourhood, over voxels whose neighbourhood is all ``tissue``,
    on up to ``max_slices`` evenly spaced slices; scaled for the 1/25 self-weight.
    ``tissue`` is a boolean array like ``hu``, a function giving slice ``z``'s mask, or a
    :class:`NoiseSample` made by :func:`noise_sample` (then ``max_slices`` is its own): an
    image and its smoothed copy are measured on one sample without eroding twice.
    Given a smoothed image as ``hu``, it measures that image's noise; only the sampled
    slices are read (of an integer image, only their boxes round the tissue: ``hu[z, y0:y1,
    x0:x1]``), so ``hu`` may be a :class:`~calcinosis.detect.smoothing.SmoothedHU` that
    smooths just those.
    """
    sample = tissue if isinstance(tissue, NoiseSample) else noise_sample(hu.shape[0], tissue,
                                                                        max_slices=max_slices)
    if not sample.zs:
        return float("nan")
    # Whole numbers: the 5 x 5 means (float32, two running sums in float64 that are exact
    # for them) are the same on the box as on the slice, so only the box is read.
    on_box = getattr(hu, "dtype", None) is not None and np.dtype(hu.dtype).kind in "iub"
    resid = []
    for z, ok, (y0, y1, x0, x1) in zip(sample.zs, sample.masks, sample.boxes):
        sl = (hu[z, y0:y1, x0:x1] if on_box else hu[z]).astype(np.float32)
        local = ndi.uniform_filter(sl, size=(5, 5))
        diff = sl - local
        resid.append((diff if on_box else diff[y0:y1, x0:x1])[ok])
    r = np.concatenate(resid)
    del resid
    mad = float(median_exact(np.abs(r - median_exact(r))))
    # sl - mean5x5 has variance sigma^2 * (1 - 1/25) for white noise.
    return 1.4826 * mad / np.sqrt(1.0 - 1.0 / 25.0)


def median_exact(a: np.ndarray) -> np.floating:
    """``np.median`` of a 1-D float array, the same value bit for bit, by a bucket select.

    The values are put in buckets by a monotone key (``trunc(25 a)``: the residuals of
    the noise estimate are near multiples of 1/25 HU), counted with ``bincount``; only the
    bucket that holds the middle element(s) is partitioned. Where the key's range is
    too wide (or a value is not finite) it is ``np.median`` itself."""
    n = a.size
    if n == 0 or a.ndim != 1 or a.dtype.kind != "f":
        return np.median(a)
    lo, hi = a.min(), a.max()
    if not (np.isfinite(lo) and np.isfinite(hi)) or float(hi - lo) * 25.0 > min(4.0 * n, 1e7):
        return np.median(a)
    key = (a * a.dtype.type(25)).astype(np.int64)
    key -= key.min()
    cum = np.cumsum(np.bincount(key))
    # np.median: the element at n // 2, or the mean of those at n // 2 - 1 and n // 2.
    ks = (n // 2 - 1, n // 2) if n % 2 == 0 else (n // 2,)
    picked = []
    for k in ks:
        b = int(np.searchsorted(cum, k, side="right"))
        below = int(cum[b - 1]) if b else 0
        picked.append(np.partition(a[key == b], k - below)[k - below])
    return np.mean(np.array(picked, a.dtype))


# -- the noise's spatial structure, for the noise SDs of sums (mass) ----------------------
# Tissue classes read by their local (5 x 5) mean, so that noise does not move a voxel out of
# its class (a class by the voxel's own value would truncate the noise it measures).
NOISE_CLASSES_HU = ((-150.0, -50.0), (0.0, 100.0))  # fat, muscle
# Offsets whose differences give the per-voxel noise: past the noise's correlation (real CT:
# about 1-2 mm), at least this far in-plane and at least 3 pixels.
PLATEAU_MM = 2.0
# Sampled slices and the row step the structure reads (a few hundred thousand pairs per offset).
STRUCTURE_SLICES = 4
STRUCTURE_ROW_STEP = 3
# Least pairs an offset needs in one class to count.
STRUCTURE_MIN_PAIRS = 2000


@dataclass(frozen=True)
class NoiseStructure:
    """How image noise adds up (see :func:`noise_structure`).

    ``voxel_sd_hu``: one voxel's noise SD (HU); ``correlations``: the correlation at each
    in-plane offset ``(dy, dx)`` read (one of each pair of opposite offsets), and at
    ``(1, 0, 0)`` the next slice's."""

    voxel_sd_hu: float
    correlations: dict

    @property
    def sum_factor(self) -> float:
        """The variance of the sum over a large compact region over what independent voxels of
        ``voxel_sd_hu`` would give: ``(1 + 2 sum of the in-plane correlations) * (1 + 2 rho_z)``
        (1 for white noise; real CT noise is correlated over a few pixels: 8-15 on the chest
        and head CTs here)."""
        in_plane = 1.0 + 2.0 * sum(r for o, r in self.correlations.items() if len(o) == 2)
        rho_z = float(self.correlations.get((1, 0, 0), 0.0))
        return max(in_plane, 0.5) * max(1.0 + 2.0 * rho_z, 0.5)

    def to_dict(self) -> dict:
        return {"voxel_sd_hu": round(self.voxel_sd_hu, 2), "sum_factor": round(self.sum_factor, 2)}

    def factor_over(self, mask: np.ndarray) -> float:
        """The sum factor of the voxels of ``mask`` (z, y, x): the variance of their sum over
        ``N voxel_sd^2``, from the correlations read: each pair of voxels at a read in-plane
        offset adds its correlation, and the slices' pairs straight across widen that by the
        next slice's correlation (as :attr:`sum_factor` is made: in-plane times across).
        Smaller than :attr:`sum_factor` for a region not much larger than the correlation
        (its edge voxels miss partners); about it for a large one."""
        n = int(np.count_nonzero(mask))
        if n == 0:
            return 1.0
        total = float(n)
        for o, r in self.correlations.items():
            if len(o) == 2 and r != 0.0:
                total += 2.0 * r * _pairs_at(mask, 0, *o)
        in_plane = max(total / n, 0.5)
        rho_z = float(self.correlations.get((1, 0, 0), 0.0))
        across = 1.0 + 2.0 * rho_z * _pairs_at(mask, 1, 0, 0) / n if rho_z > 0 else 1.0
        return in_plane * across


def _pairs_at(mask: np.ndarray, dz: int, dy: int, dx: int) -> int:
    """How many voxels of ``mask`` have a voxel of ``mask`` at offset ``(dz, dy, dx)``."""
    src, dst = [], []
    for d, size in zip((dz, dy, dx), mask.shape):
        if abs(d) >= size:
            return 0
        src.append(slice(max(0, -d), size - max(0, d)))
        dst.append(slice(max(0, d), size - max(0, -d)))
    return int(np.count_nonzero(mask[tuple(src)] & mask[tuple(dst)]))


def _robust_var(d: np.ndarray) -> float:
    """Variance of the noise in ``d`` (differences of whole-HU voxels) from its interquartile
    range, as a normal's: the middle half is the noise's, the tails hold tissue edges and
    texture. The quartiles are read between whole HU (each value's count spread evenly over
    its unit bin), so their resolution is finer than 1 HU."""
    values, counts = np.unique(np.rint(d).astype(np.int64), return_counts=True)
    cum = np.cumsum(counts)
    n = float(cum[-1])

    def quantile(q: float) -> float:
        k = int(np.searchsorted(cum, q * n, side="left"))
        below = float(cum[k - 1]) if k else 0.0
        return float(values[k]) - 0.5 + (q * n - below) / float(counts[k])

    iqr = quantile(0.75) - quantile(0.25)
    return (iqr / 1.34898) ** 2


def noise_structure(hu: np.ndarray, sample: NoiseSample, spacing_zyx) -> NoiseStructure | None:
    """The per-voxel noise SD and the factor by which correlated noise widens a sum.

    Read on up to ``STRUCTURE_SLICES`` of the noise sample's slices, in homogeneous fat and in
    muscle (``NOISE_CLASSES_HU``, by the 5 x 5 local mean): for each in-plane offset ``o`` within
    the plateau (``PLATEAU_MM``, at least 3 pixels) the variance of ``hu[p + o] - hu[p]`` over
    pairs of one class is ``2 s^2 (1 - rho(o))``; at the plateau's offsets ``rho`` is 0, which
    gives ``s``. A large compact sum of ``N`` voxels then has variance about ``N s^2 F``
    (:attr:`NoiseStructure.sum_factor`); a given region's own factor counts the pairs it
    holds at each offset (:meth:`NoiseStructure.factor_over`). Anatomy left in the classes
    widens ``s`` and the correlations too (the background under a deposit is not known
    either). None where too little tissue is read.
    """
    if not sample.zs:
        return None
    px = float(min(spacing_zyx[1], spacing_zyx[2]))
    plateau = max(3, int(np.ceil(PLATEAU_MM / px)))
    pick = np.unique(np.linspace(0, len(sample.zs) - 1, min(len(sample.zs), STRUCTURE_SLICES)).round().astype(int))
    window = [(dy, dx) for dy in range(plateau) for dx in range(-plateau + 1, plateau) if dy > 0 or dx > 0]
    far = [(0, plateau), (plateau, 0), (0, plateau + 1), (plateau + 1, 0)]
    diffs: dict = {o: [] for o in window + far + [(1, 0, 0)]}
    for i in pick:
        z, ok, (y0, y1, x0, x1) = sample.zs[i], sample.masks[i], sample.boxes[i]
        sl = hu[z, y0:y1, x0:x1].astype(np.float32)
        local = ndi.uniform_filter(sl, size=(5, 5))
        nxt = hu[z + 1, y0:y1, x0:x1].astype(np.float32) if z + 1 < hu.shape[0] else None
        for lo, hi in NOISE_CLASSES_HU:
            cls = ok & (local >= lo) & (local <= hi)
            cls[np.arange(cls.shape[0]) % STRUCTURE_ROW_STEP != 0] = False
            ys, xs = np.nonzero(cls)
            for o in window + far:
                dy, dx = o
                y2, x2 = ys + dy, xs + dx
                inside = (y2 < sl.shape[0]) & (x2 >= 0) & (x2 < sl.shape[1])
                y2, x2, y1_, x1_ = y2[inside], x2[inside], ys[inside], xs[inside]
                both = ok[y2, x2] & (local[y2, x2] >= lo) & (local[y2, x2] <= hi)
                diffs[o].append(sl[y2[both], x2[both]] - sl[y1_[both], x1_[both]])
            if nxt is not None:
                diffs[(1, 0, 0)].append(nxt[ys, xs] - sl[ys, xs])
    var = {o: _robust_var(np.concatenate(d)) for o, d in diffs.items()
           if d and sum(len(a) for a in d) >= STRUCTURE_MIN_PAIRS}
    if not all(o in var for o in far):
        return None
    s2 = float(np.mean([var[o] for o in far])) / 2.0
    if not s2 > 0:
        return None
    rho = {o: 1.0 - var[o] / (2.0 * s2) for o in window if o in var}
    # Across slices the anatomy changes too (5 mm apart on a thick-slice scan): a difference
    # wider than the plateau's is that, not noise correlated below zero.
    rho_z = max(1.0 - var[(1, 0, 0)] / (2.0 * s2), 0.0) if (1, 0, 0) in var else 0.0
    rho[(1, 0, 0)] = rho_z
    return NoiseStructure(float(np.sqrt(s2)), rho)
