"""Semi-quantitative radiographic calcinosis score and the 25 % change rule.

Modelled on the Scleroderma Clinical Trials Consortium radiographic score for
calcinosis of the hands in systemic sclerosis (Chung L et al., Arthritis Care
Res 2015;67:425-430; change over one year: Valenzuela A et al., Semin
Arthritis Rheum 2022), which rates each anatomical area for the extent
(area coverage) and density of calcinosis and sums over areas. This is an
*automatic approximation* of that idea, not the validated reader score:

* **extent grade** of an anatomical area, from its total deposit area:
  0 = none, 1 = < 10 mm², 2 = 10-50 mm², 3 = 50-150 mm², 4 = 150-400 mm²,
  5 = >= 400 mm²;
* **density grade** of an area, that of its densest deposit; a deposit's grade
  comes from its peak contrast relative to nearby cortical bone: 1 = faint/cloudy
  (< 0.5), 2 = dense/solid (>= 0.5); 2 when no bone is near to compare with;
* **location**: each anatomical area (fingers, hand, wrist, forearm, elbow,
  thigh, leg, unknown) is scored separately; area score = extent x density
  (0-10); the image score is the sum over areas, so disease in more places
  scores higher.

Change between two time points (Valenzuela 2022): more than +25 % is
*progression*, more than -25 % *improvement*, otherwise *stable*; from zero,
any new calcinosis is progression.
"""

from __future__ import annotations

from collections.abc import Iterable

EXTENT_BANDS_MM2 = (10.0, 50.0, 150.0, 400.0)  # upper bounds of grades 1-4
DENSE_RELATIVE_DENSITY = 0.5
CHANGE_FRACTION = 0.25
#: Relative changes are compared after rounding to this many decimals: areas are stored to
#: 0.01 mm², and an exact 25 % change (1.2 -> 1.5 mm²) computes as 0.25000000000000006.
_CHANGE_DECIMALS = 9

SCORE_DESCRIPTION = {
    "model": "after the SCTC radiographic calcinosis score (Chung 2015), automatic approximation",
    "extent_grade": "0 none; 1 <10 mm2; 2 10-50 mm2; 3 50-150 mm2; 4 150-400 mm2; 5 >=400 mm2 (total area per anatomical area)",
    "density_grade": "that of the area's densest deposit: 1 faint/cloudy (peak contrast < 0.5 x nearby cortical bone); "
    "2 dense/solid (>= 0.5, or no bone nearby)",
    "area_score": "extent_grade x density_grade (0-10) per anatomical area",
    "image_score": "sum of area scores",
    "change_rule": "change > +25% progression, < -25% improvement, otherwise stable; 0 -> >0 progression",
}


def extent_grade(area_mm2: float) -> int:
    """Extent grade 0-5 from a total deposit area in mm²."""
    if area_mm2 <= 0:
        return 0
    for grade, upper in enumerate(EXTENT_BANDS_MM2, start=1):
        if area_mm2 < upper:
            return grade
    return 5


def density_grade(relative_density: float | None) -> int:
    """1 (faint) or 2 (dense) from the peak contrast relative to nearby cortical bone."""
    if relative_density is None or relative_density != relative_density:  # NaN: no bone nearby
        return 2
    return 2 if relative_density >= DENSE_RELATIVE_DENSITY else 1


def score_areas(deposits: Iterable[tuple[str, float, float | None]]) -> dict[str, dict[str, float]]:
    """Score per anatomical area from ``(area_name, area_mm2, relative_density)`` triples."""
    areas: dict[str, dict[str, float]] = {}
    for name, area_mm2, rel in deposits:
        a = areas.setdefault(name, {"count": 0, "total_area_mm2": 0.0, "density_grade": 0})
        a["count"] += 1
        a["total_area_mm2"] += float(area_mm2)
        # Each deposit is graded on its own, then the densest counts: a deposit without bone
        # near it is graded dense, so a faint one measured against bone must not lower the
        # area's grade (the largest relative density alone did: a thigh with dense deposits
        # far from the femur and one over it scored 3 instead of 6).
        a["density_grade"] = max(a["density_grade"], density_grade(rel))
    out = {}
    for name in sorted(areas):
        a = areas[name]
        e = extent_grade(a["total_area_mm2"])
        d = a["density_grade"]
        out[name] = {
            "count": int(a["count"]),
            "total_area_mm2": round(a["total_area_mm2"], 2),
            "extent_grade": e,
            "density_grade": d,
            "score": e * d,
        }
    return out


def classify_change(before: float, after: float) -> str:
    """``progression``, ``stable`` or ``improvement`` by the 25 % rule."""
    if before <= 0:
        return "progression" if after > 0 else "stable"
    change = round((after - before) / before, _CHANGE_DECIMALS)
    if change > CHANGE_FRACTION:
        return "progression"
    if change < -CHANGE_FRACTION:
        return "improvement"
    return "stable"
