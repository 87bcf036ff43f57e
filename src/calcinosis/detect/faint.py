"""Faint deposits in fat: small calcifications whose contrast is against fat, not muscle.

The seed rules of :func:`calcinosis.detect.candidates.detect_lesions` measure a
candidate against the soft-tissue level of the whole scan (muscle). A deposit of
2-3 mm in the subcutaneous fat, averaged into a 3 mm slice, may reach only 80 HU in
the smoothed image: no more than muscle plus noise, but some 190 HU (over 10 noise
SDs of the smoothed image) above the fat round it.

Such a deposit is kept when it lies in fat and its smoothed peak stands above its
own surroundings by ``FAINT_SEED_SIGMA`` smoothed-noise SDs. The surroundings are
an in-plane ring ``RING_INNER_MM``-``RING_OUTER_MM`` outside the candidate (past
the blur of a small deposit), on the candidate's slices. In fat means that the
ring's 10th to 75th percentiles lie in the adipose range (``FAT_HU``): next to lung,
gas, skin, muscle, vessels or organs the contrast against the ring says nothing
about density (on a real chest CT, with little noise, vessel and lymph-node edges
in the mediastinum stand 40-120 HU above their rings). The ring's level is its 90th
percentile. (Up to the 90th percentile for "in fat" missed a 3.6 mm 305 HU deposit in
fat on 3 mm slices at every noise level: only its 4 middle voxels reach the threshold,
and its own blur lifts the top tenth of the ring out of the fat range. Its level, the
90th percentile, still counts that blur: the candidate must stand above it.) Noise
alone puts one voxel of a uniform tissue this high once in 10^17 voxels; the
candidate must also have two voxels at the threshold.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage as ndi

from calcinosis.anatomy.morphology import grow_box

PieceIn = Callable[[tuple[slice, ...]], np.ndarray]

# Seed level over the local surroundings, in noise SDs of the smoothed image.
FAINT_SEED_SIGMA = 8.5
# In-plane ring round the candidate (mm from its voxels): past a small deposit's blur.
RING_INNER_MM = 1.5
RING_OUTER_MM = 3.0
# Adipose tissue (HU), the usual CT window for fat.
FAT_HU = (-190.0, -30.0)
# Voxels at the threshold a faint candidate must have.
MIN_VOXELS = 2


def ring_percentiles_hu(smooth_hu: np.ndarray, piece_in: PieceIn, box: tuple[slice, ...],
                        spacing_zyx) -> tuple[float, float, float] | None:
    """10th, 75th and 90th percentiles (HU) of the smoothed image in an in-plane ring 1.5-3 mm
    outside one candidate, on its own slices; None when the ring is empty."""
    reach = [int(np.ceil(RING_OUTER_MM / float(s))) + 1 for s in spacing_zyx[1:]]
    grown = grow_box(box, [0] + reach, smooth_hu.shape)
    mask = piece_in(grown)
    # In-plane distance only: a huge z sampling keeps slices apart.
    dist = ndi.distance_transform_edt(~mask, sampling=(1e6, *spacing_zyx[1:]))
    ring = (dist > RING_INNER_MM) & (dist <= RING_OUTER_MM)
    if not ring.any():
        return None
    p10, p75, p90 = np.percentile(smooth_hu[grown][ring], (10.0, 75.0, 90.0))
    return float(p10), float(p75), float(p90)


def is_faint_deposit(
    smooth_hu: np.ndarray,
    piece_in: PieceIn,
    box: tuple[slice, ...],
    spacing_zyx,
    *,
    n_voxels: int,
    seed_peak_hu: float,
    noise_smoothed_hu: float,
) -> bool:
    """True when a candidate the global seed rules missed stands out of its own surroundings.

    Parameters
    ----------
    smooth_hu : float array
        Smoothed HU of the whole (cropped) scan.
    piece_in : callable
        ``piece_in(box)`` is the candidate's voxel mask on ``box`` (any box holding it).
    box : slices
        The candidate's bounding box.
    n_voxels : int
        The candidate's voxel count.
    seed_peak_hu : float
        Its highest smoothed value.
    noise_smoothed_hu : float
        Noise SD of the smoothed image in soft tissue.
    """
    if n_voxels < MIN_VOXELS or not noise_smoothed_hu > 0:
        return False
    ring = ring_percentiles_hu(smooth_hu, piece_in, box, spacing_zyx)
    if ring is None or ring[0] < FAT_HU[0] or ring[1] > FAT_HU[1]:
        return False  # not in fat
    return seed_peak_hu >= ring[2] + FAINT_SEED_SIGMA * noise_smoothed_hu
