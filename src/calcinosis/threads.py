"""How many threads the array routines may use, and running work over slabs of slices.

``CALCINOSIS_THREADS`` (else ``OMP_NUM_THREADS``, else the CPUs this process may use) sets
the number; batch workers that run one analysis per process set it to 1. Used by the
readers, the morphology helpers, the smoothing and the pipeline.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

THREADS_ENV = ("CALCINOSIS_THREADS", "OMP_NUM_THREADS")
SMALL_FOR_THREADS = 1 << 20


def n_threads() -> int:
    """Threads the array routines may use: ``CALCINOSIS_THREADS``, else ``OMP_NUM_THREADS``,
    else the number of CPUs available to this process (at least 1)."""
    for name in THREADS_ENV:
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


def over_slabs(work, nz: int, threads: int, size: int | None = None) -> None:
    """Run ``work(z0, z1)`` over contiguous slabs of ``range(nz)``, on up to ``threads`` threads
    (edt and cc3d release the GIL). Each slab writes its own slices: the result does not
    depend on the number of threads. Arrays of fewer than ``SMALL_FOR_THREADS`` voxels
    (``size``) run in this thread: starting a pool costs more than they do."""
    threads = max(1, min(threads, nz))
    if threads == 1 or (size is not None and size < SMALL_FOR_THREADS):
        work(0, nz)
        return
    bounds = np.linspace(0, nz, threads + 1).round().astype(int)
    with ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(work, int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]:
            f.result()
