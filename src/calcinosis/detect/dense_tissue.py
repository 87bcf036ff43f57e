"""Findings too faint for their size to be calcium: dense soft tissue.

Calcinosis is hydroxyapatite, over 1000 HU when solid. A deposit too small to be resolved
is averaged with the tissue round it and may peak only a little above that tissue, but
then it is point-like: the blur of a point stays above a threshold set near its peak over
about the blur's own width, one or two voxels. A finding that spreads over more voxels
than that while peaking less than ``FAINT_CONTRAST_HU`` above the tissue round it is
resolved, so its peak is its density: that of dense soft tissue (cartilage of the ear and
nose, the eye's lens, a tendon), or the overshoot a sharp reconstruction kernel puts on
thin folds of skin against air. Not calcium; excluded as ``dense_soft_tissue`` (and listed
among the excluded objects, so nothing is dropped unseen).

Those tissues lie near the skin: on the head CT (1.5 mm slices) the ear and nose cartilage,
the skin edges of the ears and the lenses peak 85-170 HU above their surroundings, 1.0-5.4
mm deep. Deeper, a faint deposit of 2-3 mm does the same: a 2.2-2.8 mm 351 HU deposit in
muscle on 2 mm slices at 25 HU noise peaks 159 HU above it with 5 voxels (3 of 432
phantom deposits at 25 HU / 2 mm were lost to the rule). So a finding faint for its size is
excluded only within ``SUPERFICIAL_MAX_DEPTH_MM`` of the skin; deeper it is reported with
the flag ``faint_for_size`` (low confidence: in the findings, out of the conservative
burden). Every other phantom deposit found peaks at least 290 HU above its surroundings.
"""

from __future__ import annotations

from calcinosis.measure.lesion import Lesion

# Peak over local background (HU) below which a resolved finding is soft tissue, not calcium.
FAINT_CONTRAST_HU = 200.0
# A point's blur reaches the threshold in at most this many voxels (fewer: maybe a tiny deposit).
POINT_BLUR_MAX_VOXELS = 3
# On thicker slices (mm) a deposit wide in the plane but thin along z is averaged down over
# the slice: a low peak there does not mean a low density.
MAX_SLICE_MM = 2.5
# Dense soft tissue (cartilage of the ear and the nose, the lens, skin folds) lies within this
# depth (mm) of the skin (twice the deepest seen, a lens at 5.4 mm).
SUPERFICIAL_MAX_DEPTH_MM = 10.0


def is_faint_for_size(lesion: Lesion, slice_mm: float) -> bool:
    """Whether ``lesion``, on slices ``slice_mm`` thick, is resolved (more voxels than a
    point's blur) and peaks less than ``FAINT_CONTRAST_HU`` above its local background."""
    return (slice_mm <= MAX_SLICE_MM and lesion.n_voxels > POINT_BLUR_MAX_VOXELS
            and lesion.peak_hu - lesion.background_hu < FAINT_CONTRAST_HU)


def is_dense_soft_tissue(lesion: Lesion, slice_mm: float) -> bool:
    """Whether ``lesion`` is faint for its size (:func:`is_faint_for_size`) and lies within
    ``SUPERFICIAL_MAX_DEPTH_MM`` of the skin: dense soft tissue, not calcium."""
    return is_faint_for_size(lesion, slice_mm) and lesion.depth_mm <= SUPERFICIAL_MAX_DEPTH_MM
