"""Registration images: a CT reduced to what should not change between visits.

The image registered is the body (table, clothing and objects on the skin removed)
with its soft tissue and bone, on a coarse isotropic grid. Calcified deposits are
painted over with soft tissue first: they are what the comparison measures, so
they must not steer the alignment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from calcinosis.anatomy.body import find_body
from calcinosis.io import volume_to_sitk
from calcinosis.volume import Volume

SOFT_TISSUE_HU = 40.0
BONE_HU = 250.0  # on the smoothed coarse image: cortex and most marrow, not muscle
_BODY_FLOOR = 300.0  # the body outline's step above the empty background


@dataclass(frozen=True, eq=False)
class FeatureImage:
    """A coarse registration image and its masks (arrays ``[z, y, x]`` on ``image``'s grid)."""

    image: sitk.Image  # float32 feature values: 0 outside the body
    hu: np.ndarray  # float32 smoothed HU on the coarse grid, deposits painted over
    body: np.ndarray  # bool
    bone: np.ndarray  # bool
    imaged: np.ndarray | None = None  # bool: what the scan measured (None: all of it); see not_imaged

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        s = self.image.GetSpacing()
        return (s[2], s[1], s[0])


def coarse_grid(volume: Volume, resolution_mm: float) -> sitk.Image:
    """An empty image with ``volume``'s direction and ``resolution_mm`` voxels, inside its extent.

    The coarse voxels lie wholly inside the volume, centred on it: a coarse voxel reaching
    past the volume's end would read as air there, an end of the body that is only the end
    of the scan, and the registration would line that up with the other scan's anatomy
    (the limb is nearly the same all along, so the scan's ends are what tells the shift
    along it). Centred, the grid is the same whichever end the slices are stored from.
    """
    spacing = np.asarray(volume.spacing, float)
    size_xyz = np.asarray(volume.shape[::-1], float)
    extent = spacing * size_xyz
    new_size = np.maximum(1, np.floor(extent / resolution_mm + 1e-6)).astype(int)
    new_spacing = np.full(3, float(resolution_mm))
    # The coarse grid's outer edges a (non-negative) half-remainder inside the volume's.
    start_edge = -0.5 * spacing + 0.5 * np.maximum(extent - new_size * new_spacing, 0.0)
    new_origin_idx = start_edge + 0.5 * new_spacing
    origin = np.asarray(volume.origin) + volume.direction @ new_origin_idx
    ref = sitk.Image([int(s) for s in new_size], sitk.sitkFloat32)
    ref.SetSpacing(tuple(float(s) for s in new_spacing))
    ref.SetOrigin(tuple(float(o) for o in origin))
    ref.SetDirection(tuple(float(d) for d in volume.direction.ravel()))
    return ref


def feature_image(volume: Volume, labels: np.ndarray | None, resolution_mm: float) -> FeatureImage:
    """The registration image of a CT (see the module docstring).

    Parameters
    ----------
    volume : Volume
        CT in HU.
    labels : numpy.ndarray, optional
        Deposit label map on ``volume``'s grid; its voxels are painted over.
    resolution_mm : float
        Isotropic voxel size of the result (mm).
    """
    image = sitk.Cast(volume_to_sitk(volume), sitk.sitkFloat32)
    # Anti-aliasing before the coarse grid; ITK wants the same positive sigma on every axis here.
    image = sitk.SmoothingRecursiveGaussian(image, 0.5 * resolution_mm)
    ref = coarse_grid(volume, resolution_mm)
    coarse = sitk.Resample(image, ref, sitk.Transform(), sitk.sitkLinear, -1000.0, sitk.sitkFloat32)
    hu = sitk.GetArrayFromImage(coarse)
    sp = tuple(reversed(ref.GetSpacing()))
    if labels is not None and labels.any():
        lab = volume_to_sitk(volume.with_array((labels > 0).astype(np.float32)))
        lab_c = sitk.GetArrayFromImage(sitk.Resample(lab, ref, sitk.Transform(), sitk.sitkLinear, 0.0,
                                                     sitk.sitkFloat32))
        deposit = ndi.binary_dilation(lab_c > 0.01, iterations=1)
        hu[deposit] = SOFT_TISSUE_HU
    body_found = find_body(np.clip(hu, -1024, 3071).astype(np.int16), sp)
    body = np.zeros(hu.shape, bool)
    if body_found.n_parts:
        body[body_found.crop] = body_found.mask
    bone = body & (hu > BONE_HU)
    feature = np.where(body, _BODY_FLOOR + np.clip(hu, -100.0, 1200.0), 0.0).astype(np.float32)
    out = sitk.GetImageFromArray(feature)
    out.CopyInformation(ref)
    imaged = None
    unmeasured = not_imaged(volume)
    if unmeasured is not None:
        share = sitk.Resample(volume_to_sitk(volume.with_array(unmeasured.astype(np.float32))), ref,
                              sitk.Transform(), sitk.sitkLinear, 1.0, sitk.sitkFloat32)
        # A coarse voxel is imaged when none of it is padding (its edge at the circle is not the body's).
        imaged = sitk.GetArrayFromImage(share) <= 0.0
    return FeatureImage(out, hu, body, bone, imaged)


def not_imaged(volume: Volume) -> np.ndarray | None:
    """Voxels outside the scan's reconstruction circle, or None when there are none: where the
    whole 3 x 3 x 3 neighbourhood reads :data:`~calcinosis.io.padding.PADDING_HU` or less
    (the reader's padding, or what scanners that do not pad write there; air that was measured
    has noise). The circle's edge is no edge of the body: where the circle was smaller than the
    body, the registration lined up the cut outline with the other scan's (a follow-up cut by
    the circle was registered 8 degrees and 32 mm off), and the overlap counted the corners as
    covered."""
    from calcinosis.io.padding import PADDING_HU

    low = np.asarray(volume.array) <= PADDING_HU
    if not low.any():
        return None
    out = ndi.binary_erosion(low, structure=np.ones((3, 3, 3), bool), border_value=1)
    return out if out.any() else None


def grid_image(volume: Volume, pixel_id: int = sitk.sitkUInt8) -> sitk.Image:
    """An empty SimpleITK image on ``volume``'s exact grid (a resampling reference)."""
    ref = sitk.Image([int(n) for n in volume.shape[::-1]], pixel_id)
    ref.SetSpacing(tuple(float(s) for s in volume.spacing))
    ref.SetOrigin(tuple(float(o) for o in volume.origin))
    ref.SetDirection(tuple(float(d) for d in volume.direction.ravel()))
    return ref


def mask_image(mask: np.ndarray, like: sitk.Image) -> sitk.Image:
    """A uint8 SimpleITK image of ``mask`` on ``like``'s grid."""
    img = sitk.GetImageFromArray(mask.astype(np.uint8))
    img.CopyInformation(like)
    return img
