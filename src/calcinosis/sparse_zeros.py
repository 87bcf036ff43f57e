"""Zeroed arrays that are written in a few small boxes: label maps, bone masks.

numpy asks the kernel for transparent huge pages on large arrays (``madvise``). Where the
kernel's ``defrag`` setting is ``madvise`` (a common default), the first write to each
2 MiB page of such an array may stall while the kernel compacts memory to find a huge
page: tens of milliseconds for a dozen lesion boxes written into a whole-body label map
(measured: 20-130 ms, against 0.5 ms on ordinary 4 KiB pages). A map that is written
sparsely gains nothing from huge pages, so :func:`sparse_zeros` gives it ordinary pages.
"""

from __future__ import annotations

import mmap

import numpy as np


def sparse_zeros(shape, dtype) -> np.ndarray:
    """``np.zeros(shape, dtype)``, on ordinary (not huge) memory pages where the platform
    allows it (Linux): for arrays that are written in small boxes and mostly stay zero.

    The array owns an anonymous memory map (zero-filled by the kernel, like ``np.zeros``'s
    ``calloc``), freed with the array.
    """
    dtype = np.dtype(dtype)
    shape = tuple(int(n) for n in shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    advice = getattr(mmap, "MADV_NOHUGEPAGE", None)
    if nbytes < mmap.PAGESIZE or advice is None:
        return np.zeros(shape, dtype)
    pages = mmap.mmap(-1, nbytes)
    try:
        pages.madvise(advice)
    except OSError:  # a kernel without transparent huge pages: ordinary pages anyway
        pass
    return np.frombuffer(pages, dtype, count=nbytes // dtype.itemsize).reshape(shape)
