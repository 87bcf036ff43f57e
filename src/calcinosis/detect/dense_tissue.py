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

On the phantoms every deposit found peaks at least 290 HU above its surroundings; on the
head CT the ear and nose cartilage, the skin edges of the ears and the lenses peak 85-170
HU above theirs. On the real contrast-enhanced abdominal series (``tests/ct/test_real_abdomen.py``,
2 mm spacing) the rule excludes 79 findings in the trunk (enhanced vessels and bowel wall,
28-164 HU above their surroundings, 8 of them 142-164 HU, 4-71 voxels). The price: 2.2-2.8 mm
deposits of 351 HU on 2 mm slices with 25 HU noise peak 159-191 HU above theirs (5-18
voxels) and are excluded too (3 of 429 in the 25 HU / 2 mm sweep); no line of contrast,
size or depth parts them from those real findings (session 15, measured).
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


def is_dense_soft_tissue(lesion: Lesion, slice_mm: float) -> bool:
    """Whether ``lesion``, on slices ``slice_mm`` thick, is resolved (more voxels than a
    point's blur) and peaks less than ``FAINT_CONTRAST_HU`` above its local background:
    dense soft tissue, not calcium."""
    return (slice_mm <= MAX_SLICE_MM and lesion.n_voxels > POINT_BLUR_MAX_VOXELS
            and lesion.peak_hu - lesion.background_hu < FAINT_CONTRAST_HU)
