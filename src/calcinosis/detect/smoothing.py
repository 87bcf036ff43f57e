"""The lightly smoothed CT that seeds, valleys and the smoothed-image noise are read on,
computed only where it is read.

Detection reads the smoothed image at a few per cent of a whole-body CT's voxels: the
boxes of candidate deposits, of bones (for their split) and of faint candidates' rings,
and the slices the noise estimate samples. :class:`SmoothedHU` smooths just the box
asked for, from the raw HU round it, and gives the same whole-HU values there as
smoothing the whole volume (:func:`calcinosis.detect.candidates.smoothed`): the Gaussian
is separable and truncated at ``4 sigma``, and each pass of ``scipy.ndimage`` computes a
voxel from the same neighbours, in the same order, wherever the line it lies on starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage as ndi

from calcinosis.threads import n_threads, over_slabs

# Seeds are found on a lightly smoothed image: noise drops several-fold, a 2 mm deposit hardly.
SMOOTH_SIGMA_MM = 0.6
# ``scipy.ndimage.gaussian_filter``'s default truncation (kernel radius in sigmas).
TRUNCATE = 4.0


def smoothing_sigma(spacing_zyx) -> tuple[float, float, float]:
    """Gaussian sigma (voxels) per axis ``(z, y, x)``: ``SMOOTH_SIGMA_MM`` but at least half a
    voxel; none (0) across slices of 2 mm or more, which are already thicker than a deposit's blur."""
    return tuple(max(0.5, SMOOTH_SIGMA_MM / float(s)) if s < 2.0 else 0.0
                 for s in spacing_zyx)  # type: ignore[return-value]


def smooth_box(hu: np.ndarray, spacing_zyx, box: tuple[slice, slice, slice]) -> np.ndarray:
    """Smoothed HU (whole HU, int16) on ``box`` (slices with step 1 into ``hu``).

    Equal to ``smoothed(hu, spacing_zyx, dtype=np.int16)[box]``: the passes (z, then y,
    then x, in float32 as ``gaussian_filter``) run on the box grown by the kernel's radius,
    each keeping only the part the next pass reads; at the volume's edges the grown box is
    clipped, and the ``nearest`` mode repeats the same edge voxels as on the whole volume.
    """
    sigma = smoothing_sigma(spacing_zyx)
    radius = [int(TRUNCATE * s + 0.5) if s else 0 for s in sigma]
    lo = [max(s.start - r, 0) for s, r in zip(box, radius)]
    hi = [min(s.stop + r, n) for s, r, n in zip(box, radius, hu.shape)]
    plane = (slice(lo[1], hi[1]), slice(lo[2], hi[2]))
    part: np.ndarray
    if sigma[0] and box[0].stop - box[0].start <= 2 * radius[0]:
        # A box of a few slices: along z only its own slices are computed (the other passes
        # do not mix them), not the 2 radius more that scipy's pass would throw away. On
        # more slices scipy's pass is the faster (and its waste small).
        part = gaussian_z(hu, sigma[0], radius[0], box[0], plane)
        first = 1
    else:
        part = hu[tuple(slice(a, b) for a, b in zip(lo, hi))]
        first = 0
    for axis in range(first, 3):
        if sigma[axis]:
            part = ndi.gaussian_filter1d(part, sigma[axis], axis, output=np.float32, mode="nearest",
                                         truncate=TRUNCATE, radius=radius[axis])
        # What the later passes read: this axis's own box (they do not mix it).
        keep = slice(box[axis].start - lo[axis], box[axis].stop - lo[axis])
        part = part[(slice(None),) * axis + (keep,)]
    return np.rint(part.astype(np.float32, copy=False)).astype(np.int16)


