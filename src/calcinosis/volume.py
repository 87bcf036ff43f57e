"""The :class:`Volume`: a CT image in Hounsfield units with exact geometry.

Conventions
-----------
* ``array`` is indexed ``[z, y, x]`` (slice, row, column), as SimpleITK's
  ``GetArrayFromImage`` returns it.
* ``spacing``, ``origin`` and the columns of ``direction`` follow ITK: they are
  given in ``(x, y, z)`` index order and in patient LPS millimetres (x grows to
  the patient's left, y to posterior, z to superior).
* The physical point of voxel index ``(i, j, k)`` (x, y, z order) is
  ``origin + direction @ (spacing * (i, j, k))``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3-D CT volume in HU with its physical geometry.

    Parameters
    ----------
    array : numpy.ndarray
        HU values, int16 (or float), indexed ``[z, y, x]``.
    spacing : tuple of float
        Voxel size in mm, ``(x, y, z)``.
    origin : tuple of float
        LPS position in mm of the centre of voxel ``[0, 0, 0]``.
    direction : numpy.ndarray
        3 x 3 direction cosine matrix; column ``c`` is the LPS direction of index axis ``c``
        (``x, y, z``).
    metadata : dict
        Acquisition facts (``modality``, ``kvp``, ``slice_thickness_mm``,
        ``convolution_kernel``, ``contrast_agent``, ``series_uid``, ``study_uid``,
        ``source_format`` ...). Never holds patient identifiers unless asked.
    """

    array: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        arr = self.array
        if not isinstance(arr, np.ndarray):
            raise TypeError("Volume.array must be a numpy array")
        if arr.ndim != 3:
            raise ValueError(f"Volume.array must be 3-D [z, y, x], got {arr.ndim}-D")
        spacing = tuple(float(s) for s in self.spacing)
        if len(spacing) != 3 or not all(np.isfinite(spacing)) or min(spacing) <= 0:
            raise ValueError(f"Volume.spacing must be three positive numbers in mm, got {self.spacing}")
        origin = tuple(float(o) for o in self.origin)
        if len(origin) != 3 or not all(np.isfinite(origin)):
            raise ValueError(f"Volume.origin must be three finite numbers in mm, got {self.origin}")
        direction = np.asarray(self.direction, dtype=float).reshape(3, 3)
        if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
            raise ValueError("Volume.direction must be an orthonormal 3 x 3 matrix")
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "direction", direction)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(z, y, x)``."""
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        """Voxel size in mm in array order ``(z, y, x)``."""
        return (self.spacing[2], self.spacing[1], self.spacing[0])

    @property
    def voxel_volume_mm3(self) -> float:
        return float(self.spacing[0] * self.spacing[1] * self.spacing[2])

    def index_to_lps(self, index_zyx: np.ndarray) -> np.ndarray:
        """LPS mm of (fractional) array indices.

        ``index_zyx`` has shape ``(..., 3)`` in array order ``(z, y, x)``; the
        result has the same shape in ``(x, y, z)`` LPS order.
        """
        idx = np.asarray(index_zyx, dtype=float)[..., ::-1]  # -> (i, j, k) = (x, y, z)
        scaled = idx * np.asarray(self.spacing)
        return scaled @ self.direction.T + np.asarray(self.origin)

    def lps_to_index(self, points_lps: np.ndarray) -> np.ndarray:
        """Fractional array indices ``(z, y, x)`` of LPS points ``(..., 3)``."""
        p = np.asarray(points_lps, dtype=float) - np.asarray(self.origin)
        idx = (p @ self.direction) / np.asarray(self.spacing)
        return idx[..., ::-1]

    def axis_lps_directions(self) -> np.ndarray:
        """Unit LPS direction of each array axis, rows in array order ``(z, y, x)``."""
        return self.direction.T[::-1]

    def with_array(self, array: np.ndarray, **metadata: Any) -> "Volume":
        """A new volume on the same grid holding ``array``."""
        meta = dict(self.metadata)
        meta.update(metadata)
        return Volume(array, self.spacing, self.origin, self.direction, meta)
