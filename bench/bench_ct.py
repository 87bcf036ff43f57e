"""Benchmark: whole CT analysis of a 512 x 512 x N phantom against a naive baseline.

The baseline is what any script would do first: threshold at 130 HU and label the
connected components with ``scipy.ndimage.label``, on the same array, in the same
process. The ratio (analysis time / baseline time) is the figure to watch; absolute
seconds depend on the machine. Peak memory is the resident-set peak of a child
process that only loads the volume (saved beforehand) and analyses it, compared with
the size of the int16 volume.

Usage::

    python bench/bench_ct.py              # 400 slices
    python bench/bench_ct.py 100 400 1000 # several sizes
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, resource, sys, time
import numpy as np
from scipy import ndimage as ndi
from calcinosis.volume import Volume
from calcinosis.pipeline import analyze
arr = np.load(sys.argv[1], mmap_mode=None)
vol = Volume(arr, (0.8, 0.8, 1.0))
t0 = time.perf_counter(); lab, n = ndi.label(arr >= 130); t_base = time.perf_counter() - t0
del lab
t0 = time.perf_counter(); a = analyze(vol); t_an = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"baseline_s": t_base, "analyze_s": t_an, "peak_rss_bytes": peak,
                  "lesions": len(a.lesions), "components_baseline": int(n)}))
"""


def run(n_slices: int) -> dict:
    from calcinosis.phantom import make_ct_phantom

    ph = make_ct_phantom("trunk", seed=0, matrix=(512, 512), length_mm=n_slices * 1.0,
                         slice_thickness_mm=1.0, pixel_mm=0.8, keep_noiseless=False)
    arr = ph.volume.array
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vol.npy"
        np.save(path, arr)
        del ph
        out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True,
                             text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["shape"] = list(arr.shape)
    res["volume_bytes"] = int(arr.nbytes)
    res["ratio"] = res["analyze_s"] / res["baseline_s"]
    res["peak_over_volume"] = res["peak_rss_bytes"] / arr.nbytes
    return res


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [400]
    print(f"cores: {os.cpu_count()}")
    for n in sizes:
        r = run(n)
        print(f"512x512x{n}: baseline {r['baseline_s']:.2f} s, analyze {r['analyze_s']:.2f} s, "
              f"ratio {r['ratio']:.1f}x; peak RSS {r['peak_rss_bytes'] / 2**20:.0f} MiB = "
              f"{r['peak_over_volume']:.1f}x the int16 volume ({r['volume_bytes'] / 2**20:.0f} MiB); "
              f"{r['lesions']} lesions")


if __name__ == "__main__":
    main(sys.argv[1:])
