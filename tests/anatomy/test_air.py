"""Air of cavities that open through a narrow mouth is inside the body; notches are not."""

from __future__ import annotations

import numpy as np

from calcinosis.anatomy.air import add_internal_air
from calcinosis.anatomy.bone import is_skull

SPACING = (2.0, 1.0, 1.0)


def _head_with_nose(mouth_mm: int, notch_mm: int = 0, scale: int = 1):
    """A disk of tissue (radius 40 mm) on 10 slices with a 16 x 16 mm air cavity behind a
    channel ``mouth_mm`` wide that opens at the front (low y); optionally a slot
    ``notch_mm`` wide and 20 mm deep cut into the back (high y) as a plain notch.
    On 1 mm pixels, or ``1 / scale`` mm pixels when ``scale`` > 1."""
    z, y, x = np.mgrid[0:10, 0:100 * scale, 0:100 * scale] / np.array([1, scale, scale])[:, None, None, None]
    body = (y - 50) ** 2 + (x - 50) ** 2 <= 40 ** 2
    cavity = (abs(x - 50) <= 8) & (y >= 20) & (y <= 36)
    channel = (abs(x - 50) < mouth_mm / 2) & (y < 20) if mouth_mm else np.zeros_like(body)
    body &= ~(cavity | channel)
    if notch_mm:
        body &= ~((abs(x - 50) <= notch_mm / 2) & (y >= 80))
    return body, cavity


def test_cavity_behind_a_narrow_mouth_is_added():
    body, cavity = _head_with_nose(mouth_mm=6)
    out = add_internal_air(body, SPACING)
    assert out[cavity].all()
    assert (out & ~body).sum() >= cavity.sum()
    assert not (body & ~out).any()  # nothing taken away


def test_wide_opening_and_notch_stay_outside():
    # A mouth of 30 mm is wider than the closing disk (14 mm): the cavity is outside air.
    body, cavity = _head_with_nose(mouth_mm=30)
    out = add_internal_air(body, SPACING)
    assert not out[cavity].any()
    # A 6 mm slot is filled by the closing but encloses no hole: the skin there stays skin.
    body, cavity = _head_with_nose(mouth_mm=0, notch_mm=6)
    body |= cavity  # a closed cavity is a hole the body mask already holds
    np.testing.assert_array_equal(add_internal_air(body, SPACING), body)


def test_coarse_grid_finds_the_same_cavity():
    # 0.5 mm pixels: the closing runs on a 1 mm grid; the cavity is the same as on the fine grid
    # (the mouth's plug, at low y, may differ by a coarse cell).
    body, cavity = _head_with_nose(mouth_mm=6, scale=2)
    sp = (2.0, 0.5, 0.5)
    coarse = add_internal_air(body, sp)
    fine = add_internal_air(body, sp, coarse_pixel_mm=0.5)
    assert fine[cavity].all() and coarse[cavity].mean() >= 0.98
    differ = np.argwhere(coarse != fine)
    assert differ.size == 0 or differ[:, 1].max() < 2 * 22


def test_empty_mask():
    empty = np.zeros((3, 10, 10), bool)
    assert not add_internal_air(empty, SPACING).any()


def test_skull_is_a_shell_round_soft_tissue():
    z, y, x = np.mgrid[0:4, 0:120, 0:120]
    r2 = (y - 60) ** 2 + (x - 60) ** 2
    enclosed = r2 < 50 ** 2  # a hole of about 7850 mm^2
    brain = np.full(enclosed.shape, 1000.0, np.float32)
    brain[enclosed] = 30.0
    assert is_skull(enclosed, brain, SPACING)
    lung = np.where(enclosed, -800.0, 1000.0).astype(np.float32)
    assert not is_skull(enclosed, lung, SPACING)  # a rib cage round lung
    small = r2 < 30 ** 2  # about 2800 mm^2: a bone's marrow, not a brain
    assert not is_skull(small, brain, SPACING)


def _reference_internal_air(mask, spacing_zyx, mouth_radius_mm=7.0, coarse_pixel_mm=2.0):
    """The definition the slow way: the closing by two in-plane distance transforms on every
    slice, no shortcut (what add_internal_air computed before its disk morphology)."""
    import cc3d

    from calcinosis.anatomy.morphology import bbox_of, dilate_mm, erode_mm, fill_holes_in_plane

    box = bbox_of(mask)
    sub = mask[box]
    stride = [1] + [max(1, int(coarse_pixel_mm // float(s))) for s in spacing_zyx[1:]]
    coarse_sp = [float(s) * k for s, k in zip(spacing_zyx, stride)]
    coarse = sub[:, ::stride[1], ::stride[2]]
    pad = [(0, 0)] + [(int(np.ceil(mouth_radius_mm / s)) + 1,) * 2 for s in coarse_sp[1:]]
    padded = np.pad(coarse, pad)
    closed = erode_mm(dilate_mm(padded, coarse_sp, mouth_radius_mm, in_plane=True), coarse_sp,
                      mouth_radius_mm, in_plane=True) | padded
    filled = fill_holes_in_plane(closed)
    enclosed = filled & ~closed
    labels = cc3d.connected_components(filled & ~padded, connectivity=6)
    keep = np.zeros(int(labels.max()) + 1, bool)
    keep[np.unique(labels[enclosed])] = True
    keep[0] = False
    cavity = keep[labels][:, pad[1][0]:pad[1][0] + coarse.shape[1], pad[2][0]:pad[2][0] + coarse.shape[2]]
    cavity = np.repeat(np.repeat(cavity, stride[1], axis=1), stride[2], axis=2)[:, :sub.shape[1], :sub.shape[2]]
    out = mask.copy()
    out[box] = fill_holes_in_plane(sub | cavity)
    return out


def test_equals_the_distance_transform_closing():
    cases = [(_head_with_nose(mouth_mm=m, notch_mm=n)[0], SPACING) for m, n in ((6, 0), (14, 0), (30, 6), (0, 6), (6, 6))]
    cases.append((_head_with_nose(mouth_mm=6, scale=2)[0], (2.0, 0.5, 0.5)))
    # A cavity that opens only on some slices, and a slice with no body.
    body, cavity = _head_with_nose(mouth_mm=4)
    body[6:] |= cavity[6:] | _head_with_nose(mouth_mm=4)[0][6:]
    body[6:, :20] = _head_with_nose(mouth_mm=0)[0][6:, :20]
    body[9] = False
    cases.append((body, SPACING))
    added = 0
    for mask, sp in cases:
        got = add_internal_air(mask, sp)
        np.testing.assert_array_equal(got, _reference_internal_air(mask, sp))
        np.testing.assert_array_equal(mask & got, mask)
        added += int((got & ~mask).sum())
    assert added > 0  # some of the cases have a cavity to add


def test_copy_false_returns_the_input_only_when_nothing_is_added():
    body, cavity = _head_with_nose(mouth_mm=30)  # no cavity taken in
    before = body.copy()
    same = add_internal_air(body, SPACING, copy=False)
    assert same is body
    fresh = add_internal_air(body, SPACING)
    assert fresh is not body and np.array_equal(fresh, body)
    body, cavity = _head_with_nose(mouth_mm=6)  # a cavity is added: a new array, input kept
    before = body.copy()
    out = add_internal_air(body, SPACING, copy=False)
    assert out is not body and out[cavity].all()
    np.testing.assert_array_equal(body, before)
