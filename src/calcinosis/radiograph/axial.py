"""Contrast along a long bone's axis: a deposit detector that ignores the bone's own profile.

Over a long-bone shaft the radiograph barely changes along the bone's axis,
whatever the cortex and marrow do across it. A deposit lying over the shaft is
brighter than the bone a few millimetres before *and* after it along that
axis; a cortical edge, the shaft itself and a bone end are not (at an end, the
side towards the shaft is at least as bright). This module measures

    axial_contrast(p) = I(p) - max(I(p + d*a), I(p - d*a))

with ``a`` the local bone axis (the structure tensor's least-varying
direction) and ``d`` an offset larger than a deposit's radius. It is defined
only where the bone outline has a clear direction (its distance map's
structure tensor is strongly anisotropic) and both samples lie on bone at the
same depth from its edge: shafts, not joints, condyles, round carpal bones or
bone ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.feature import structure_tensor

from calcinosis.radiograph.segment import _px


@dataclass(frozen=True)
class AxialConfig:
    """Settings of the along-axis detector (sizes in mm)."""

    offset_mm: float = 5.0
    smoothing_mm: float = 0.8
    tensor_sigma_mm: float = 1.5
    min_coherence: float = 0.6
    width_tolerance: float = 0.15
    width_tolerance_mm: float = 0.5
    reach_factor: float = 2.0
    crop_margin_mm: float = 8.0


def axial_contrast(
    smooth: np.ndarray,
    bone: np.ndarray,
    spacing: tuple[float, float],
    config: AxialConfig = AxialConfig(),
) -> tuple[np.ndarray, np.ndarray]:
    """Along-axis contrast over bone and where it is defined.

    Parameters
    ----------
    smooth : ndarray (rows, cols), float
        The radiograph, bright = dense (lightly smoothed).
    bone : ndarray of bool
        Bone mask of the same shape.
    spacing : (row_mm, col_mm)

    Returns
    -------
    contrast : ndarray of float32
        ``I(p) - max(I(p + d*a), I(p - d*a))`` in image units; 0 where undefined.
    valid : ndarray of bool
        Pixels where it is defined: on bone, both samples on bone, clear orientation.
    """
    contrast = np.zeros(smooth.shape, dtype=np.float32)
    valid = np.zeros(smooth.shape, dtype=bool)
    if not bone.any():
        return contrast, valid
    margin = int(np.ceil(_px(config.crop_margin_mm, spacing)))
    rows, cols = np.nonzero(bone)
    r0, r1 = max(rows.min() - margin, 0), min(rows.max() + margin + 1, bone.shape[0])
    c0, c1 = max(cols.min() - margin, 0), min(cols.max() + margin + 1, bone.shape[1])
    crop = ndimage.gaussian_filter(smooth[r0:r1, c0:c1].astype(np.float32), _px(config.smoothing_mm, spacing))
    b = bone[r0:r1, c0:c1]
    # Orientation and width from the bone outline, not the image: a bright deposit must not
    # turn the axis. The distance to the bone's edge changes across a shaft, not along it.
    depth = ndimage.distance_transform_edt(b).astype(np.float32)
    arr, arc, acc = structure_tensor(depth, sigma=_px(config.tensor_sigma_mm, spacing), order="rc")
    trace = arr + acc
    root = np.sqrt((arr - acc) ** 2 + 4 * arc**2)
    coherence = np.where(trace > 1e-12, root / np.maximum(trace, 1e-12), 0.0)
    # Direction of strongest change (across the bone), then the axis at right angles to it.
    across = 0.5 * np.arctan2(2 * arc, arr - acc)  # angle from the row axis towards the column axis
    d_px = _px(config.offset_mm, spacing)
    dr, dc = -np.sin(across) * d_px, np.cos(across) * d_px
    rr, cc = np.mgrid[0 : crop.shape[0], 0 : crop.shape[1]].astype(np.float32)
    tol = np.maximum(config.width_tolerance * depth, _px(config.width_tolerance_mm, spacing))
    ok = b & (coherence >= config.min_coherence)
    samples = []
    for sign in (1.0, -1.0):
        coords = np.array([rr + sign * dr, cc + sign * dc])
        samples.append(ndimage.map_coordinates(crop, coords, order=1, mode="nearest"))
        # Both samples on the same straight shaft: bone at the same depth from its edge, here
        # and twice as far (no end, joint, condyle or small round bone within reach).
        for reach in (1.0, config.reach_factor):
            coords = np.array([rr + sign * reach * dr, cc + sign * reach * dc])
            far_depth = ndimage.map_coordinates(depth, coords, order=1, mode="constant")
            ok &= np.abs(far_depth - depth) <= tol
    ok &= depth > 0
    contrast[r0:r1, c0:c1] = np.where(ok, crop - np.maximum(samples[0], samples[1]), 0.0)
    valid[r0:r1, c0:c1] = ok
    return contrast, valid
