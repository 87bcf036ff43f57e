"""Deposits that touch at the threshold are separate lesions (detect.touching)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from calcinosis.detect.touching import split_touching
from calcinosis.pipeline import analyze
from calcinosis.volume import Volume


def _blobs(centres_mm, radius_mm, hu, spacing=(1.0, 0.8, 0.8), shape=(30, 60, 60), background=45.0):
    """Smoothed spheres (``hu`` each; a list for several) on a soft-tissue background, and
    the component of the threshold mask holding the first one."""
    z, y, x = np.indices(shape).astype(float)
    img = np.full(shape, background)
    his = hu if isinstance(hu, (list, tuple)) else [hu] * len(centres_mm)
    for (cz, cy, cx), h in zip(centres_mm, his):
        inside = (z * spacing[0] - cz) ** 2 + (y * spacing[1] - cy) ** 2 + (x * spacing[2] - cx) ** 2 <= radius_mm ** 2
        img = np.maximum(img, np.where(inside, h, background))
    img = ndi.gaussian_filter(img, (0.6 / spacing[0], 0.6 / spacing[1], 0.6 / spacing[2]))
    labels, _ = ndi.label(img >= 130.0, structure=np.ones((3, 3, 3)))
    first = labels[tuple(int(round(c / s)) for c, s in zip(centres_mm[0], spacing))]
    return img, labels == first


def test_two_deposits_a_millimetre_apart_are_two():
    img, piece = _blobs([(15, 24, 24), (15, 24, 29)], 2.0, 800.0)  # 1 mm gap between the spheres
    parts = split_touching(piece, img, 100.0, 130.0)
    assert len(parts) == 2
    assert np.array_equal(parts[0] | parts[1], piece) and not (parts[0] & parts[1]).any()
    xs = [np.nonzero(p)[2].mean() * 0.8 for p in parts]
    assert xs[0] == pytest.approx(24.0, abs=0.5) and xs[1] == pytest.approx(29.0, abs=0.5)


def test_lobes_of_one_deposit_stay_one():
    # Two spheres overlapping by half a radius: one deposit with a notch, its saddle high.
    img, piece = _blobs([(15, 24, 24), (15, 24, 27)], 2.0, [800.0, 600.0])
    assert len(split_touching(piece, img, 100.0, 130.0)) == 1
    # A single deposit has one maximum.
    img, piece = _blobs([(15, 24, 24)], 3.0, 800.0)
    parts = split_touching(piece, img, 100.0, 130.0)
    assert len(parts) == 1 and parts[0] is piece


@pytest.mark.parametrize("slice_mm", [1.0, 3.0])
def test_analysis_reports_touching_deposits_apart(slice_mm):
    # Two 4 mm, 800 HU deposits 0.8 mm apart in soft tissue, 20 HU noise: one component at
    # 130 HU; they were one lesion of twice the volume, centred between them.
    shape = (int(60 / slice_mm), 120, 120)
    z, y, x = np.indices(shape).astype(float)
    zc = shape[0] // 2 * slice_mm
    body = (y * 0.8 - 48) ** 2 + (x * 0.8 - 48) ** 2 < 44 ** 2
    img = np.where(body, 45.0, -1000.0)
    deposit = np.zeros(shape)
    for cx in (45.2, 50.8):
        for dz in np.linspace(-slice_mm / 2, slice_mm / 2, 7):  # the slice's thickness
            deposit += ((z * slice_mm + dz - zc) ** 2 + (y * 0.8 - 48) ** 2 + (x * 0.8 - cx) ** 2 <= 4.0) / 7.0
    img = ndi.gaussian_filter(img + deposit * (800.0 - 45.0), (0.4 / slice_mm, 0.75, 0.75))
    img += np.random.default_rng(0).normal(0.0, 20.0, shape) * body
    a = analyze(Volume(np.round(img).astype(np.int16), (0.8, 0.8, slice_mm)))
    assert len(a.lesions) == 2, [(les.x_mm, les.volume_mm3) for les in a.lesions]
    xs = sorted(les.x_mm for les in a.lesions)
    assert xs[0] == pytest.approx(45.2, abs=0.6) and xs[1] == pytest.approx(50.8, abs=0.6)
    vols = [les.volume_mm3 for les in a.lesions]
    assert max(vols) < 1.3 * min(vols)
