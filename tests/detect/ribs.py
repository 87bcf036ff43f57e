"""A synthetic rib cut across, for the hollow-piece tests (tests/detect/test_hollow_screen.py,
tests/detect/test_faint_hollow.py)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def rib_section(deposit_hu: float | None, deposit_x: float, *, noise_hu: float = 0.0, seed: int = 0,
                marrow_mm: float = 5.4) -> np.ndarray:
    """HU (int16, 7 x 48 x 48, voxels 1.0 x 0.8 x 0.8 mm): a rib cut across (cortex 700 HU out
    to 7 mm round 60 HU marrow of radius ``marrow_mm``, centred at row and column 20) in 40 HU
    muscle, blurred, with Gaussian noise of ``noise_hu``; with ``deposit_hu``, a 2.5 mm deposit
    centred on slice 3, row 20, column ``deposit_x``."""
    z, y, x = np.mgrid[:7, :48, :48]
    r = np.hypot((y - 20) * 0.8, (x - 20) * 0.8)
    ideal = np.full(z.shape, 40.0)
    ideal[r <= 7.0] = 700.0
    ideal[r <= marrow_mm] = 60.0
    if deposit_hu is not None:
        d = np.sqrt(((z - 3) * 1.0) ** 2 + ((y - 20) * 0.8) ** 2 + ((x - deposit_x) * 0.8) ** 2)
        ideal[d <= 2.5] = deposit_hu
    hu = ndi.gaussian_filter(ideal, (0.8, 1.0, 1.0))
    if noise_hu:
        hu = hu + np.random.default_rng(seed).normal(0, noise_hu, z.shape)
    return np.rint(hu).astype(np.int16)
