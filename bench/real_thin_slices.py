"""Specificity on real bone at thin-slice spacings: what the bone split makes of real bones.

The bone-split steps (valley, shoulder, blur profile, plateau, raw peak) run only on slices
of 3.5 mm or less, and the one real trunk CT we may use (``../shared/data/real-ct/
chest-ct-lung1.nrrd``) has 5 mm slices, so no real scan exercises them. Its README says the
patient has no soft-tissue calcinosis: a correct analysis reports no cutaneous,
subcutaneous or intramuscular lesion (its aortic plaques are vascular, its calcified costal
cartilage and ribs skeletal). This makes two stand-ins for a thinner scan of it, each with a
flaw, and counts the lesions by compartment; the target for every stand-in is 0 cutaneous,
subcutaneous, intramuscular and juxta-osseous lesions.

- ``relabel``: the same 48 real slices with the slice spacing written as 3.0 or 2.5 mm (no
  voxel changes; the anatomy is squashed along z, and the ribs stay cut into pieces as
  5 mm slices cut them, which a real 3 mm scan would not do).
- ``interpolate``: the slices linearly interpolated to 2.5 mm (every other slice a blend of
  two real ones: an oblique rib shows as two half-dense copies).

Two switches tell where the findings come from (they change the analysis in this process
only): ``--rib-rule-always`` excludes rib-cage pieces on thin slices too (as on slices over
3.5 mm: the stand-ins' ribs stay cut into pieces), ``--no-bone-split`` drops the deposits split
off large bones (:func:`calcinosis.anatomy.bone.split_bone`). Session 9, relabel3: 253 findings
where the target is 0; with the first switch 170; with both 2. Session 11: the pieces the split
parts off real bone are often rods and plates (process tips, rib necks, vertebral rims; phantom
deposits are blobs), now taken back as bone (``BONE_PIECE_MIN_ELONGATION`` in
:mod:`calcinosis.detect.trunk`, in-plane, from 40 voxels): lung1 relabel3 245 -> 103,
interpolate2.5 231 -> 78; with ``--scan`` lung2 277 -> 116 and 247 -> 76. Session 13: the
raw-HU rules take one voxel's noise SD where the 5 x 5 residual understates correlated noise
(real scans): lung1 80 -> 77, 71 -> 67; lung2 102 -> 99, 73 -> 67.

Not part of the test run (about 20 s a stand-in). Usage::

    python bench/real_thin_slices.py [--modes relabel3,relabel2.5,interpolate2.5]
    python bench/real_thin_slices.py --modes relabel3 --rib-rule-always --no-bone-split
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
LUNG1 = ROOT.parent / "shared" / "data" / "real-ct" / "chest-ct-lung1.nrrd"
TARGET_ZERO = ("cutaneous", "subcutaneous", "intramuscular", "juxta_osseous")


def stand_in(volume, mode: str):
    """The stand-in ``mode`` (``relabelMM`` or ``interpolateMM``) of a real volume."""
    from calcinosis.volume import Volume

    sx, sy, sz = volume.spacing
    if mode.startswith("relabel"):
        return Volume(volume.array, (sx, sy, float(mode[len("relabel"):])), volume.origin, volume.direction,
                      volume.metadata)
    if mode.startswith("interpolate"):
        dz = float(mode[len("interpolate"):])
        a = volume.array.astype(np.float32)
        zs = np.arange(0.0, (a.shape[0] - 1) * sz + 1e-6, dz) / sz
        i0 = np.floor(zs).astype(int)
        i1 = np.minimum(i0 + 1, a.shape[0] - 1)
        w = (zs - i0)[:, None, None]
        arr = np.rint(a[i0] * (1 - w) + a[i1] * w).astype(np.int16)
        return Volume(arr, (sx, sy, dz), volume.origin, volume.direction, volume.metadata)
    raise SystemExit(f"unknown mode {mode!r}: relabelMM or interpolateMM, e.g. relabel3")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="relabel3,relabel2.5,interpolate2.5")
    parser.add_argument("--rib-rule-always", action="store_true",
                        help="exclude rib-cage pieces on thin slices too (diagnostic)")
    parser.add_argument("--no-bone-split", action="store_true",
                        help="drop the deposits split off large bones (diagnostic)")
    parser.add_argument("--scan", type=Path, default=LUNG1,
                        help="another real CT with 5 mm slices and no calcinosis (e.g. pyradiomics' lung2: "
                             "see bench/compare_outputs.py)")
    args = parser.parse_args(argv)
    if args.rib_rule_always:
        import calcinosis.detect.trunk as trunk

        trunk.THICK_SLICE_MM = 0.0
    if args.no_bone_split:
        import calcinosis.detect.candidates as candidates
        from calcinosis.anatomy.bone import BoneSplit

        split = candidates.split_bone
        candidates.split_bone = lambda *a, **k: BoneSplit(split(*a, **k).bone, ())
    if not args.scan.is_file():
        print(f"real chest CT not found at {args.scan}", file=sys.stderr)
        return 2
    from calcinosis.io import read_volume
    from calcinosis.pipeline import analyze

    real = read_volume(args.scan)
    for mode in ["original"] + [m for m in args.modes.split(",") if m]:
        vol = real if mode == "original" else stand_in(real, mode)
        # Time: the analysis against the naive baseline (threshold + scipy.ndimage.label of the
        # same array), as bench/bench_ct.py times it on phantoms.
        start = time.perf_counter()
        ndi.label(vol.array >= 130)
        baseline = time.perf_counter() - start
        start = time.perf_counter()
        result = analyze(vol)
        seconds = time.perf_counter() - start
        counts = Counter(lesion.compartment for lesion in result.lesions)
        wrong = sum(counts[c] for c in TARGET_ZERO)
        print(f"{mode:15s} slices {vol.shape[0]:3d} x {vol.spacing[2]:.1f} mm: {len(result.lesions)} lesions, "
              f"{wrong} where the target is 0 ({', '.join(f'{c} {counts[c]}' for c in TARGET_ZERO)}); "
              f"others: {', '.join(f'{k} {v}' for k, v in sorted(counts.items()) if k not in TARGET_ZERO)}; "
              f"{seconds:.2f} s = {seconds / baseline:.0f}x the baseline ({baseline:.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
