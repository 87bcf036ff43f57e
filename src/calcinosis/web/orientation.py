"""The viewer's grid: any volume shown the radiological way, without copying it.

The viewer indexes every volume as ``view[vz, vy, vx]`` where ``vx`` grows to the
patient's left, ``vy`` to posterior and ``vz`` to superior (the nearest LPS axes
of the acquisition grid). An axial image ``view[vz]`` then has anterior at the
top and the patient's right on the left of the screen, as radiologists read it.
The view is a numpy view (transpose and flips), never a copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ViewOrientation:
    """How a volume's index axes map onto the viewer's LPS-aligned axes.

    Attributes
    ----------
    index_axis : tuple of int
        For LPS axis ``a`` (0 = L, 1 = P, 2 = S), the ITK index axis (0 = x, 1 = y,
        2 = z) that runs closest to it.
    flipped : tuple of bool
        For LPS axis ``a``, whether that index axis runs against it.
    shape_xyz : tuple of int
        The volume's size in ITK index order ``(nx, ny, nz)``.
    """

    index_axis: tuple[int, int, int]
    flipped: tuple[bool, bool, bool]
    shape_xyz: tuple[int, int, int]

    @classmethod
    def of(cls, direction: np.ndarray, shape_zyx: tuple[int, ...]) -> ViewOrientation:
        """The orientation of a volume with ``direction`` (ITK columns) and array shape ``[z, y, x]``."""
        d = np.asarray(direction, dtype=float).reshape(3, 3)
        dominant = np.argmax(np.abs(d), axis=0)  # LPS axis of each index axis
        if sorted(dominant.tolist()) != [0, 1, 2]:  # oblique at 45 degrees: keep the grid as it is
            dominant = np.array([0, 1, 2])
        index_axis = [0, 0, 0]
        flipped = [False, False, False]
        for c, a in enumerate(dominant.tolist()):
            index_axis[a] = c
            flipped[a] = bool(d[a, c] < 0)
        nz, ny, nx = (int(n) for n in shape_zyx)
        return cls(tuple(index_axis), tuple(flipped), (nx, ny, nz))

    @property
    def view_shape(self) -> tuple[int, int, int]:
        """Shape of the view, ``(nvz, nvy, nvx)``."""
        return tuple(self.shape_xyz[self.index_axis[a]] for a in (2, 1, 0))

    def view(self, array_zyx: np.ndarray) -> np.ndarray:
        """``array_zyx`` (indexed ``[z, y, x]``) as ``view[vz, vy, vx]``; a view, not a copy."""
        # Array axis of ITK index axis c is 2 - c.
        out = np.transpose(array_zyx, [2 - self.index_axis[a] for a in (2, 1, 0)])
        flips = tuple(slice(None, None, -1) if self.flipped[a] else slice(None) for a in (2, 1, 0))
        return out[flips]

    def to_view(self, ijk: np.ndarray) -> np.ndarray:
        """View index ``(vx, vy, vz)`` of ITK index ``(i, j, k)`` (fractional allowed)."""
        ijk = np.asarray(ijk, dtype=float)
        out = np.empty(3)
        for a in range(3):
            c = self.index_axis[a]
            out[a] = (self.shape_xyz[c] - 1 - ijk[c]) if self.flipped[a] else ijk[c]
        return out

    def view_to_index_affine(self) -> np.ndarray:
        """4 x 4 matrix taking homogeneous ``(vx, vy, vz, 1)`` to ITK ``(i, j, k, 1)``."""
        m = np.zeros((4, 4))
        m[3, 3] = 1.0
        for a in range(3):
            c = self.index_axis[a]
            if self.flipped[a]:
                m[c, a] = -1.0
                m[c, 3] = self.shape_xyz[c] - 1
            else:
                m[c, a] = 1.0
        return m


def view_to_lps_affine(orientation: ViewOrientation, spacing_xyz, origin_xyz, direction) -> np.ndarray:
    """4 x 4 matrix taking homogeneous view index ``(vx, vy, vz, 1)`` to LPS mm."""
    index_to_lps = np.eye(4)
    index_to_lps[:3, :3] = np.asarray(direction, float).reshape(3, 3) @ np.diag(np.asarray(spacing_xyz, float))
    index_to_lps[:3, 3] = np.asarray(origin_xyz, float)
    return index_to_lps @ orientation.view_to_index_affine()


def view_spacing(orientation: ViewOrientation, spacing_xyz) -> tuple[float, float, float]:
    """Voxel size in mm along the view axes ``(vx, vy, vz)``."""
    return tuple(float(spacing_xyz[orientation.index_axis[a]]) for a in range(3))
