"""Connected components and their per-component statistics from one sort of their voxels.

``scipy.ndimage.maximum``/``sum``/``find_objects`` each pass over the whole label array
(``maximum`` even sorts it). Deposits and bones are a few per cent of a CT's voxels:
here those voxels' flat indices are found once (from the boolean mask, which is fast),
sorted by label (a radix sort of 16-bit keys when there are few labels), and every
statistic is a ``reduceat`` over that order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

import cc3d
import numpy as np


@dataclass(frozen=True, eq=False)
class Components:
    """Labels 1..n of a boolean mask, kept as the flat indices of their voxels grouped by
    label (no label array: a uint32 copy of the grid is the largest thing to spare)."""

    shape: tuple[int, int, int]
    n: int
    order: np.ndarray  # flat indices of labelled voxels, grouped by label (raster order within)
    starts: np.ndarray  # order[starts[i - 1]:starts[i]] are label i's voxels (length n + 1)

    @property
    def counts(self) -> np.ndarray:
        """Voxels per label, index = label (entry 0 is 0)."""
        return np.r_[0, np.diff(self.starts)]

    def gather(self, values: np.ndarray) -> np.ndarray:
        """``values`` at the labelled voxels, in label order.

        A view that is not contiguous (a crop of the scan) is read at the voxels' indices:
        its ``ravel`` would copy the whole crop to read a few per cent of it."""
        if values.flags.c_contiguous:
            return values.ravel()[self.order]
        return values[self._index]

    @cached_property
    def _index(self) -> tuple[np.ndarray, ...]:
        """The labelled voxels' (z, y, x) indices, in label order."""
        return np.unravel_index(self.order, self.shape)

    def maximum(self, values_sorted: np.ndarray) -> np.ndarray:
        """Per-label maximum of gathered values (index = label; entry 0 is -inf)."""
        out = np.full(self.n + 1, -np.inf)
        if self.n:
            out[1:] = np.maximum.reduceat(values_sorted, self.starts[:-1])
        return out

    def total(self, values_sorted: np.ndarray) -> np.ndarray:
        """Per-label sum of gathered values (float64; index = label; entry 0 is 0)."""
        out = np.zeros(self.n + 1)
        if self.n:
            out[1:] = np.add.reduceat(np.asarray(values_sorted, np.float64), self.starts[:-1])
        return out

    def boxes(self) -> list[tuple[slice, slice, slice]]:
        """Bounding box of each label 1..n (list index = label - 1)."""
        return self.geometry()[0]

    def geometry(self) -> tuple[list[tuple[slice, slice, slice]], np.ndarray]:
        """Bounding boxes (list index = label - 1) and centroids (``n x 3`` voxel indices,
        as ``ndimage.center_of_mass``) of labels 1..n, from one pass over their voxels."""
        if self.n == 0:
            return [], np.zeros((0, 3))
        lo = np.empty((self.n, 3), np.int64)
        hi = np.empty((self.n, 3), np.int64)
        centre = np.empty((self.n, 3))
        counts = np.diff(self.starts)
        for axis, c in enumerate(self._index):
            lo[:, axis] = np.minimum.reduceat(c, self.starts[:-1])
            hi[:, axis] = np.maximum.reduceat(c, self.starts[:-1]) + 1
            centre[:, axis] = np.add.reduceat(c, self.starts[:-1]) / counts
        boxes = [tuple(slice(int(a), int(b)) for a, b in zip(l, h)) for l, h in zip(lo, hi)]
        return boxes, centre  # type: ignore[return-value]

    def voxels(self, label: int) -> np.ndarray:
        """Flat indices of one label's voxels."""
        return self.order[self.starts[label - 1]:self.starts[label]]

    def mask_in(self, label: int, box: tuple[slice, ...]) -> np.ndarray:
        """Boolean mask of one label on ``box`` (which must hold all of it)."""
        out = np.zeros(tuple(s.stop - s.start for s in box), bool)
        idx = np.unravel_index(self.voxels(label), self.shape)
        out[tuple(i - s.start for i, s in zip(idx, box))] = True
        return out


def label_components(mask: np.ndarray, connectivity: int = 26) -> Components:
    """Connected components of ``mask`` (6-, 18- or 26-connected), numbered in raster order
    of their first voxel (as ``cc3d.connected_components``)."""
    mask = np.ascontiguousarray(mask, dtype=bool)
    where = np.flatnonzero(mask)
    # cc3d numbers components in the raster order of their first voxel. Measured on a trunk
    # CT's threshold mask (59 M voxels, 3.5 M set): 0.10 s of CPU, against 0.29 s for ITK's
    # run-length labelling (which spreads over threads but costs more in all). cc3d holds the
    # GIL meanwhile; its short pass costs a thread beside it less than ITK's longer one.
    labels, n = _cc3d_labels(mask, connectivity)
    keys = labels.ravel()[where]
    del labels
    if n < 65535:
        keys = keys.astype(np.uint16)  # numpy radix-sorts 16-bit keys
    # Stable: the voxels of one label stay in raster order.
    sort = np.argsort(keys, kind="stable")
    order = where[sort]
    # Each label's first position in the sorted keys: its start (a bincount's cumulative
    # sum, from a search of n + 1 values instead of a pass over all the keys).
    starts = np.searchsorted(keys[sort], np.arange(1, n + 2)).astype(np.int64)
    return Components(tuple(mask.shape), int(n), order, starts)  # type: ignore[arg-type]


def _cc3d_labels(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    """``cc3d.connected_components(mask, connectivity=connectivity, return_N=True)``; a large
    mask's labels go to ordinary memory pages (Linux).

    cc3d's own output array is numpy's, which asks for transparent huge pages; where the
    kernel's ``defrag`` setting is ``madvise`` (a common default) the first write to each
    huge page may stall while memory is compacted. Measured on the bench trunk (59 M voxels,
    a 236 MB uint32 map in a process that has freed much memory before): 0.40-0.56 s of CPU
    for the labelling, against 0.13 s with the map on the ordinary pages of an anonymous
    in-memory file (``memfd``), which cc3d maps as its output file. The map is only read
    once and freed with the array (the file has no name and vanishes with its mapping)."""
    memfd = getattr(os, "memfd_create", None)
    if memfd is None or mask.size < _ORDINARY_PAGES_VOXELS:
        return cc3d.connected_components(mask, connectivity=connectivity, return_N=True)
    try:
        fd = memfd("calcinosis-labels", getattr(os, "MFD_CLOEXEC", 0))
    except OSError:  # not allowed here: numpy's memory then
        return cc3d.connected_components(mask, connectivity=connectivity, return_N=True)
    with os.fdopen(fd, "w+b") as file:
        return cc3d.connected_components(mask, connectivity=connectivity, return_N=True, out_file=file)


# Masks from this many voxels up get their labels on ordinary pages (a few MB of map).
_ORDINARY_PAGES_VOXELS = 1 << 20
