"""How many threads the array routines may use, and running work over slabs of slices.

``CALCINOSIS_THREADS`` (else ``OMP_NUM_THREADS``, else the CPUs this process may use) sets
the number; in a batch's Dask worker processes the nanny sets ``OMP_NUM_THREADS=1``
(distributed's ``nanny.pre-spawn-environ``), so each analysis there runs on one thread, one
per worker process. Used by the
readers, the morphology helpers, the smoothing and the pipeline. ``CALCINOSIS_THREADS`` must
be a whole number from 1 to ``MAX_THREADS_PER_CPU`` times the CPUs (else :class:`InputError`);
an ``OMP_NUM_THREADS`` that is not one number (OpenMP also takes lists) is passed over, and a
larger one is cut to that maximum.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from calcinosis.errors import InputError

THREADS_ENV = ("CALCINOSIS_THREADS", "OMP_NUM_THREADS")
SMALL_FOR_THREADS = 1 << 20
# Threads beyond this many per CPU only cost memory and start-up; edt aborted the whole process
# (std::system_error) asked for 100000, and a 20-digit number overflowed a C long.
MAX_THREADS_PER_CPU = 4


def n_threads() -> int:
    """Threads the array routines may use: ``CALCINOSIS_THREADS``, else ``OMP_NUM_THREADS``,
    else the number of CPUs available to this process (at least 1)."""
    most = MAX_THREADS_PER_CPU * _cpus()
    own = os.environ.get(THREADS_ENV[0], "").strip()
    if own:
        if not 1 <= _whole_number(own) <= most:
            raise InputError(f"CALCINOSIS_THREADS={own!r} is not a number of threads from 1 to {most} "
                             f"({MAX_THREADS_PER_CPU} per CPU); set it to e.g. {_cpus()} or unset it")
        return int(own)
    omp = os.environ.get(THREADS_ENV[1], "").strip()
    if _whole_number(omp) > 0:
        return min(_whole_number(omp), most)
    return _cpus()


def _whole_number(text: str) -> int:
    """``text`` as a whole number of ASCII digits; -1 when it is not one ("²".isdigit() is
    true, and int() of 5000 digits raises)."""
    return int(text) if re.fullmatch(r"[0-9]{1,9}", text) else -1


def check_threads_env() -> None:
    """Raise :class:`InputError` now if ``CALCINOSIS_THREADS`` is set to something unusable
    (the CLI calls it before it touches an output folder)."""
    n_threads()


def _cpus() -> int:
    """The number of CPUs available to this process (at least 1)."""
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