def gaussian_z(hu: np.ndarray, sigma: float, radius: int, zs: slice, plane: tuple[slice, slice]) -> np.ndarray:
    """``ndi.gaussian_filter1d(hu[:, plane], sigma, axis=0, output=np.float32, mode="nearest",
    radius=radius)[zs]``, bit for bit, computing the slices ``zs`` only.

    ``scipy.ndimage`` computes every slice of the part it is given: for the few slices of a
    small box (a sampled slice of the noise estimate needs its neighbours too) most of that
    work is thrown away. This is its sum for a symmetric kernel, in its order and in float64
    (the centre tap, then the pairs of taps from the outermost in), stored as float32; at the
    volume's ends the nearest slice is repeated (its ``nearest`` mode)."""
    w = _gaussian_weights(float(sigma), int(radius))
    nz = hu.shape[0]
    view = hu[(slice(None),) + tuple(plane)]
    z = np.arange(zs.start, zs.stop)
    if z.size == 0:
        return np.zeros((0,) + view.shape[1:], np.float32)

    def taps(offset: int) -> np.ndarray:
        k = z + offset
        if k[0] >= 0 and k[-1] < nz:
            return view[k[0]:k[-1] + 1]
        return view[np.clip(k, 0, nz - 1)]

    acc = taps(0).astype(np.float64)
    acc *= w[radius]
    for j in range(radius, 0, -1):
        pair = taps(-j).astype(np.float64)
        pair += taps(j)
        pair *= w[radius - j]
        acc += pair
    return acc.astype(np.float32)


@lru_cache(maxsize=16)
def _gaussian_weights(sigma: float, radius: int) -> np.ndarray:
    """The kernel ``gaussian_filter1d`` uses (float64, ``2 radius + 1`` taps), read off its
    response to a unit impulse (each output is one weight times 1, plus zeros: exact)."""
    impulse = np.zeros(2 * radius + 1)
    impulse[radius] = 1.0
    w = ndi.gaussian_filter1d(impulse, sigma, output=np.float64, mode="constant", truncate=TRUNCATE, radius=radius)
    w.flags.writeable = False
    return w


@dataclass(frozen=True, eq=False)
class SmoothedHU:
    """The smoothed image of ``hu`` (whole HU, int16), read like an array by basic indexing
    (``smooth[box]``, ``smooth[z]``); each read smooths the part it asks for.

    Reads return new arrays; nothing is kept, so a box read twice is smoothed twice (the
    callers keep the boxes they read again). Safe to read from several threads.
    """

    hu: np.ndarray
    spacing_zyx: tuple[float, float, float]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.hu.shape

    @property
    def ndim(self) -> int:
        return 3

    dtype = np.dtype(np.int16)

    def __getitem__(self, index) -> np.ndarray:
        index = index if isinstance(index, tuple) else (index,)
        if len(index) > 3 or any(i is Ellipsis or i is None for i in index):
            raise TypeError("SmoothedHU takes up to three slices or integers")
        index = index + (slice(None),) * (3 - len(index))
        box, squeeze = [], []
        for axis, (i, n) in enumerate(zip(index, self.hu.shape)):
            if isinstance(i, slice):
                start, stop, step = i.indices(n)
                if step != 1:
                    raise TypeError("SmoothedHU takes slices with step 1")
                box.append(slice(start, max(start, stop)))
            else:
                k = int(i) + n if int(i) < 0 else int(i)
                if not 0 <= k < n:
                    raise IndexError(f"index {i} is out of bounds for axis {axis} with size {n}")
                box.append(slice(k, k + 1))
                squeeze.append(axis)
        if any(s.stop == s.start for s in box):
            return np.zeros(tuple(s.stop - s.start for s in box), np.int16).squeeze(axis=tuple(squeeze))
        values = _smooth_box_in_slabs(self.hu, self.spacing_zyx, tuple(box))  # type: ignore[arg-type]
        return values.squeeze(axis=tuple(squeeze))


def _smooth_box_in_slabs(hu: np.ndarray, spacing_zyx, box: tuple[slice, slice, slice]) -> np.ndarray:
    """:func:`smooth_box`, for a large box (a spine's) in slabs of slices on
    :func:`~calcinosis.threads.n_threads` threads (``scipy.ndimage`` releases the GIL): each
    slab is a box of its own, whose smoothed values are the box's there."""
    shape = tuple(s.stop - s.start for s in box)
    out = np.empty(shape, np.int16)

    def slab(z0: int, z1: int) -> None:
        part = (slice(box[0].start + z0, box[0].start + z1), box[1], box[2])
        out[z0:z1] = smooth_box(hu, spacing_zyx, part)

    over_slabs(slab, shape[0], n_threads(), int(np.prod(shape)))
    return out
