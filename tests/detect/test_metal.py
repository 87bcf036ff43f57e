"""A deposit joined at the threshold to an object on the skin (detect/metal.py)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from calcinosis.detect.candidates import smoothed
from calcinosis.detect.metal import deposits_beside_object

SP = (2.0, 0.8, 0.8)


def _scene(deposit_hu: float, seed: int = 0):
    """Skin surface at y = 20 (body below it, 40 HU; air above), a 3 mm metal bead (3000 HU)
    on it, and a 2.4 mm deposit in the skin 2.4 mm from the bead; blurred, 20 HU noise."""
    shape = (7, 40, 40)
    z, y, x = (np.indices(shape).astype(float).T * np.array(SP)).T
    img = np.where(y >= 16.0, 40.0, -1000.0)
    body = y >= 16.0
    bead = (z - 6.0) ** 2 + (y - 15.5) ** 2 + (x - 14.0) ** 2 <= 1.5 ** 2
    deposit = (z - 6.0) ** 2 + (y - 17.5) ** 2 + (x - 18.4) ** 2 <= 1.2 ** 2
    img[bead] = 3000.0
    if deposit_hu:
        img[deposit] = deposit_hu
    img = ndi.gaussian_filter(img, (0.4, 0.8, 0.8)) + np.random.default_rng(seed).normal(0, 20.0, shape)
    hu = np.rint(img).astype(np.int16)
    return hu, body, deposit


def _split(hu, body):
    labels, _ = ndi.label(hu >= 130, structure=np.ones((3, 3, 3)))
    mask = labels == labels[3, 19, 17]  # the bead's component
    return deposits_beside_object(hu, smoothed(hu, SP, dtype=np.int16), mask, body, SP, threshold_hu=130.0,
                                  h_hu=60.0, metal_hu=2000.0, max_deposit_volume_mm3=2500.0), mask


def test_deposit_under_a_bead_is_split_off():
    hu, body, deposit = _scene(1100.0)
    pieces, mask = _split(hu, body)
    assert (mask & deposit).any()  # joined to the bead at the threshold
    assert len(pieces) == 1
    assert (pieces[0] & deposit).sum() >= 0.8 * (deposit & (hu >= 130)).sum()
    assert body[pieces[0]].all()


def test_bead_alone_gives_nothing():
    hu, body, _ = _scene(0.0)
    pieces, _ = _split(hu, body)
    assert pieces == []


def test_deposit_in_the_skin_joined_to_the_table_is_split_off():
    # The body (40 HU, rows < 60) lies on a 300 HU table top (rows 60-64, outside the body,
    # wider than it); a 4 mm 1200 HU deposit in the skin at the contact joins the table at
    # the threshold. The table is excluded as the table, and the deposit split off it.
    from calcinosis.config import AnalysisConfig
    from calcinosis.detect.candidates import detect_lesions

    sp = (1.0, 0.8, 0.8)
    shape = (24, 70, 90)
    z, y, x = (np.indices(shape).astype(float).T * np.array(sp)).T
    img = np.where(y < 60 * 0.8, 40.0, -1000.0)
    body = y < 60 * 0.8
    img[:, 60:65, 2:88] = 300.0
    deposit = (z - 12.0) ** 2 + (y - 56.0 * 0.8) ** 2 + (x - 45 * 0.8) ** 2 <= 2.0 ** 2
    img[deposit] = 1200.0
    img = ndi.gaussian_filter(img, (0.4, 0.5, 0.5)) + np.random.default_rng(3).normal(0, 10.0, shape)
    hu = np.rint(img).astype(np.int16)
    labels, _ = ndi.label(hu >= 130, structure=np.ones((3, 3, 3)))
    assert labels[12, 62, 45] == labels[12, 56, 45] != 0  # deposit and table: one component
    det = detect_lesions(hu, body, sp, AnalysisConfig(), tissue_level_hu=40.0, noise_smoothed_hu=3.0,
                         noise_hu=10.0)
    assert "table" in {e.reason for e in det.excluded}
    found = det.labels > 0
    assert found.any() and body[found].all()
    assert (found & deposit).sum() >= 0.7 * (deposit & (hu >= 130)).sum()
