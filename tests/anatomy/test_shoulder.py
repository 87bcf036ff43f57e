"""A dense deposit on the shoulder of the bone its basin took in (anatomy/shoulder.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from calcinosis.anatomy.shoulder import shoulder_piece

SP = (3.0, 0.8, 0.8)
SLAB_END_MM = 16.0


def _scene(blob_hu: float):
    """A slab of bone (900 HU, x < 16 mm) and a 6 mm ball of ``blob_hu`` 1 mm from it, in
    soft tissue (50 HU), blurred; 3 mm slices. The structure at 130 HU is one piece; the
    slab's far end (x < 4.8 mm) is another basin, the rest is the basin looked at."""
    shape = (9, 40, 60)
    z, y, x = (np.indices(shape).astype(float).T * np.array(SP)).T
    img = np.full(shape, 50.0)
    slab = x < SLAB_END_MM
    img[slab] = 900.0
    blob = (z - 12.0) ** 2 + (y - 16.0) ** 2 + (x - (SLAB_END_MM + 1.0 + 3.0)) ** 2 <= 9.0
    if blob_hu:
        img[blob] = blob_hu
    img = ndi.gaussian_filter(img, (0.7, 0.6, 0.6))
    solid = img >= 130.0
    others = solid & (x < 6 * SP[2])
    return img, solid, solid & ~others, others, blob, slab


def test_dense_deposit_on_the_shoulder_is_cut_from_the_bone():
    img, solid, basin, others, blob, slab = _scene(1500.0)
    assert ndi.label(solid)[1] == 1  # joined to the bone at the threshold
    piece = shoulder_piece(basin, img, solid, others, 120.0, 130.0, 1300, SP)
    assert piece is not None
    assert (piece & blob).sum() >= 0.7 * blob.sum()
    assert not (piece & slab).any()


@pytest.mark.parametrize("blob_hu", [900.0, 0.0])
def test_bone_alone_or_a_knob_as_dense_as_it_gives_nothing(blob_hu):
    # A knob of the bone's own density has no core standing above the bone's shoulder.
    img, solid, basin, others, _, _ = _scene(blob_hu)
    assert shoulder_piece(basin, img, solid, others, 120.0, 130.0, 1300, SP) is None
