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
