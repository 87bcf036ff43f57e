"""Deposits split from bone on noisy 3 mm phantoms hold their own voxels, not the bone's.

On these scans the split once gave a deposit lying on a rib piece across the slices (trunk,
seed 1) the rib's partial-volume voxels on the slice under it, and a deposit 1.2 mm from the
elbow's bone (seed 0) a strip of the bone's edge: volume 1.2-1.4 times the ideal and a
centroid 1.1 mm off. A voxel at or above 130 HU in the noiseless scan that is outside the
deposit's ideal mask is another structure's (bone): a split deposit may hold a few at its
border, not a slice or a strip of them.
"""

from __future__ import annotations

import numpy as np
import pytest

from calcinosis.phantom import make_ct_phantom
from calcinosis.pipeline import analyze

CASES = [("trunk", 1), ("elbow", 0)]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0]}-s{c[1]}-n30-t3")
def scan(request):
    body, seed = request.param
    ph = make_ct_phantom(body, seed=seed, noise_hu=30.0, slice_thickness_mm=3.0, length_mm=50)
    return ph, analyze(ph.volume)


def _juxta_osseous(ph, analysis):
    """(truth, lesion, lesion mask, ideal mask) of each juxta-osseous deposit found."""
    by_id = {lesion.lesion_id: lesion for lesion in analysis.lesions}
    out = []
    for d in ph.deposits:
        if d.compartment != "juxta_osseous" or d.equivalent_diameter_mm < 2.0:
            continue
        ideal = (ph.labels == d.id) & (ph.noiseless.array >= 130.0)
        hit = analysis.labels[ideal]
        hit = hit[hit > 0]
        assert hit.size, (d.id, "not found")
        lesion = by_id[int(np.bincount(hit).argmax())]
        out.append((d, lesion, analysis.labels == lesion.lesion_id, ideal))
    return out


def test_split_deposits_hold_few_voxels_of_other_structures(scan):
    ph, analysis = scan
    found = _juxta_osseous(ph, analysis)
    assert len(found) >= 4  # the test is about deposits on bone: there are some
    foreign = {d.id: int((mask & ~ideal & (ph.noiseless.array >= 130.0)).sum()) for d, _, mask, ideal in found}
    size = {d.id: int(mask.sum()) for d, _, mask, _ in found}
    assert all(foreign[k] <= 0.05 * size[k] for k in foreign), (foreign, size)


def test_split_deposits_volume_and_centroid(scan):
    ph, analysis = scan
    vv = ph.volume.voxel_volume_mm3
    for d, lesion, _, ideal in _juxta_osseous(ph, analysis):
        err = np.linalg.norm(np.array([lesion.x_mm, lesion.y_mm, lesion.z_mm]) - np.asarray(d.centroid_lps))
        assert err < 1.0, (d.id, err)
        assert lesion.volume_mm3 == pytest.approx(ideal.sum() * vv, rel=0.15), d.id
