"""Calcium scores on one lesion: Agatston and background-corrected mass.

Each function takes the HU values and the lesion mask on a small box around the
lesion, with the voxel spacing in mm (array order ``z, y, x``).
"""

from __future__ import annotations

import numpy as np

# Agatston density weight bands (HU lower bounds) at 120 kVp.
AGATSTON_BANDS_HU = (130.0, 200.0, 300.0, 400.0)
AGATSTON_REFERENCE_SLICE_MM = 3.0


def agatston_weight(peak_hu: float) -> int:
    """Density weight 1..4 for a slice's peak HU (0 below 130 HU)."""
    return int(sum(peak_hu >= b for b in AGATSTON_BANDS_HU))


def agatston_score(hu: np.ndarray, mask: np.ndarray, spacing_zyx) -> float:
    """Agatston score of one lesion: sum over axial slices of area (mm^2) x density weight.

    Slices are array axis 0. Each slice's weight comes from the lesion's peak HU in
    that slice; the sum is scaled by ``slice increment / 3 mm`` so that thin-slice
    scans score like the 3-mm scans the method was defined on.

    Examples
    --------
    >>> hu = np.zeros((1, 3, 3)); hu[0, 1, 1:3] = [250, 420]
    >>> agatston_score(hu, hu >= 130, (3.0, 1.0, 1.0))  # 2 mm^2 x weight 4
    8.0
    """
    sz, sy, sx = (float(s) for s in spacing_zyx)
    pixel_area = sy * sx
    total = 0.0
    for z in range(mask.shape[0]):
        m = mask[z]
        if not m.any():
            continue
        total += m.sum() * pixel_area * agatston_weight(float(hu[z][m].max()))
    return total * sz / AGATSTON_REFERENCE_SLICE_MM


def background_corrected_mass_mg(
    hu: np.ndarray,
    region: np.ndarray,
    background_hu: float,
    voxel_volume_mm3: float,
    calibration_mg_per_hu_cm3: float = 0.8,
) -> float:
    """Hydroxyapatite-equivalent mass (mg): ``c * sum(HU - background) * voxel volume``.

    ``region`` is the lesion grown by a shell wide enough to hold its partial-volume
    blur; summing over it makes the mass independent of threshold and blur.

    Examples
    --------
    >>> hu = np.full((3, 3, 3), 40.0); hu[1, 1, 1] = 1040.0
    >>> round(background_corrected_mass_mg(hu, np.ones_like(hu, bool), 40.0, 1000.0), 3)
    800.0
    """
    excess = hu[region].astype(np.float64) - background_hu
    return float(calibration_mg_per_hu_cm3 * excess.sum() * voxel_volume_mm3 / 1000.0)
