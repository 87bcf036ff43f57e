"""Benchmark ``calcinosis batch``: studies per minute with 1 and 2 local Dask workers.

Writes N small thigh phantoms (NIfTI) into a temporary folder, runs a fresh batch
over them with a local process cluster of 1 worker, then of 2 workers (each run
into its own output folder and registry, so nothing is skipped), and prints the
throughput and the speed-up. Cluster start-up is included: it is what a user waits for.

Usage: python bench/bench_batch.py [--studies 8] [--length-mm 40] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=8)
    ap.add_argument("--length-mm", type=float, default=40.0)
    ap.add_argument("--pixel-mm", type=float, default=1.0)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()

    from calcinosis.cohort import BatchSettings, run_batch
    from calcinosis.io import write_volume
    from calcinosis.phantom import make_ct_phantom

    with tempfile.TemporaryDirectory(prefix="calcinosis-bench-") as tmp:
        root = Path(tmp) / "studies"
        shape = None
        for k in range(args.studies):
            ph = make_ct_phantom("thighs", seed=100 + k, length_mm=args.length_mm, pixel_mm=args.pixel_mm)
            write_volume(ph.volume, root / f"patient{k:03d}" / "ct.nii.gz")
            shape = ph.volume.shape
        print(f"{args.studies} thigh phantoms of {shape[0]}x{shape[1]}x{shape[2]} voxels (z, y, x)")
        rates = {}
        for n in args.workers:
            t0 = time.perf_counter()
            report = run_batch(root, Path(tmp) / f"out-{n}", settings=BatchSettings(n_workers=n))
            elapsed = time.perf_counter() - t0
            if report.failed:
                raise SystemExit(f"studies failed: {report.failed}")
            rates[n] = len(report.done) / elapsed * 60.0
            print(f"{n} worker(s): {len(report.done)} studies in {elapsed:.1f} s = {rates[n]:.1f} studies/min")
        base = rates.get(args.workers[0])
        for n in args.workers[1:]:
            print(f"speed-up {n} vs {args.workers[0]} worker(s): {rates[n] / base:.2f}x")


if __name__ == "__main__":
    main()
