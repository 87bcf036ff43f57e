"""The radiograph's disk morphology by shifted copies and distance transforms equals
scipy.ndimage's with the disk as a structuring element (which cost more the finer the image)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from calcinosis.radiograph import morph


@pytest.mark.parametrize("radius", [0.3, 0.7, 1.0, 1.5, 2.4, 2.6, 3.3, 7.49, 12.5, 13.0, 20.7])
def test_disk_morphology_equals_scipys_with_the_disk(radius):
    rng = np.random.default_rng(int(radius * 10))
    for _ in range(6):
        shape = tuple(int(v) for v in rng.integers(20, 80, 2))
        mask = ndimage.gaussian_filter(rng.random(shape), 2) > 0.5  # blobs, some on the border
        d = morph.disk(radius)
        assert np.array_equal(morph.dilate(mask, radius), ndimage.binary_dilation(mask, d))
        assert np.array_equal(morph.erode(mask, radius), ndimage.binary_erosion(mask, d))
        assert np.array_equal(morph.opening(mask, radius), ndimage.binary_opening(mask, d))
        assert np.array_equal(morph.closing(mask, radius), ndimage.binary_closing(mask, d))
