"""Did a change move any output? Dump the analysis of reference scans, and compare two dumps.

A change meant to keep results (a speed-up, a refactor) must leave every lesion, exclusion and
label the same; a change meant to improve phantoms should be seen on real scans before it
lands. This dumps, per scan, the lesion rows, the exclusions, the label map's md5, the noise,
the facts and the warnings, and compares two such folders field by field. Not part of the test
run.

Scans: ``phantom`` (the 400-slice trunk phantom of ``bench_ct.py``, built once and cached in
the output folder's parent as ``phantom400.npy``), ``lung1`` (the real chest CT in
``../shared/data``), ``head`` (the InVesalius example skull CT, when installed: see
``tests/ct/test_head_ct.py``), ``lung2`` (a second real chest CT, 512 x 512 x 61 at 5 mm, heart to
neck, from the same source distribution of pyradiomics 3.1.0 as lung1: ``data/lung2_image.nrrd``
inside its ``.tar.gz`` on PyPI; not in the repository: give its path in ``CALCINOSIS_LUNG2``),
``abdomen`` (a real upper-abdominal DICOM series, 3 mm slices every 2 mm, from TotalSegmentator's
source distribution on PyPI, fetched by ``.ci/setup-realct.sh``: see ``tests/ct/test_real_abdomen.py``). A
scan that is not available is skipped with a line saying so.

Usage::

    python bench/compare_outputs.py dump OUT_BEFORE            # on the old code
    python bench/compare_outputs.py dump OUT_AFTER             # on the new code
    python bench/compare_outputs.py compare OUT_BEFORE OUT_AFTER

To dump another source tree from one checkout: ``PYTHONPATH=/path/to/old/src python
bench/compare_outputs.py dump OUT_BEFORE``. ``compare`` exits 1 when anything differs, 2 when
a folder is missing or holds no dump.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCANS = ("phantom", "lung1", "head", "lung2", "abdomen")


def _volume(name: str, cache: Path):
    from calcinosis.volume import Volume

    if name == "phantom":
        path = cache / "phantom400.npy"
        if not path.exists():
            from calcinosis.phantom import make_ct_phantom

            ph = make_ct_phantom("trunk", seed=0, matrix=(512, 512), length_mm=400.0, slice_thickness_mm=1.0,
                                 pixel_mm=0.8, keep_noiseless=False)
            np.save(path, ph.volume.array)
        return Volume(np.load(path), (0.8, 0.8, 1.0))
    if name in ("lung1", "lung2"):
        if name == "lung1":
            path = ROOT.parent / "shared" / "data" / "real-ct" / "chest-ct-lung1.nrrd"
        else:
            path = Path(os.environ.get("CALCINOSIS_LUNG2", "") or "/nonexistent")
        if not path.is_file():
            return None
        from calcinosis.io import read_volume

        return read_volume(path)
    sys.path.insert(0, str(ROOT / "tests" / "ct"))
    if name == "abdomen":
        from test_real_abdomen import SERIES

        if not SERIES.is_dir():
            return None
        from calcinosis.io import read_volume

        return read_volume(SERIES)
    from test_head_ct import CRANIUM, read_inv3

    return read_inv3(CRANIUM) if CRANIUM.exists() else None


def dump(out: Path, scans) -> None:
    from calcinosis.pipeline import analyze

    out.mkdir(parents=True, exist_ok=True)
    for name in scans:
        vol = _volume(name, out.parent)
        if vol is None:
            print(f"{name}: not available here, skipped")
            continue
        a = analyze(vol)
        record = {"rows": [lesion.row() for lesion in a.lesions],
                  "excluded": [repr(e) for e in a.detection.excluded],
                  "labels_md5": hashlib.md5(np.ascontiguousarray(a.labels)).hexdigest(),
                  "noise": a.noise_hu, "facts": repr(a.facts), "warnings": list(a.warnings)}
        (out / f"{name}.json").write_text(json.dumps(record, default=repr, indent=0))
        print(f"{name}: {len(a.lesions)} lesions, {a.run_time_s:.2f} s")


def compare(before: Path, after: Path) -> int:
    if not before.is_dir() or not after.is_dir():
        print("compare needs two folders written by 'dump'")
        return 2
    files = sorted(before.glob("*.json"))
    if not files:
        print(f"{before} holds no dump")
        return 2
    same = True
    for f in files:
        g = after / f.name
        if not g.exists():
            print(f"{f.stem}: missing in {after}")
            same = False
            continue
        a, b = json.loads(f.read_text()), json.loads(g.read_text())
        for key in a:
            if a[key] == b.get(key):
                continue
            same = False
            if key != "rows":
                print(f"{f.stem}: {key} differs")
                continue
            print(f"{f.stem}: lesions {len(a[key])} -> {len(b[key])}")
            added = sorted({k for y in b[key] for k in y} - {k for x in a[key] for k in x})
            if added:
                print(f"  new columns: {', '.join(added)}")
            for x, y in zip(a[key], b[key]):
                moved = {k: (x[k], y.get(k)) for k in x if x[k] != y.get(k)}
                if moved:
                    print(f"  lesion {x['lesion_id']}: {moved}")
    print("same" if same else "DIFFERENT")
    return 0 if same else 1


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("out", type=Path)
    d.add_argument("--scans", default=",".join(SCANS), help="comma-separated: " + ", ".join(SCANS))
    c = sub.add_parser("compare")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "dump":
        dump(args.out, [s for s in args.scans.split(",") if s])
        return 0
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
