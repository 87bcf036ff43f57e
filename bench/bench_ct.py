"""Benchmark: whole CT analysis of a 512 x 512 x N phantom against a naive baseline.

The baseline is what any script would do first: threshold at 130 HU and label the
connected components with ``scipy.ndimage.label``, on the same array, in the same
process. The ratio (analysis time / baseline time) is the figure to watch; absolute
seconds depend on the machine. Each size runs in a child process that only loads the
volume (saved beforehand as ``.npy``) and analyses it; its peak resident memory is
compared with the int16 volume. With ``--limit-gib G`` the child runs under an
address-space limit (``RLIMIT_AS``, like ``prlimit --as``) of G GiB: the issue asks for
1000 slices within 4 GiB. Threads follow ``CALCINOSIS_THREADS`` (see
:func:`calcinosis.threads.n_threads`).

Where the time went (512 x 512 x 400 trunk phantom, 2 cores). Session 1: 55 s, then 19.5 s.
Session 2: 7.0 s, 14x the baseline (per-label statistics from one radix sort of the dense
voxels, body parts on a 2.4 mm grid, h-maxima by ITK reconstruction, distances from edge
voxels, a bone's split in a worker thread). Session 3 (``python bench/bench_ct.py 100 400
1000 --limit-gib 4``, best of 2 analyses against best of 3 baselines): 400 slices 2.6-3.0 s =
5.5-5.7x (100 slices 8.0x: fixed costs; 1000 slices 6.0x, 31 ns/voxel against 29 at 400:
linear in the voxels), then 2.9 s = 6.4x (100: 8.7x, 1000: 7.0x) once the bone's blur-profile
split runs on thin slices too (it finds the deposit on a bone's flank that this phantom
had lost: 12 of 12 found now). Outputs otherwise identical to session 2's on this phantom
and the two real scans. What made it faster: the cavity computed only on the slices where findings are
read, with a scanline convex hull; region block features from strided sums; disk
erosion/dilation from shifted copies instead of distance transforms (body, internal air);
the internal-air closing skipped when no slice of the dilated mask has a hole; the
smoothed image computed only in the boxes and sampled slices that are read; labelling by
ITK (same numbering as cc3d), started right after the body is found; the bone split on the
structure's own box; the label map on ordinary pages (huge pages stalled the first lesion
writes); the noise estimate's slices eroded once for both estimates, with an exact bucket
median. What is left (CPU, one thread, 4.0-4.2 s in all): the spine's split 1.0 s
(scikit-image watershed 0.44 s and ITK h-maxima reconstruction 0.31 s on one connected
1.4 M-voxel solid: no exact way found to cut or split it; other libraries' versions were
slower or differ), and since the last change its blur-profile split 0.55 s (a 3-D
opening and in-plane distances on the spine's box), labelling 0.38 s, 111 small hollow-rib-piece splits 0.37 s, body 0.40
s, regions 0.19 s, noise 0.18 s. Both cores are busy from the body to the end of detection:
the 3x target needs a different split algorithm (or less CPU overall), not scheduling.
Peak memory: 4x the int16 volume + 68 MiB at 400 slices; 1000 slices run under the 4 GiB
limit (3.7x the volume).
Session 4 (same command, quiet machine): 400 slices 2.60-2.66 s = 5.2x (100 slices 7.5x,
1000 slices 6.1x; 25-29 ns/voxel at 400 and 28 at 1000: linear); peak 4x the volume + 55 MiB
at 400 slices, 1000 slices 3.5x the volume under 4 GiB. Outputs identical. What made it
faster: the bone split's 3 mm ball opening by shifted in-plane disks (anatomy/ball.py); its
blur profile read only near the bone's core and made in a second thread beside the
flooding; hollow rib pieces screened by exact rules before any flooding (0.38 -> 0.09 s);
labelling by cc3d into ordinary memory pages (0.40 -> 0.13 s: huge-page-advised arrays
stalled in the kernel's compaction); the regions' bone-free features made while detection
waits for the spine; the body's growth and opening on rows packed 64 pixels to a word
(anatomy/bitrows.py). What is left on the critical path (2 threads): body 0.38 s (nothing
can start before its crop), labelling 0.28 s, the spine's split ~1.4 s (scikit-image
watershed 0.45-0.53 s and ITK h-maxima 0.31 s of CPU on one connected 1.4 M-voxel solid, most
of it within 8 mm of its surface), measurement 0.2 s beside the regions.
Session 5: 400 slices 2.3-2.5 s = 4.8-5.3x (100 slices 7.1x, 1000 slices 5.3x; 23-24 ns/voxel),
same code speed (detection fixes only). Tried: labelling the dense voxels on find_body's box in
a worker beside find_body, then cutting the crop's components out (branch s5h1): outputs
identical, no wall gain (cc3d holds the GIL and slows find_body; ITK's labelling does not but
costs 3x the CPU), and the spine's split also waits for the main thread's noise chain (its
valley depth needs the smoothed noise), as long as labelling and bone preparation: from the
body mask to the end of detection both cores are busy, so 3x needs less CPU (~2.5 s in all
single-threaded, 3.3 s now). scipy's watershed_ift and ITK's watersheds were slower on the
spine's box than scikit-image's.
Session 7: 400 slices 2.96-3.04 s = 5.8-5.9x (100 slices 9.0x, 1000 slices 5.9x; 28-30
ns/voxel), the session-6 code the same day 2.86 s. The shoulder step (anatomy/shoulder.py,
dense deposits whose basin took in the bone beside them) looks at the spine's ~360 basins
in about 0.2 s of CPU: first 0.6 s, then cut by stopping at a core wider than a deposit (a
ridge of cortex), reading each level on the box of the level before (grown by 2 voxels)
and flooding a window round the core instead of the whole basin.
Session 8: 400 slices 3.02-3.20 s = 6.3-6.7x (100 slices 9.6x, 1000 slices 6.4x; 29-31
ns/voxel), the session-7 code the same day 2.79-3.03 s (a noisy machine: +-0.2 s between
runs). The raw-peak step (anatomy/raw_peak.py, small dense deposits whose valley the
smoothing filled) costs ~0.1 s of CPU on the spine, on the critical path: an exact h-maxima
of the raw HU took 0.3 s, so local maxima near soft tissue are screened on a small window
each (~4500 on this spine's surface come down to a few) before the exact test.
Session 11: 400 slices 2.55-2.72 s = 5.5-5.7x, unchanged. Real scans are slower per voxel
than this phantom (``bench/real_thin_slices.py`` prints the ratio): the real chest CT (5 mm)
1.42 -> 1.2 s (about 7x its baseline), its 3 mm stand-in 12.5 -> 8.9 s (about 50x), with
the same outputs: the touching-pieces merge looked at every pair of the hundreds of pieces
the bone split parts off real bone (583k pair tests -> 10k), and edt took bool masks by a
path 2-4 times slower than uint8 and serial.
Session 12: 400 slices 2.77-2.93 s = 5.9-6.0x (the session-11 code the same day 2.91 s).
``--bone-texture 0.3`` (textured bones, as real ones): 5.98-7.31 s = 12.7-15x (the session-11
code 6.74 s), peak memory 4x the volume + 60 MiB: the shoulder search over the textured spine's
~900 basins (26k small labellings, ``anatomy/shoulder.py``; its per-level part measured
without cc3d.statistics now) is the largest step. The phantom is now made in its own process:
a child's peak RSS counts the pages it shared with its parent at its start (2159 MiB
reported for the textured phantom before, 860 MiB true).
Session 13: 400 slices 2.62-3.47 s = 5.3-6.6x over a noisy day; at its end, alternating runs
gave 3.02-3.10 s = 5.6-6.1x, the session-12 code 3.02-3.36 s = 6.2-6.5x (the noise structure
read beside the noise estimate costs no measurable time). Why 3x is out of reach of
scheduling: at 400 slices the analysis uses 3.6-4.0 s of CPU in 2.6 s (1.4-1.5 cores; body
0.47 s and noise 0.26 s wall before anything else can start, detection 1.59 s wall on 2.2-2.5
s of CPU, regions and cavity 0.28 s): with both cores busy throughout it would still take 1.8
s (3.7x), so 3x needs detection's CPU cut by about 45 % (the spine's split: watershed 0.45 s
and h-maxima 0.33 s over the one 1.4 M-voxel solid, the shoulder search 0.3 s, the blur
profile 0.2 s). Real bone (``bench/real_thin_slices.py``): a second thread saves nothing
there (lung1 interpolate2.5: 13.5 s with 2 threads, 13.7 s with 1): the rib cage and spine
are one 0.96 M-voxel structure whose split takes 8 of the 14 s, in one thread. Its many
small dilations (6.8k ``ndimage.binary_dilation`` calls, 1.5 s of CPU) now use shifted
copies (``morphology.grow``): 13.7 -> 12.6 s single-threaded, outputs identical.

Session 15 (``python bench/bench_ct.py 100 400 1000 --limit-gib 4``): 100 slices 9.5x, 400
slices 2.86 s = 6.0x, 1000 slices 4.0x (its baseline 1.84 s, 3.8x the 400-slice one: the
int32 label array under the 4 GiB limit), 27-28 ns/voxel at 400 and 1000 (linear); peak 4x the
volume + 23 MiB at 400 slices, 1000 slices 3.6x the volume under 4 GiB. What the 3x target
would take, measured with ``--no-bone-split`` (a diagnostic: the split skipped, deposits touching
bone stay bone): 400 slices 1.75 s = 3.5x with 2 threads, 2.33 s = 4.5x on one (the whole
analysis: 2.76 s = 5.8x, 4.14 s = 8.3x on one thread). So even a free bone split would leave the
analysis above 3x: the rest (body 0.5 s of CPU before anything else can start, labelling, noise,
smoothing, bone preparation, measurement, regions) uses 2.3 s of CPU and overlaps poorly (1.3
cores), and the split adds 1.8 s of CPU (1.0 s of wall). Looked at again: the spine's one
watershed (3.4 M-voxel box, 1.4 M voxels of bone, 1244 distinct values) takes 0.57 s in
scikit-image; mahotas' ``cwatershed`` took 1.24 s, DIPlib's ``SeededWatershed`` 0.70-0.80 s
(and differs), so the library stays. scikit-image's watershed releases the GIL (two halves
of that box in two threads: 0.26-0.29 s), but cut along z its basins differ on 178-730 k of
the 1.4 M voxels (the phantom spine's basins run long along z): not the same split, not used.
The critical path (2 threads, timed per step): body 0.42 s; then labelling the dense voxels
and preparing the bones (to 0.90 s) beside the internal air and the noise estimates (also to
0.90 s); then the spine's split, 1.88 s in one thread (its blur profile beside it) while the
main thread, after the rib pieces and the regions' features, waits about a second; then the
measurement (0.29 s) beside the regions and cavity (0.18 s). So the split's own length is what
a second core could shorten, and nothing found splits it exactly.
Session 23 (helper h23f): the raw peaks' candidate screen (anatomy/raw_peak.py) no longer
waits for the pieces taken before it: screened with none taken (a superset, same order, the
taken ones skipped) in the blur profile's thread, which is idle for the last ~0.5 s of the
split. Per-step timeline (2 threads): split_bone 1.39 -> 1.30 s, the raw peaks 0.094 -> <0.01
s on its critical path; whole analysis best of 4 (same process, alternating old/new code)
2.38 -> 2.27 s; ``bench_ct.py 400`` 5.4-6.0x against the old code's 5.6-5.7x the same hour
(noise larger than the gain). One thread: unchanged (same code path). Outputs identical
(``compare_outputs.py``: phantom, lung1, head, lung2, abdomen). After it, the main thread
still waits ~0.4 s for the spine (rib pieces and region features done by ~1.75 s of 2.3 s).

Reading (``--read``): a 400-slice DICOM series and the same volume as ``.nii.gz``,
each read with :func:`calcinosis.io.read_volume` and with SimpleITK alone
(``ImageSeriesReader`` / ``ReadImage``), best of ``--repeat`` runs.

Usage::

    python bench/bench_ct.py                           # 400 slices
    python bench/bench_ct.py 100 400 1000 --limit-gib 4
    python bench/bench_ct.py --read                    # reading only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, resource, sys, time
limit = float(sys.argv[2])
if limit > 0:
    resource.setrlimit(resource.RLIMIT_AS, (int(limit * 2**30), int(limit * 2**30)))
import numpy as np
from scipy import ndimage as ndi
from calcinosis.volume import Volume
from calcinosis.pipeline import analyze
if sys.argv[4] == "1":  # --no-bone-split: what the rest of the analysis costs (a diagnostic)
    import calcinosis.detect.candidates as candidates
    from calcinosis.anatomy.bone import BoneSplit
    from calcinosis.anatomy.morphology import fill_holes_in_plane
    candidates.split_bone = lambda dense, *a, **k: BoneSplit(fill_holes_in_plane(dense), ())
arr = np.load(sys.argv[1])
vol = Volume(arr, (0.8, 0.8, 1.0))
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
# The analysis first: the process's peak memory is then the analysis's (the baseline's
# int32 label array would otherwise set it). Both are timed best of several runs: the
# first touch of freshly mapped memory makes single runs vary by 2-3x on this machine.
t0 = time.perf_counter(); a = analyze(vol); t_first = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
n_lesions = len(a.lesions)
del a
runs = [t_first]
for _ in range(int(sys.argv[3]) - 1):
    t0 = time.perf_counter(); a = analyze(vol); runs.append(time.perf_counter() - t0); del a
t_an = min(runs)
base = []
for _ in range(3):
    t0 = time.perf_counter(); lab, n = ndi.label(arr >= 130); base.append(time.perf_counter() - t0)
    del lab
print(json.dumps({"baseline_s": min(base), "analyze_s": t_an, "analyze_first_s": t_first, "baseline_first_s": base[0], "peak_rss_bytes": peak,
                  "rss_before_bytes": rss_before,
                  "lesions": n_lesions, "components_baseline": int(n)}))
"""


