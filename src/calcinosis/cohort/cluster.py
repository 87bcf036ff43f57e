"""Dask execution: a local cluster sized to the machine, or an existing one; memory bounds.

Memory per study
----------------
:func:`memory_estimate_bytes` = :data:`PROCESS_BASE_BYTES` (512 MiB: the worker
process and its libraries) + :data:`BYTES_PER_VOXEL` (48) × voxels. The CT
pipeline peaks at about 27-33 bytes per input voxel above the process base
(measured with ``ru_maxrss`` on 6-8 million voxel phantoms: the int16 volume, float
working copies of the body crop, masks, distance maps and the label map); 48 leaves
room. The estimate decides (a) how many local workers fit in the machine's memory,
(b) which studies are refused up front because they cannot fit one worker. The
worker memory limit enforces the bound: Dask's nanny restarts a worker that goes
over 95 % of it, and the study it ran is recorded as failed (no retry: the
scheduler's ``allowed-failures`` is 0 on the local cluster).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from calcinosis.errors import InputError

BYTES_PER_VOXEL = 48
PROCESS_BASE_BYTES = 512 * 1024**2
GIB = 1024**3


def memory_estimate_bytes(n_voxels: int | None) -> int | None:
    """Peak memory of one study's analysis (see the module docstring); None if the size is unknown."""
    if not n_voxels:
        return None
    return PROCESS_BASE_BYTES + BYTES_PER_VOXEL * int(n_voxels)


def machine_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def machine_memory_bytes() -> int:
    from distributed.system import MEMORY_LIMIT  # total RAM, or the cgroup limit if lower

    return int(MEMORY_LIMIT)


@dataclass(frozen=True)
class ClusterPlan:
    """How the local cluster is built: workers (1 thread each) and memory per worker (bytes)."""

    n_workers: int
    memory_per_worker_bytes: int


def plan_local_cluster(n_studies: int, largest_estimate_bytes: int | None, *,
                       n_workers: int | None = None, memory_per_worker_bytes: int | None = None,
                       cores: int | None = None, memory_bytes: int | None = None) -> ClusterPlan:
    """Size a local cluster: one single-threaded worker per core, as many as memory allows.

    With ``n_workers`` unset: ``min(cores, studies, RAM // largest study estimate)``, at
    least 1. Memory per worker: ``memory_per_worker_bytes`` or RAM / workers.
    """
    cores = cores or machine_cores()
    memory_bytes = memory_bytes or machine_memory_bytes()
    if n_workers is None:
        n_workers = min(cores, max(1, n_studies))
        if largest_estimate_bytes:
            per = memory_per_worker_bytes or largest_estimate_bytes
            n_workers = min(n_workers, max(1, memory_bytes // per))
    if n_workers < 1:
        raise ValueError(f"n_workers must be at least 1, got {n_workers}")
    return ClusterPlan(int(n_workers), int(memory_per_worker_bytes or memory_bytes // n_workers))


@contextmanager
def dask_client(*, scheduler: str | None, plan: ClusterPlan | None, processes: bool = True) -> Iterator:
    """A ``distributed.Client``: to ``scheduler`` if given, else to a new local cluster per ``plan``."""
    import dask
    from distributed import Client, LocalCluster

    with _quiet_distributed_logs():
        if scheduler:
            try:
                client = Client(scheduler, timeout=30)
            except (OSError, ValueError, TypeError) as exc:  # unreachable, or not an address
                raise InputError(f"cannot reach the Dask scheduler at {scheduler} ({' '.join(str(exc).split())}); "
                                 "check the address (tcp://host:port) and that the scheduler runs") from None
            try:
                yield client
            finally:
                client.close()
            return
        if plan is None:
            raise ValueError("a local cluster needs a ClusterPlan")
        # A study that kills its worker (out of memory) fails at once instead of being
        # retried on the next worker, which it would kill as well.
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            cluster = LocalCluster(n_workers=plan.n_workers, threads_per_worker=1, processes=processes,
                                   memory_limit=plan.memory_per_worker_bytes if processes else None,
                                   # loopback only (processes=False talks in-process: no host)
                                   host="127.0.0.1" if processes else None, dashboard_address=None,
                                   # no dashboard; its HTTP routes on a free port, not 8787
                                   scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                                   silence_logs=logging.ERROR)
            client = Client(cluster)
            try:
                yield client
            finally:
                if isinstance(sys.exc_info()[1], KeyboardInterrupt) and \
                        not logging.getLogger().isEnabledFor(logging.DEBUG):
                    # Stopped by Ctrl-C: closing races the in-process workers' heartbeats, whose
                    # failures Dask logs as errors with a traceback ("Failed to communicate with
                    # scheduler during heartbeat"); the batch itself says what it stopped.
                    logging.getLogger("distributed").setLevel(logging.CRITICAL)
                client.close(timeout=10)
                cluster.close(timeout=10)


@contextmanager
def _quiet_distributed_logs() -> Iterator[None]:
    """Dask logs cluster start-up and shutdown at INFO; a batch shows only problems (unless --debug)."""
    log = logging.getLogger("distributed")
    level = log.level
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def worker_memory_limit_bytes(client) -> int | None:
    """The smallest memory limit among the cluster's workers (None when none is set)."""
    workers = client.scheduler_info().get("workers", {})
    limits = [int(w.get("memory_limit") or 0) for w in workers.values()]
    limits = [m for m in limits if m > 0]
    return min(limits) if limits else None
