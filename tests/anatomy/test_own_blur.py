"""A split deposit keeps its own blur and not the bone's: tiny hand-built masks whose answer
is known by construction (what a bone split hands over, on 3 mm slices)."""

from __future__ import annotations

import numpy as np

from calcinosis.anatomy.own_blur import own_blur


def _disk(shape, centre_yx, radius_px):
    y, x = np.mgrid[:shape[0], :shape[1]]
    return np.hypot(y - centre_yx[0], x - centre_yx[1]) <= radius_px


def _whole(shape):
    return tuple(slice(0, n) for n in shape)


def _plate_and_deposit(shape=(6, 15, 15)):
    """Heights of a bone plate (900 HU) on slices 0-1 and a dense deposit on slices 3-4
    centred at (7, 7), soft tissue (50 HU) elsewhere; and the deposit's mask at 130 HU."""
    height = np.full(shape, 50.0)
    height[:2] = 900.0
    deposit = np.zeros(shape, bool)
    y, x = np.mgrid[:shape[1], :shape[2]]
    r2 = (y - 7.0) ** 2 + (x - 7.0) ** 2
    for z in (3, 4):
        height[z] = 50.0 + 1200.0 * np.exp(-r2 / 8.0)
        deposit[z] = height[z] >= 130.0
    return height, deposit


def test_bone_partial_volume_slice_under_a_deposit_goes_back_to_the_bone():
    # A bone plate on slices 0-1, its partial volume (400 HU) over all of slice 2, a dense
    # deposit on slices 3-4 lying on it; the split handed over the deposit and the part of
    # slice 2 under it (its blur across slices adds a little there).
    shape = (6, 15, 15)
    height, deposit = _plate_and_deposit(shape)
    height[2] = 400.0
    under = _disk(shape[1:], (7, 7), 3.0)
    height[2][under] += 60.0
    dense = height >= 130.0
    bone = dense.copy()
    bone[3:] = False
    piece = deposit.copy()
    piece[2] = under

    kept = own_blur(_whole(shape), piece, dense, bone, height, deposit)
    assert not kept[2].any()  # the bone's partial volume, not the deposit's
    assert np.array_equal(kept, deposit)


def test_deposit_partial_volume_slice_between_it_and_the_bone_stays_the_deposits():
    # The mirror case: a bone plate on slices 0-1 ending there, a dense deposit on slices 3-4
    # a slice away from it; slice 2 holds only the deposit's own partial volume, its
    # footprint with soft tissue round it (trunk phantom seed 4's 6.6 mm deposit 2.8 mm
    # from a rib on 3 mm slices lost that slice, 22 of its 123 voxels, to the bone).
    shape = (6, 15, 15)
    height, deposit = _plate_and_deposit(shape)
    footprint = _disk(shape[1:], (7, 7), 3.0)
    height[2][footprint] = 250.0
    dense = height >= 130.0
    bone = dense.copy()
    bone[2:] = False
    piece = deposit.copy()
    piece[2] = footprint

    kept = own_blur(_whole(shape), piece, dense, bone, height, piece)
    assert np.array_equal(kept, piece)


def test_bone_edge_joined_through_a_noise_voxel_is_dropped_own_fringe_next_to_bone_kept():
    # One 3 mm slice: bone for x >= 14 with its 300 HU edge at x = 13; a deposit (radius 3 px)
    # centred at (8, 7); a noise bridge (8, 11)-(8, 12) joins it to the edge, and the split
    # handed over the edge of rows 6-10 with it.
    shape = (3, 17, 20)
    height = np.full(shape, 50.0)
    height[:, :, 14:] = 900.0
    height[:, :, 13] = 300.0
    disk = _disk(shape[1:], (8, 7), 3.0)
    height[1][disk] = 600.0
    height[1, 8, 11:13] = 140.0
    dense = height >= 130.0
    bone = dense.copy()
    bone[1][disk] = False
    bone[1, 8, 11:13] = False
    deposit = np.zeros(shape, bool)
    deposit[1] = disk
    piece = deposit.copy()
    piece[1, 8, 11:13] = True
    piece[1, 6:11, 13] = True

    kept = own_blur(_whole(shape), piece, dense, bone, height, deposit)
    assert not kept[1, 6:11, 13].any()  # the bone's edge: its mirror (x = 1) is soft tissue
    assert not kept[1, 8, 12]           # next to the bone, mirror (x = 2) soft tissue
    expected = deposit.copy()
    expected[1, 8, 11] = True           # not next to bone: the deposit's (noisy) fringe
    assert np.array_equal(kept, expected)

    # A wider deposit (radius 5 px: x 2..12) touches the bone's edge with its own fringe;
    # the fringe's mirror (x = 2) is dense, so nothing is dropped.
    wide = _disk(shape[1:], (8, 7), 5.0)
    height2 = np.full(shape, 50.0)
    height2[:, :, 14:] = 900.0
    height2[:, :, 13] = 300.0
    height2[1][wide] = 600.0
    height2[1][_disk(shape[1:], (8, 7), 2.0)] = 900.0
    dense2 = height2 >= 130.0
    bone2 = dense2.copy()
    bone2[1][wide] = False
    piece2 = np.zeros(shape, bool)
    piece2[1] = wide
    assert np.array_equal(own_blur(_whole(shape), piece2, dense2, bone2, height2, piece2), piece2)


def test_deposit_away_from_bone_is_unchanged():
    shape = (3, 11, 11)
    height = np.full(shape, 50.0)
    height[1][_disk(shape[1:], (5, 5), 2.0)] = 500.0
    dense = height >= 130.0
    piece = dense.copy()
    bone = np.zeros(shape, bool)
    bone[:, :, 10] = True  # beyond a gap of soft tissue
    assert own_blur(_whole(shape), piece, dense, bone, height, piece) is piece
