"""Accuracy sweep of the 2-D paths (radiograph, ultrasound) against the phantoms' exact truth.

For each phantom it matches findings to the true deposits and counts found / missed /
false; for the found ones it compares the area (radiograph: projected footprint, mm²) or
width and depth (ultrasound: mm) and the centre's position with the truth, and for the
radiograph it scores the image as the analysis does and as the truth would (the true
footprints through :func:`calcinosis.radiograph.score.score_areas`), so the score's error
can be read off. Over-bone deposits of the radiograph are counted apart (they are harder).
Optionally the real images that pydicom-data ships, which show no calcinosis: any finding
there is a false one. Measured, not asserted; not part of the test run (a few minutes).

Usage::

    python bench/bench_2d_accuracy.py                  # both paths, default sweep
    python bench/bench_2d_accuracy.py --path radiograph --seeds 0-3
    python bench/bench_2d_accuracy.py --path ultrasound --seeds 0-9
    python bench/bench_2d_accuracy.py --real            # the pydicom-data images only
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "ultrasound"))
from us_truth import match_focus  # noqa: E402

from calcinosis.phantom.radiograph import make_radiograph_phantom
from calcinosis.phantom.ultrasound import make_us_phantom
from calcinosis.radiograph import analyze_radiograph, radiograph_from_array
from calcinosis.radiograph.compare import compare_summaries
from calcinosis.radiograph.score import classify_change, score_areas
from calcinosis.ultrasound.config import UltrasoundConfig
from calcinosis.ultrasound.detect import detect_foci


def _seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


# --------------------------------------------------------------------------- radiograph
def rg_match(truth, found, spacing_mm):
    """Truth id -> finding: the nearest finding within max(2 mm, radius + 1 mm) of the true centre."""
    out, used = {}, set()
    for t in sorted(truth, key=lambda t: -t.diameter_mm):
        best = None
        for d in found:
            if d.deposit_id in used:
                continue
            dist = np.hypot(d.row_px - t.row_px, d.col_px - t.col_px) * spacing_mm
            if dist < max(2.0, t.diameter_mm / 2 + 1) and (best is None or dist < best[0]):
                best = (dist, d)
        if best:
            out[t.deposit_id] = best[1]
            used.add(best[1].deposit_id)
    return out


def rg_run(kind, seed, spacing, photons, scatter, size=1.0, density=1.0):
    ph = make_radiograph_phantom(kind, seed=seed, pixel_spacing_mm=spacing, photons_per_pixel=photons,
                                 scatter_fraction=scatter, deposit_scale=size, density_scale=density)
    t0 = time.perf_counter()
    res = analyze_radiograph(radiograph_from_array(ph.image, ph.pixel_spacing_mm))
    secs = time.perf_counter() - t0
    m = rg_match(ph.deposits, res.deposits, spacing)
    rows = []
    for t in ph.deposits:
        d = m.get(t.deposit_id)
        rows.append(dict(t=t, d=d, err_mm=None if d is None else float(np.hypot(d.y_mm - t.y_mm, d.x_mm - t.x_mm)),
                         area_ratio=None if d is None else d.area_mm2 / t.footprint_area_mm2))
    matched = {d.deposit_id for d in m.values()}
    false = [d for d in res.deposits if d.deposit_id not in matched]
    truth_score = sum(a["score"] for a in score_areas([("x", t.footprint_area_mm2, None) for t in ph.deposits]).values())
    found_score = sum(a["score"] for a in score_areas([("x", d.area_mm2, d.relative_density) for d in res.deposits]).values())
    return dict(rows=rows, false=false, secs=secs, summary=res.summary, truth_area=sum(t.footprint_area_mm2 for t in ph.deposits),
                found_area=res.summary["totals"]["total_area_mm2"], truth_score=truth_score,
                score=res.summary["score"]["image_score"], one_area_score=found_score)


def sweep_radiograph(seeds, verbose):
    configs = []
    for kind in ("hand", "elbow", "thigh"):
        for seed in seeds:
            configs.append((kind, seed, 0.25, 8000.0, 0.12))
        configs.append((kind, seeds[0], 0.15, 8000.0, 0.12))  # finer pixels
        configs.append((kind, seeds[0], 0.4, 8000.0, 0.12))  # coarser pixels
        configs.append((kind, seeds[0], 0.25, 2000.0, 0.12))  # 4x the quantum noise variance
        configs.append((kind, seeds[0], 0.25, 8000.0, 0.3))  # more scatter
        configs.append((kind, seeds[0], 0.25, 8000.0, 0.12, 0.7, 1.0))  # smaller deposits
        configs.append((kind, seeds[0], 0.25, 8000.0, 0.12, 1.0, 0.5))  # half the mineral
    print("radiograph: kind seed spacing photons scatter [size density] | soft found/total  bone found/total  false | "
          "area ratio med [min-max] (>=2 mm, soft) | pos err med/max mm | total area truth/found | score truth/found | s")
    agg = dict(sf=0, st=0, bf=0, bt=0, false=0, ratios=[], errs=[])
    for cfg in configs:
        r = rg_run(*cfg)
        soft = [x for x in r["rows"] if not x["t"].over_bone and x["t"].diameter_mm >= 2.0]
        bone = [x for x in r["rows"] if x["t"].over_bone and x["t"].diameter_mm >= 2.0]
        sf = sum(x["d"] is not None for x in soft)
        bf = sum(x["d"] is not None for x in bone)
        ratios = [x["area_ratio"] for x in soft if x["d"] is not None]
        errs = [x["err_mm"] for x in r["rows"] if x["d"] is not None]
        agg["sf"] += sf
        agg["st"] += len(soft)
        agg["bf"] += bf
        agg["bt"] += len(bone)
        agg["false"] += len(r["false"])
        agg["ratios"] += ratios
        agg["errs"] += errs
        rq = f"{np.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]" if ratios else "-"
        eq = f"{np.median(errs):.2f}/{max(errs):.2f}" if errs else "-"
        extra = f" x{cfg[5]:.1f} x{cfg[6]:.1f}" if len(cfg) > 5 else ""
        print(f"  {cfg[0]:5s} {cfg[1]:2d} {cfg[2]:.2f} {cfg[3]:6.0f} {cfg[4]:.2f}{extra} | soft {sf}/{len(soft)}  bone {bf}/{len(bone)}"
              f"  false {len(r['false'])} | {rq} | {eq} | {r['truth_area']:.0f}/{r['found_area']:.0f}"
              f" | {r['truth_score']}/{r['score']} | {r['secs']:.1f}")
        if verbose:
            for x in r["rows"]:
                t, d = x["t"], x["d"]
                what = "MISS" if d is None else f"area {d.area_mm2:.1f} ({x['area_ratio']:.2f}) err {x['err_mm']:.2f} mm rel {d.relative_density}"
                print(f"      #{t.deposit_id:2d} {t.area:8s} d={t.diameter_mm:.1f} ha={t.ha_fraction:.2f} "
                      f"{'bone' if t.over_bone else 'soft'} true {t.footprint_area_mm2:.1f} mm2: {what}")
            for d in r["false"]:
                print(f"      FALSE at x={d.x_mm} y={d.y_mm} mm area {d.area_mm2} over_bone={d.over_bone} z={d.detection_z}")
    print(f"radiograph total: soft {agg['sf']}/{agg['st']}  bone {agg['bf']}/{agg['bt']}  false {agg['false']}  "
          f"area ratio median {np.median(agg['ratios']):.2f}  position error median {np.median(agg['errs']):.2f} mm "
          f"(95th pct {np.percentile(agg['errs'], 95):.2f})")


def sweep_compare(seeds):
    """radiograph-compare on phantom pairs: new noise, deposits grown or shrunk by a known factor."""
    print("radiograph-compare: kind follow-up | true area change -> status | measured area change -> status | score")
    for kind in ("hand", "elbow", "thigh"):
        base = rg_run(kind, seeds[0], 0.25, 8000.0, 0.12)
        for size in (1.0, 1.1, 1.2, 0.9, 0.85):
            follow = rg_run(kind, seeds[-1] + 1, 0.25, 8000.0, 0.12, size)
            truth = 100 * (size**2 - 1)
            cmp = compare_summaries(base["summary"], follow["summary"])
            area = cmp["total_area_mm2"]
            print(f"  {kind:5s} seed {seeds[-1] + 1} size x{size:.2f} | {truth:+.0f} % -> "
                  f"{classify_change(1.0, size**2)} | {area['change_percent']:+.1f} % -> {area['status']} | "
                  f"{cmp['score']['before']} -> {cmp['score']['after']} {cmp['score']['status']}")


# --------------------------------------------------------------------------- ultrasound


def us_run(seed, pixel_mm, widths, strengths, n, depth_mm, depths=None, gain=0):
    ph = make_us_phantom(seed=seed, n_deposits=n, widths_mm=widths, shadow_strengths=strengths,
                         pixel_mm=pixel_mm, depth_mm=depth_mm, depths_mm=depths)
    image = np.clip(ph.image.astype(np.float32) + gain, 0, 255)  # gain: a grey offset on the log scale
    foci, skin = detect_foci(image, np.ones(ph.image.shape, bool), pixel_mm, pixel_mm, UltrasoundConfig())
    matched, false = {}, []
    for f in foci:
        d = match_focus(f, ph.deposits, pixel_mm)
        if d is None or d.deposit_id in matched:
            false.append(f)
        else:
            matched[d.deposit_id] = f
    return ph, matched, false, skin


def sweep_ultrasound(seeds, verbose):
    configs = []
    for seed in seeds:
        configs.append(("default", seed, 0.1, None, None, 4, 40.0))
    for w in (1.5, 2.0, 3.0, 6.0, 10.0):
        configs.append((f"width {w}", seeds[0], 0.1, [w] * 3, [0.8] * 3, 3, 40.0))
    for s in (0.3, 0.45, 0.6, 0.9):
        configs.append((f"shadow {s}", seeds[0], 0.1, [4.0] * 3, [s] * 3, 3, 40.0))
    for p in (0.05, 0.2, 0.3):
        configs.append((f"pixel {p}", seeds[0], p, [3.0, 5.0, 7.0], [0.8] * 3, 3, 40.0))
    configs.append(("depth 25", seeds[0], 0.1, [3.0, 5.0, 7.0], [0.8] * 3, 3, 25.0))
    configs.append(("depth 60", seeds[0], 0.1, [3.0, 5.0, 7.0], [0.8] * 3, 3, 60.0))
    for seed in seeds:
        configs.append(("dermis", seed, 0.1, [2.5, 4.0, 6.0], [0.8] * 3, 3, 40.0, [0.6, 0.9, 1.2]))
    for gain in (-40, -20, 20, 40):
        configs.append((f"gain {gain:+d}", seeds[0], 0.1, None, None, 4, 40.0, None, gain))
    for seed in seeds:
        configs.append(("empty", seed, 0.1, None, None, 0, 40.0))
        configs.append(("empty -40", seed, 0.1, None, None, 0, 40.0, None, -40))
    print("ultrasound: case seed | found/total false | width ratio med [min-max] | depth err med/max mm | "
          "centre err med/max mm | shadow strength true->measured")
    tot = dict(found=0, total=0, false=0, wr=[], de=[], ce=[])
    for name, seed, p, widths, strengths, n, depth, *more in configs:
        ph, matched, false, _ = us_run(seed, p, widths, strengths, n, depth, *more)
        wr, de, ce, sh = [], [], [], []
        for d in ph.deposits:
            f = matched.get(d.deposit_id)
            if f is None:
                continue
            wr.append(f.width_mm / d.width_mm)
            de.append(f.depth_mm - d.depth_mm)
            ce.append(float(np.hypot(f.col - d.x_px, f.row - d.y_px)) * p)
            sh.append(f"{d.shadow_strength:.2f}->{1 - f.shadow_ratio:.2f}")
        total = len(ph.deposits)
        tot["found"] += len(matched)
        tot["total"] += total
        tot["false"] += len(false)
        tot["wr"] += wr
        tot["de"] += de
        tot["ce"] += ce
        wq = f"{np.median(wr):.2f} [{min(wr):.2f}-{max(wr):.2f}]" if wr else "-"
        dq = f"{np.median(de):+.2f}/{max(de, key=abs):+.2f}" if de else "-"
        cq = f"{np.median(ce):.2f}/{max(ce):.2f}" if ce else "-"
        print(f"  {name:12s} {seed:2d} | {len(matched)}/{total} false {len(false)} | {wq} | {dq} | {cq} | {' '.join(sh)}")
        if verbose:
            for d in ph.deposits:
                if d.deposit_id not in matched:
                    print(f"      MISS #{d.deposit_id} w={d.width_mm:.1f} t={d.thickness_mm:.1f} depth={d.depth_mm:.1f} "
                          f"shadow={d.shadow_strength:.2f}")
            for f in false:
                print(f"      FALSE at row {f.row:.0f} col {f.col:.0f} width {f.width_mm:.1f} ratio {f.shadow_ratio:.2f}")
    print(f"ultrasound total: found {tot['found']}/{tot['total']} false {tot['false']}  width ratio median "
          f"{np.median(tot['wr']):.2f}  depth error median {np.median(tot['de']):+.2f} mm "
          f"(|max| {max(map(abs, tot['de'])):.2f})  centre error median {np.median(tot['ce']):.2f} mm")


# --------------------------------------------------------------------------- real images
def real_images():
    """The pydicom-data images: none shows calcinosis, so every finding is a false one."""
    from pydicom.data import get_testdata_file

    from calcinosis.radiograph import read_radiograph
    from calcinosis.ultrasound import analyze_ultrasound, read_ultrasound

    print("real images (no calcinosis expected):")
    from calcinosis.errors import InputError

    for name in ("RG1_UNCR.dcm", "RG3_UNCR.dcm"):
        rg = read_radiograph(get_testdata_file(name, download=False))
        try:
            res = analyze_radiograph(rg)
        except InputError as exc:
            print(f"  {name}: refused: {exc}")
            continue
        print(f"  {name}: {len(res.deposits)} findings, score {res.summary['score']['image_score']}, "
              f"spacing {rg.pixel_spacing_mm}, area {res.summary['anatomical_area']}")
        for d in res.deposits:
            print(f"      row {d.row_px:.0f} col {d.col_px:.0f} area {d.area_px} px over_bone={d.over_bone} "
                  f"z={d.detection_z} rel={d.relative_density}")
    for name in ("US1_UNCR.dcm", "gdcm-US-ALOKA-16.dcm"):
        res = analyze_ultrasound(read_ultrasound(get_testdata_file(name, download=False)))
        print(f"  {name}: {len(res.deposits)} findings")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--path", choices=["radiograph", "ultrasound", "both"], default="both")
    ap.add_argument("--seeds", default="0-2")
    ap.add_argument("--real", action="store_true", help="only the real pydicom-data images")
    ap.add_argument("-v", "--verbose", action="store_true", help="each deposit and each false finding")
    args = ap.parse_args()
    if args.real:
        real_images()
        return
    seeds = _seeds(args.seeds)
    if args.path in ("ultrasound", "both"):
        sweep_ultrasound(seeds, args.verbose)
    if args.path in ("radiograph", "both"):
        sweep_radiograph(seeds, args.verbose)
        sweep_compare(seeds)
    if args.path == "both":
        real_images()


if __name__ == "__main__":
    main()
