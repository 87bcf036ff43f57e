"""Phantom visit pairs with known answers for the follow-up tests.

The baseline is an elbow phantom with explicit deposits. The follow-up is the same
anatomy with some deposits grown, shrunk, removed or added, rendered with thicker
slices, then "moved": resampled (SimpleITK) through a known rigid transform onto a
new grid, as if the patient lay differently in the scanner.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import SimpleITK as sitk

from calcinosis.io import sitk_to_volume, volume_to_sitk
from calcinosis.phantom import DepositSpec, make_ct_phantom
from calcinosis.pipeline import analyze

SEED = 3
CENTRE_XY = (260.0, -10.0)  # the elbow phantom's limb axis (left arm)
GROWN, SHRUNK = 1.7, 0.45  # mass factors
# (z mm, angle deg, distance from the limb axis mm, diameter mm, density HU, what happens)
PLAN = (
    (-20, 0, 30, 6.0, 700, "stable"),
    (-20, 90, 22, 5.0, 600, "grown"),
    (-20, 210, 30, 6.0, 800, "shrunk"),
    (-20, 270, 30, 5.0, 600, "resolved"),
    (-10, 30, 30, 4.0, 700, "stable"),
    (-10, 150, 30, 6.0, 600, "stable"),
    (0, 0, 30, 7.0, 700, "grown"),
    (0, 240, 22, 5.0, 700, "stable"),
    (0, 300, 30, 6.0, 600, "shrunk"),
    (10, 60, 22, 5.0, 800, "stable"),
    (10, 210, 30, 6.0, 700, "resolved"),
    (20, 30, 30, 5.0, 600, "stable"),
    (20, 150, 22, 6.0, 700, "stable"),
    (20, 270, 22, 4.0, 900, "stable"),
    (10, 330, 30, 6.0, 700, "new"),
    (-10, 240, 30, 6.0, 600, "new"),
    (20, 240, 30, 5.0, 800, "new"),
)
ANGLES_DEG = (3.0, -2.0, 4.0)
TRANSLATION_MM = (10.0, -8.0, 15.0)


def centre(z, ang, r):
    a = np.radians(ang)
    return (CENTRE_XY[0] + r * np.cos(a), CENTRE_XY[1] + 0.9 * r * np.sin(a), float(z))


def specs(visit: str) -> list[DepositSpec]:
    out = []
    for z, ang, r, diam, hu, fate in PLAN:
        if visit == "baseline" and fate == "new" or visit == "followup" and fate == "resolved":
            continue
        factor = {"grown": GROWN, "shrunk": SHRUNK}.get(fate, 1.0) if visit == "followup" else 1.0
        out.append(DepositSpec(centre(z, ang, r), float(hu), equivalent_diameter_mm=diam * factor ** (1 / 3)))
    return out


def move(volume, angles_deg, translation_mm, z_range, spacing):
    """The image seen after the patient moved: ``F(q) = P(R q + t)`` (``tx`` maps follow-up -> phantom)."""
    tx = sitk.Euler3DTransform()
    tx.SetRotation(*(float(np.radians(a)) for a in angles_deg))
    tx.SetTranslation(tuple(float(t) for t in translation_mm))
    size_x = volume.shape[2] * volume.spacing[0]
    size_y = volume.shape[1] * volume.spacing[1]
    n = [int(round(size_x / spacing[0])), int(round(size_y / spacing[1])),
         int(round((z_range[1] - z_range[0]) / spacing[2]))]
    c_phantom = np.array(volume.origin) + 0.5 * np.array([size_x, size_y, 0.0]) - 0.5 * np.array(volume.spacing)
    c_phantom[2] = 0.5 * (z_range[0] + z_range[1])
    c_followup = np.array(tx.GetInverse().TransformPoint(tuple(float(c) for c in c_phantom)))
    ref = sitk.Image(n, sitk.sitkInt16)
    ref.SetSpacing(tuple(float(s) for s in spacing))
    ref.SetOrigin(tuple(float(v) for v in c_followup - 0.5 * np.array(spacing) * (np.array(n) - 1)))
    out = sitk.Resample(volume_to_sitk(volume), ref, tx, sitk.sitkLinear, -1000.0, sitk.sitkInt16)
    return sitk_to_volume(out, dict(volume.metadata, slice_thickness_mm=float(spacing[2]))), tx


@dataclass(frozen=True, eq=False)
class Pair:
    baseline: object  # Analysis
    followup: object  # Analysis
    to_phantom: sitk.Transform  # follow-up LPS -> baseline (phantom) LPS, the truth
    followup_truth: tuple  # DepositTruth of the follow-up phantom (phantom coordinates)


@pytest.fixture(scope="session")
def baseline_phantom():
    return make_ct_phantom("elbow", seed=SEED, length_mm=60.0, pixel_mm=1.0, slice_thickness_mm=1.5,
                           deposits=specs("baseline"), external_objects=False)


@pytest.fixture(scope="session")
def baseline_analysis(baseline_phantom):
    return analyze(baseline_phantom.volume)


@pytest.fixture(scope="session")
def moved_pair(baseline_analysis):
    long = make_ct_phantom("elbow", seed=SEED, length_mm=110.0, pixel_mm=1.0, slice_thickness_mm=2.5,
                           deposits=specs("followup"), external_objects=False)
    moved, tx = move(long.volume, ANGLES_DEG, TRANSLATION_MM, (-35.0, 35.0), (1.0, 1.0, 2.5))
    return Pair(baseline_analysis, analyze(moved), tx, long.deposits)


@pytest.fixture(scope="session")
def moved_comparison(moved_pair):
    from calcinosis.follow import compare_visits, visit_from_analysis

    return compare_visits(visit_from_analysis(moved_pair.baseline, "baseline"),
                          visit_from_analysis(moved_pair.followup, "followup"))


@pytest.fixture(scope="session")
def plan():
    """The deposit plan and geometry helpers, for the test modules (conftest is not importable)."""
    from types import SimpleNamespace

    return SimpleNamespace(PLAN=PLAN, centre=centre, ANGLES_DEG=ANGLES_DEG, TRANSLATION_MM=TRANSLATION_MM)