def make_array(n_slices: int, bone_texture: float = 0.0) -> np.ndarray:
    from calcinosis.phantom import make_ct_phantom

    ph = make_ct_phantom("trunk", seed=0, matrix=(512, 512), length_mm=n_slices * 1.0,
                         slice_thickness_mm=1.0, pixel_mm=0.8, keep_noiseless=False, bone_texture=bone_texture)
    return ph.volume.array


MAKER = r"""
import sys
import numpy as np
sys.path.insert(0, sys.argv[4])
from bench_ct import make_array
np.save(sys.argv[1], make_array(int(sys.argv[2]), float(sys.argv[3])))
"""


def run(n_slices: int, limit_gib: float = 0.0, repeat: int = 2, bone_texture: float = 0.0,
        no_bone_split: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vol.npy"
        # The phantom is made in a process of its own: Linux counts the pages a child shares
        # with its parent at its start in the child's peak RSS, so a parent that had made the
        # phantom (2 GB with textured bones) would set the child's peak.
        subprocess.run([sys.executable, "-c", MAKER, str(path), str(n_slices), str(bone_texture),
                        str(Path(__file__).resolve().parent)], check=True)
        arr = np.load(path, mmap_mode="r")
        shape, nbytes = arr.shape, arr.nbytes
        del arr
        out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(limit_gib), str(repeat),
                              "1" if no_bone_split else "0"],
                             capture_output=True, text=True)
    if out.returncode != 0:
        tail = out.stderr.strip().splitlines()[-1:] or ["?"]
        return {"shape": list(shape), "volume_bytes": int(nbytes), "failed": tail[0]}
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["shape"] = list(shape)
    res["volume_bytes"] = int(nbytes)
    res["ratio"] = res["analyze_s"] / res["baseline_s"]
    res["peak_over_volume"] = res["peak_rss_bytes"] / nbytes
    res["ns_per_voxel"] = res["analyze_s"] / np.prod(shape) * 1e9
    return res


