"""The bone split gives the same bone and deposits with one thread and with the blur profile
made in a second thread (a structure large enough for it)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from calcinosis.anatomy.bone import split_bone
from calcinosis.threads import SMALL_FOR_THREADS

SP = (2.5, 0.8, 0.8)  # thick slices: the blur-profile split has work to do as well


def _bone_with_deposits():
    """A long bone (cortex 1000 HU, marrow 250 HU) in 40 HU muscle, with a 3 mm deposit 1.5 mm
    off its surface and one flush on it, blurred, with a little noise; int16 like the
    pipeline's smoothed image."""
    z, y, x = np.mgrid[:44, :160, :160].astype(np.float32)
    r = np.hypot((y - 80) * 0.8, (x - 80) * 0.8)
    ideal = np.full(z.shape, 40.0, np.float32)
    ideal[r <= 28.0] = 1000.0
    ideal[r <= 24.0] = 250.0
    for gap_mm in (1.5, 0.0):  # centres 3 mm (the radius) beyond the gap, on either side
        cx = 80 + (28.0 + gap_mm + 3.0) / 0.8 * (1 if gap_mm else -1)
        d = np.sqrt(((z - 22) * 2.5) ** 2 + ((y - 80) * 0.8) ** 2 + ((x - cx) * 0.8) ** 2)
        ideal[d <= 3.0] = 800.0
    rng = np.random.default_rng(0)
    hu = ndi.gaussian_filter(ideal, (0.6, 1.2, 1.2)) + rng.normal(0, 8, z.shape)
    smooth = np.rint(ndi.gaussian_filter(hu, (0.4, 1.0, 1.0))).astype(np.int16)
    dense = hu >= 130
    labels, _ = ndi.label(dense, structure=np.ones((3, 3, 3), bool))
    return labels == labels[22, 80, 80 + int(26 / 0.8)], smooth


def test_split_is_the_same_with_the_profile_beside(monkeypatch):
    dense, smooth = _bone_with_deposits()
    assert dense.size >= SMALL_FOR_THREADS  # large enough for the second thread
    results = []
    for threads in ("1", "2"):
        monkeypatch.setenv("CALCINOSIS_THREADS", threads)
        results.append(split_bone(dense, smooth, SP, h_hu=60.0, max_deposit_volume_mm3=2500.0))
    one, two = results
    assert len(one.deposits) >= 1  # the split has deposits to agree on
    np.testing.assert_array_equal(one.bone, two.bone)
    assert len(one.deposits) == len(two.deposits)
    for (sub_a, a), (sub_b, b) in zip(one.deposits, two.deposits):
        assert sub_a == sub_b
        np.testing.assert_array_equal(a, b)
