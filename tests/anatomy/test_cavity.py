"""The trunk's body cavity on a drawn cross-section: where the front wall is.

The section (2 mm pixels, y running posterior) is an ellipse of skin and subcutaneous fat
round a muscle ellipse; inside the muscle lies the viscera's ellipse, in front of a
vertebral body; eight ribs sit in the middle of the muscle wall, the anterior pair far
back (as at the costal margin), so the hull of the bone has its front chord across the
abdomen. Distances below are from the drawing.
"""

from __future__ import annotations

import numpy as np
import pytest

from calcinosis.anatomy.cavity import find_cavity

PIXEL_MM = 2.0
BODY = (150.0, 100.0)  # semi-axes (mm), centred at the origin
FAT_MM = 25.0  # in front and at the sides; 20 mm at the back
MUSCLE_FRONT_Y = -BODY[1] + FAT_MM  # -75
MUSCLE_BACK_Y = BODY[1] - 20.0  # 80
RIB_DEG = (15, 40, 140, 165, 195, 215, 325, 345)


def _ellipse(x, y, cx, cy, ax, ay):
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 <= 1.0


def _section(front_wall_mm: float, sternum: bool, fat_pad=None, n_slices: int = 6):
    ys = np.arange(-110.0, 110.0 + 1e-6, PIXEL_MM)
    xs = np.arange(-160.0, 160.0 + 1e-6, PIXEL_MM)
    y, x = np.meshgrid(ys, xs, indexing="ij")
    body = _ellipse(x, y, 0, 0, *BODY)
    hu = np.full(y.shape, -1000.0)
    hu[body] = 40.0  # skin
    hu[_ellipse(x, y, 0, 0, BODY[0] - 2.5, BODY[1] - 2.5)] = -100.0
    m_cy, m_ay = 0.5 * (MUSCLE_FRONT_Y + MUSCLE_BACK_Y), 0.5 * (MUSCLE_BACK_Y - MUSCLE_FRONT_Y)
    m_ax = BODY[0] - FAT_MM
    hu[_ellipse(x, y, 0, m_cy, m_ax, m_ay)] = 50.0
    c_front, c_back = MUSCLE_FRONT_Y + front_wall_mm, MUSCLE_BACK_Y - 12.0
    hu[_ellipse(x, y, 0, 0.5 * (c_front + c_back), m_ax - 12.0, 0.5 * (c_back - c_front))] = 40.0
    if fat_pad is not None:  # fat inside the cavity (mesentery): not subcutaneous fat
        hu[_ellipse(x, y, *fat_pad, 6.0, 6.0)] = -100.0
    bone = _ellipse(x, y, 0, 40.0, 22.0, 16.0)  # vertebral body; its front at y = 24
    for deg in RIB_DEG:
        t = np.radians(deg)
        bone |= _ellipse(x, y, (m_ax - 6.0) * np.cos(t), m_cy + (m_ay - 6.0) * np.sin(t), 4.0, 4.0)
    if sternum:
        bone |= _ellipse(x, y, 0, MUSCLE_FRONT_Y + 30.0, 12.0, 4.0)
    hu[bone] = 700.0
    stack = lambda a: np.repeat(a[None], n_slices, axis=0)  # noqa: E731
    cavity = find_cavity(stack(body), stack(bone), (PIXEL_MM,) * 3, np.ones(n_slices, bool),
                         hu=stack(hu).astype(np.int16))

    def at(x_mm, y_mm):
        return cavity.in_cavity((n_slices // 2, int(round((y_mm + 110.0) / PIXEL_MM)),
                                 int(round((x_mm + 160.0) / PIXEL_MM))))
    return at


@pytest.fixture(scope="module")
def abdomen():
    """No sternum, a 12 mm front wall, a fat pad in the cavity at (40, -35)."""
    return _section(12.0, sternum=False, fat_pad=(40.0, -35.0))


def test_below_the_sternum_the_cavity_reaches_the_abdominal_wall(abdomen):
    # The anterior ribs (215 and 325 degrees) put the hull's front chord at y = -42.5:
    # in front of it, 30 and 25 mm inside the fat's inner edge, is cavity.
    assert abdomen(0.0, -45.0)
    assert abdomen(-30.0, -48.0)
    # Beside the fat pad in the cavity: it is not subcutaneous fat (26 mm from the real one).
    assert abdomen(40.0, -45.0)
    # Deep inside the hull, in front of the spine.
    assert abdomen(0.0, 0.0)


def test_the_wall_itself_is_not_cavity(abdomen):
    assert not abdomen(0.0, -69.0)  # the middle of the 12 mm front muscle
    assert not abdomen(0.0, -58.0)  # 17 mm under the fat: within a thick abdominal wall
    assert not abdomen(0.0, -85.0)  # subcutaneous fat
    assert not abdomen(120.0, 0.0)  # lateral muscle wall
    assert not abdomen(0.0, 72.0)  # back muscles behind the spine
    assert not abdomen(0.0, 30.0)  # the vertebral body


def test_a_sternum_closes_the_front():
    """With a sternum the front of the hull is the chest wall: muscle in front of it is
    wall however thick (a pectoralis); without one the same spot, 22 mm under the fat, is
    in the abdomen."""
    chest = _section(35.0, sternum=True)
    open_front = _section(35.0, sternum=False)
    assert not chest(0.0, -53.0)
    assert open_front(0.0, -53.0)
    assert chest(0.0, -20.0)  # behind the sternum: inside the rib cage