def bench_read(n_slices: int, repeat: int) -> None:
    import SimpleITK as sitk

    from calcinosis.io import read_volume, write_dicom_series, write_volume
    from calcinosis.volume import Volume

    arr = make_array(n_slices)
    vol = Volume(arr, (0.8, 0.8, 1.0))
    with tempfile.TemporaryDirectory() as tmp:
        nii = write_volume(vol, Path(tmp) / "ct.nii.gz")
        dcm = Path(tmp) / "dicom"
        write_dicom_series(vol, dcm, patient_name="Bench^CT", patient_id="BENCH")
        del arr, vol

        def best(fn) -> float:
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            return min(times)

        def sitk_dicom():
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(dcm)))
            return sitk.GetArrayFromImage(reader.Execute())

        rows = [
            ("nii.gz", best(lambda: read_volume(nii)), best(lambda: sitk.GetArrayFromImage(sitk.ReadImage(str(nii))))),
            (f"DICOM {n_slices} files", best(lambda: read_volume(dcm)), best(sitk_dicom)),
        ]
    for name, ours, ref in rows:
        print(f"read {name}: calcinosis {ours:.2f} s, SimpleITK alone {ref:.2f} s, ratio {ours / ref:.2f}x")


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("slices", nargs="*", type=int, help="numbers of slices (default 400)")
    ap.add_argument("--limit-gib", type=float, default=0.0,
                    help="address-space limit (GiB) for the 1000-slice run (others unlimited)")
    ap.add_argument("--read", action="store_true", help="benchmark reading (400-slice DICOM and .nii.gz)")
    ap.add_argument("--repeat", type=int, default=2, help="runs of the analysis (best taken); reading: runs of each reader (at least 4)")
    ap.add_argument("--bone-texture", type=float, default=0.0,
                    help="trabecular texture of the phantom's bones (0..1; real bone is textured: its "
                         "many maxima cost the bone split time; 0 is the issue's benchmark)")
    ap.add_argument("--no-bone-split", action="store_true",
                    help="diagnostic: skip the bone split (deposits touching bone stay bone), to see what "
                         "the rest of the analysis costs")
    args = ap.parse_args(argv)
    print(f"cores: {os.cpu_count()}, CALCINOSIS_THREADS={os.environ.get('CALCINOSIS_THREADS', '')}")
    if args.read:
        bench_read(400, max(args.repeat, 4))  # reads vary more than the analysis
        if not args.slices:
            return
    for n in args.slices or [400]:
        limit = args.limit_gib if n >= 1000 else 0.0
        r = run(n, limit, args.repeat, args.bone_texture, args.no_bone_split)
        if "failed" in r:
            print(f"512x512x{n}: FAILED under {limit or 'no'} GiB limit: {r['failed']}")
            continue
        print(f"512x512x{n}{f' (bone texture {args.bone_texture:g})' if args.bone_texture else ''}"
              f"{' (no bone split)' if args.no_bone_split else ''}: baseline {r['baseline_s']:.2f} s, analyze {r['analyze_s']:.2f} s, "
              f"ratio {r['ratio']:.1f}x, {r['ns_per_voxel']:.0f} ns/voxel; peak RSS "
              f"{r['peak_rss_bytes'] / 2**20:.0f} MiB = {r['peak_over_volume']:.1f}x the int16 volume "
              f"({r['volume_bytes'] / 2**20:.0f} MiB) = 4x the volume "
              f"{(r['peak_rss_bytes'] - 4 * r['volume_bytes']) / 2**20:+.0f} MiB"
              f"{f' under a {limit:g} GiB limit' if limit else ''}; "
              f"{r['lesions']} lesions (first runs: analyze {r['analyze_first_s']:.2f} s, "
              f"baseline {r['baseline_first_s']:.2f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
