"""Deposits split off a bone that touch each other are one (anatomy.bone.merge_touching)."""

from __future__ import annotations

import numpy as np

from calcinosis.anatomy.bone import merge_touching


def _piece(z0, z1, y0, y1, x0, x1):
    box = (slice(z0, z1), slice(y0, y1), slice(x0, x1))
    return box, np.ones((z1 - z0, y1 - y0, x1 - x0), bool)


def _grid(pieces, shape=(10, 12, 12)):
    out = np.zeros(shape, int)
    for k, (box, mask) in enumerate(pieces, start=1):
        out[box][mask] = k
    return out


def test_touching_pieces_merge_in_the_place_of_the_first():
    a = _piece(0, 2, 0, 2, 0, 2)       # alone
    b = _piece(4, 6, 4, 6, 4, 6)
    c = _piece(6, 8, 4, 6, 4, 6)       # shares a face with b
    d = _piece(0, 2, 8, 10, 8, 10)     # alone
    e = _piece(3, 4, 4, 6, 4, 6)       # shares a face with b, after d
    got = merge_touching([a, b, c, d, e], max_voxels=1000)
    assert len(got) == 3
    grid = _grid(got)
    assert (grid == 1).sum() == 8 and (grid == 3).sum() == 8
    assert (grid == 2).sum() == 8 + 8 + 4  # b, c and e, in b's place
    # Diagonal contact is not a shared face.
    f = _piece(8, 9, 6, 7, 6, 7)
    assert len(merge_touching([c, f], max_voxels=1000)) == 2


def test_no_merge_past_the_size_limit():
    b = _piece(4, 6, 4, 6, 4, 6)
    c = _piece(6, 8, 4, 6, 4, 6)
    assert len(merge_touching([b, c], max_voxels=15)) == 2
    assert len(merge_touching([b, c], max_voxels=16)) == 1


def test_a_box_running_past_the_grid_end_is_read_from_its_mask():
    # The valley split's boxes are grown by a voxel without clipping at the grid's end: the
    # mask is what lies on the grid (here 2 of the box's 3 slices).
    b = ((slice(8, 11), slice(4, 6), slice(4, 6)), np.ones((2, 2, 2), bool))
    c = _piece(6, 8, 4, 6, 4, 6)
    (box, mask), = merge_touching([b, c], max_voxels=1000)
    assert mask.shape == (4, 2, 2) and mask.all()
    assert box[0].start == 6


def test_pieces_joined_below_half_their_height_stay_apart():
    # Two touching pieces, peaks 900 and 700, threshold 100; along their shared face the
    # image reads 600 (the saddle 5/6 of the way from the threshold to the lower peak) or
    # 300 (1/3 of the way: a gap between two objects).
    b = _piece(4, 6, 4, 6, 4, 6)
    c = _piece(6, 8, 4, 6, 4, 6)
    image = np.zeros((10, 12, 12))
    image[4:6, 4:6, 4:6] = 900.0
    image[6:8, 4:6, 4:6] = 700.0
    image[5, 4:6, 4:6] = 600.0  # b's face towards c
    image[6, 4:6, 4:6] = 650.0  # c's face towards b
    assert len(merge_touching([b, c], max_voxels=1000, image=image, floor=100.0)) == 1
    assert len(merge_touching([b, c], max_voxels=1000, image=image, floor=550.0)) == 2  # 50 of 150
    image[5, 4:6, 4:6] = 300.0
    image[6, 4:6, 4:6] = 300.0
    assert len(merge_touching([b, c], max_voxels=1000, image=image, floor=100.0)) == 2
    assert len(merge_touching([b, c], max_voxels=1000)) == 1  # without an image: by contact alone


def test_a_piece_cut_by_the_scan_end_does_not_take_in_a_whole_one():
    # A bone's end split off where the scan cuts it (it reaches the grid's last slice) is
    # excluded later as cut by the scan's edge: a whole deposit touching it keeps apart.
    b = _piece(4, 6, 4, 6, 4, 6)
    c = _piece(6, 10, 4, 6, 4, 6)  # reaches slice 9, the last

    def at_end(box, mask):
        return box[0].start + mask.shape[0] == 10

    assert len(merge_touching([b, c], max_voxels=1000, apart=at_end)) == 2
    d = _piece(2, 4, 4, 6, 4, 6)   # whole, touching b: merges
    assert len(merge_touching([b, d], max_voxels=1000, apart=at_end)) == 1


def _reference_merge(pieces, max_voxels):
    """merge_touching's rule, pair by pair over every piece with a dilation (the plain form)."""
    from scipy import ndimage as ndi

    from calcinosis.anatomy.bone import _on, _union

    face = ndi.generate_binary_structure(3, 1)

    def touch(p, q):
        union = _union(p, q)
        one, two = _on(union, *p), _on(union, *q)
        return int(p[1].sum()) + int(q[1].sum()) <= max_voxels and bool((ndi.binary_dilation(one, face) & two).any())

    out = []
    for piece in pieces:
        out.append(piece)
        i = len(out) - 1
        merged = True
        while merged:
            merged = False
            for k in range(len(out)):
                if k != i and touch(out[k], out[i]):
                    a, b = min(k, i), max(k, i)
                    union = _union(out[a], out[b])
                    out[a] = (union, _on(union, *out[a]) | _on(union, *out[b]))
                    out.pop(b)
                    i, merged = a, True
                    break
    return out


def test_same_merges_as_the_plain_pairwise_rule():
    # The merge looks only at pieces whose boxes meet, and tests a shared face only where the
    # boxes meet: the same pieces, in the same order, as every pair tested by a dilation.
    rng = np.random.default_rng(7)
    for _ in range(40):
        pieces = []
        for _ in range(int(rng.integers(2, 14))):
            start = rng.integers(0, 12, 3)
            shape = rng.integers(1, 5, 3)
            mask = rng.random(shape) < 0.5
            if mask.any():
                pieces.append((tuple(slice(int(s), int(s + n)) for s, n in zip(start, shape)), mask))
        limit = float(rng.integers(5, 200))
        got, want = merge_touching(pieces, limit), _reference_merge(pieces, limit)
        assert [g[0] for g in got] == [w[0] for w in want]
        assert all(np.array_equal(g[1], w[1]) for g, w in zip(got, want))
