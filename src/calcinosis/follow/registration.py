"""Register a follow-up CT to its baseline: rigid, then affine where the anatomy needs it.

Convention: a :class:`Registration` maps *baseline* LPS points to *follow-up* LPS
points (``q = M p + o``), as a SimpleITK transform with the baseline fixed does;
:meth:`Registration.to_baseline` applies the inverse.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from calcinosis.follow.config import AffineMode, RegistrationConfig
from calcinosis.follow.features import FeatureImage, feature_image, mask_image

log = logging.getLogger(__name__)

# The best start is tried again turned by these angles (degrees) about the head-foot axis: a
# limb is nearly round, so from a start turned 10 degrees or more off the optimiser stopped
# part-way (elbow phantom turned 10 degrees about its long axis: 3.6 found, two deposits each
# resolved and new; 30 degrees: 17.6 found, five of each).
TURN_STARTS_DEG = (-20.0, -10.0, 10.0, 20.0)


@dataclass(frozen=True, eq=False)
class Registration:
    """A baseline -> follow-up mapping of LPS points and how well it fits.

    Attributes
    ----------
    matrix, offset : numpy.ndarray
        ``q_followup = matrix @ p_baseline + offset`` (mm).
    kind : str
        ``rigid`` or ``affine``.
    initialisation : str
        Which start the best rigid fit came from (``identity``, ``moments``, ``moments_xy``).
    metric : float
        Final mean-squares metric of the feature images (lower is better).
    bone_dice, body_dice : float
        Dice of bone and body masks after registration, inside the common field of view.
    overlap_fraction : float
        Fraction of the baseline body that the follow-up's field of view covers.
    refinement_mm : tuple of float
        Translation (baseline LPS mm) added by the deposit refinement (zeros if none).
    """

    matrix: np.ndarray
    offset: np.ndarray
    kind: str
    initialisation: str
    metric: float
    bone_dice: float
    body_dice: float
    overlap_fraction: float
    refinement_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def to_followup(self, points_lps: np.ndarray) -> np.ndarray:
        """Follow-up LPS of baseline LPS points ``(..., 3)``."""
        return np.asarray(points_lps, float) @ self.matrix.T + self.offset

    def to_baseline(self, points_lps: np.ndarray) -> np.ndarray:
        """Baseline LPS of follow-up LPS points ``(..., 3)``."""
        return np.linalg.solve(self.matrix, (np.asarray(points_lps, float) - self.offset).T).T

    def sitk_transform(self) -> sitk.AffineTransform:
        """The baseline -> follow-up mapping as a SimpleITK transform (for resampling onto the baseline)."""
        tx = sitk.AffineTransform(3)
        tx.SetMatrix(tuple(float(v) for v in self.matrix.ravel()))
        tx.SetTranslation(tuple(float(v) for v in self.offset))
        return tx

    def shifted(self, shift_baseline_mm: np.ndarray) -> "Registration":
        """The same mapping with follow-up points landing ``shift`` further along in the baseline."""
        d = np.asarray(shift_baseline_mm, float)
        return Registration(self.matrix, self.offset - self.matrix @ d, self.kind, self.initialisation,
                            self.metric, self.bone_dice, self.body_dice, self.overlap_fraction,
                            tuple(float(v) for v in np.asarray(self.refinement_mm) + d))

    def rotation_deg(self) -> float:
        """Angle (degrees) of the rotation part of ``matrix``."""
        u, _, vt = np.linalg.svd(self.matrix)
        rot = u @ vt
        return float(np.degrees(np.arccos(np.clip((np.trace(rot) - 1) / 2, -1.0, 1.0))))

    def scale_factors(self) -> tuple[float, float, float]:
        return tuple(float(s) for s in np.linalg.svd(self.matrix, compute_uv=False))  # type: ignore[return-value]


def register_volumes(baseline, followup, config: RegistrationConfig = RegistrationConfig(), *,
                     baseline_labels: np.ndarray | None = None,
                     followup_labels: np.ndarray | None = None) -> Registration:
    """Register ``followup`` (moving) to ``baseline`` (fixed) on bone and body outline.

    Several rigid starts are tried (no motion, centre-of-body alignment, and the
    latter in-plane only, since a different scan range shifts the centre along z);
    the best-fitting one is kept, tried again turned about the head-foot axis
    (``TURN_STARTS_DEG``), then refined by an affine fit where
    ``config.affine`` allows it. Deterministic: fixed metric sampling seed, one thread.
    """
    res = config.resolution_mm
    fixed = feature_image(baseline, baseline_labels, res)
    moving = feature_image(followup, followup_labels, res)
    if not fixed.body.any() or not moving.body.any():
        raise _no_body_error(fixed, moving)
    centre_f = _body_centre(fixed)
    centre_m = _body_centre(moving)
    starts = {
        "identity": np.zeros(3),
        "moments": centre_m - centre_f,
        "moments_xy": _in_plane(centre_m - centre_f, baseline.direction),
    }
    results = []
    for name, shift in starts.items():
        tx = sitk.Euler3DTransform()
        tx.SetCenter(tuple(float(c) for c in centre_f))
        tx.SetTranslation(tuple(float(s) for s in shift))
        fitted, metric = _run(fixed, moving, tx, config, levels=(4, 2))
        overlap = _overlap_fraction(fixed, moving, fitted)
        log.debug("rigid start %s: metric %.1f overlap %.2f", name, metric, overlap)
        results.append((name, fitted, metric, overlap))
    best_overlap = max(r[3] for r in results)
    eligible = [r for r in results if r[3] >= 0.6 * best_overlap]
    name, rigid, best_metric, _ = min(eligible, key=lambda r: r[2])
    rigid = _best_turn(fixed, moving, rigid, best_metric, config, name)
    rigid, metric = _run(fixed, moving, rigid, config, levels=(1,))  # full resolution for the winner only
    if config.fine_resolution_mm and config.fine_resolution_mm < res:
        # Only the best start is refined on a finer grid: this is where sub-millimetre
        # accuracy comes from (a 2 mm grid blurs thin cortex and the body edge).
        fine_fixed = feature_image(baseline, baseline_labels, config.fine_resolution_mm)
        fine_moving = feature_image(followup, followup_labels, config.fine_resolution_mm)
        if fine_fixed.body.any() and fine_moving.body.any():
            scale = (config.fine_resolution_mm / res) ** 3
            refined, fine_metric = _run(fine_fixed, fine_moving, rigid, config, levels=(1,), fraction_scale=scale)
            if np.isfinite(fine_metric):
                rigid = refined
    kind, final = "rigid", rigid
    if config.affine != AffineMode.NEVER:
        aff = sitk.AffineTransform(3)
        aff.SetCenter(rigid.GetCenter())
        aff.SetMatrix(rigid.GetMatrix())
        aff.SetTranslation(rigid.GetTranslation())
        fitted, aff_metric = _run(fixed, moving, aff, config, levels=(2, 1))
        scales = np.linalg.svd(np.asarray(fitted.GetMatrix()).reshape(3, 3), compute_uv=False)
        plausible = bool(np.all(np.abs(scales - 1.0) <= config.affine_max_scale))
        better = aff_metric < (1.0 - config.affine_min_gain) * metric
        quality = _quality(fixed, moving, rigid)
        if config.affine == AffineMode.ALWAYS or (plausible and better):
            aff_quality = _quality(fixed, moving, fitted)
            if config.affine == AffineMode.ALWAYS or aff_quality[0] >= quality[0] + config.affine_min_dice_gain:
                kind, final, metric, quality = "affine", fitted, aff_metric, aff_quality
    else:
        quality = _quality(fixed, moving, final)
    matrix, offset = _matrix_offset(final)
    bone_dice, body_dice, overlap = quality
    return Registration(matrix, offset, kind, name, float(metric), bone_dice, body_dice, overlap)


def _best_turn(fixed: FeatureImage, moving: FeatureImage, rigid: sitk.Euler3DTransform, metric: float,
               config: RegistrationConfig, name: str) -> sitk.Euler3DTransform:
    """``rigid``, or the fit from it turned by one of ``TURN_STARTS_DEG`` about the head-foot
    axis where that fits better: a lower metric and a higher bone Dice. The metric alone is
    not enough: it counts only the samples that land inside the follow-up, and where the
    follow-up's body is cut (a reconstruction circle smaller than the body) a fit turned 13
    degrees and shifted 80 mm scored lower than the one kept without the turns."""
    best, best_metric, best_dice = rigid, metric, None
    for turn in TURN_STARTS_DEG:
        tx = sitk.Euler3DTransform(rigid)
        tx.SetRotation(tx.GetAngleX(), tx.GetAngleY(), tx.GetAngleZ() + float(np.radians(turn)))
        fitted, turned_metric = _run(fixed, moving, tx, config, levels=(4, 2))
        log.debug("rigid start %s turned %+g deg: metric %.1f", name, turn, turned_metric)
        if not turned_metric < best_metric:
            continue
        if best_dice is None:
            best_dice = _quality(fixed, moving, best)[0]
        dice = _quality(fixed, moving, fitted)[0]
        if dice > best_dice:
            best, best_metric, best_dice = fitted, turned_metric, dice
    return best


def _run(fixed: FeatureImage, moving: FeatureImage, initial: sitk.Transform, config: RegistrationConfig,
         levels: tuple[int, ...], fraction_scale: float = 1.0) -> tuple[sitk.Transform, float]:
    reg = sitk.ImageRegistrationMethod()
    reg.SetNumberOfThreads(1)  # summation order fixed: the same pair gives the same transform
    reg.SetMetricAsMeanSquares()  # both are CT in HU: intensities correspond directly
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    fraction = min(1.0, config.sampling_fraction * fraction_scale)
    reg.SetMetricSamplingPercentage(fraction, config.seed)
    fixed_mask = _dilate(fixed.body, 3)
    if fixed.imaged is not None:
        fixed_mask &= fixed.imaged
    reg.SetMetricFixedMask(mask_image(fixed_mask, fixed.image))
    if moving.imaged is not None:  # a sample landing outside what the follow-up measured tells nothing
        reg.SetMetricMovingMask(mask_image(moving.imaged, moving.image))
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=4.0, minStep=0.01,
                                                 numberOfIterations=config.iterations,
                                                 relaxationFactor=0.6, gradientMagnitudeTolerance=1e-6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(list(levels))
    reg.SetSmoothingSigmasPerLevel([max(0.0, (f - 1) * 0.5) for f in levels])
    reg.SetInitialTransform(initial, inPlace=False)
    try:
        with _itk_warnings_silenced():
            out = reg.Execute(fixed.image, moving.image)
    except RuntimeError as exc:  # e.g. all samples fell outside the moving image
        log.debug("registration failed from this start: %s", exc)
        return initial, float("inf")
    final = out.GetNthTransform(0) if isinstance(out, sitk.CompositeTransform) else out
    return final, float(reg.GetMetricValue())


@contextmanager
def _itk_warnings_silenced():
    """ITK's warnings off while a registration runs. A start that leaves the two images apart
    (the identity start when the visits' table positions differ by tens of centimetres, as
    between scanners) makes ITK print "No valid points were found during metric evaluation"
    to the process's stderr, six lines of C++ per start, beside the command's own one line;
    such a start scores an infinite metric or loses to the others, which is handled here."""
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)


def _matrix_offset(tx: sitk.Transform) -> tuple[np.ndarray, np.ndarray]:
    """``M, o`` with ``tx(p) = M p + o`` for a matrix-offset transform."""
    t = sitk.AffineTransform(3)
    if isinstance(tx, sitk.Euler3DTransform):
        t.SetCenter(tx.GetCenter())
        t.SetMatrix(tx.GetMatrix())
        t.SetTranslation(tx.GetTranslation())
    else:
        t = sitk.AffineTransform(tx)
    m = np.asarray(t.GetMatrix(), float).reshape(3, 3)
    c = np.asarray(t.GetCenter(), float)
    o = np.asarray(t.GetTranslation(), float) + c - m @ c
    return m, o


def _resampled(moving_mask: np.ndarray, moving: FeatureImage, fixed: FeatureImage, tx) -> np.ndarray:
    img = sitk.Resample(mask_image(moving_mask, moving.image), fixed.image, tx, sitk.sitkNearestNeighbor, 0,
                        sitk.sitkUInt8)
    return sitk.GetArrayFromImage(img).astype(bool)


def _inside_moving(fixed: FeatureImage, moving: FeatureImage, tx) -> np.ndarray:
    imaged = np.ones(moving.body.shape, bool) if moving.imaged is None else moving.imaged
    return _resampled(imaged, moving, fixed, tx)


def _overlap_fraction(fixed: FeatureImage, moving: FeatureImage, tx) -> float:
    n = int(fixed.body.sum())
    return float((fixed.body & _inside_moving(fixed, moving, tx)).sum() / n) if n else 0.0


def _quality(fixed: FeatureImage, moving: FeatureImage, tx) -> tuple[float, float, float]:
    inside = _inside_moving(fixed, moving, tx)
    bone_m = _resampled(moving.bone, moving, fixed, tx)
    body_m = _resampled(moving.body, moving, fixed, tx)
    n = int(fixed.body.sum())
    overlap = float((fixed.body & inside).sum() / n) if n else 0.0
    return _dice(fixed.bone & inside, bone_m), _dice(fixed.body & inside, body_m), overlap


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return float(2.0 * (a & b).sum() / total) if total else float("nan")


def _body_centre(feat: FeatureImage) -> np.ndarray:
    idx = np.argwhere(feat.body).mean(axis=0)[::-1]  # (x, y, z) index
    return np.asarray(feat.image.TransformContinuousIndexToPhysicalPoint(tuple(float(i) for i in idx)))


def _in_plane(shift: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """``shift`` without its component along the slice axis (a scan range differs along it)."""
    axis = np.asarray(direction, float)[:, 2]
    return shift - axis * float(shift @ axis)


def _dilate(mask: np.ndarray, iterations: int) -> np.ndarray:
    from scipy import ndimage as ndi

    return ndi.binary_dilation(mask, iterations=iterations)


def _no_body_error(fixed: FeatureImage, moving: FeatureImage):
    from calcinosis.errors import InputError

    which = "baseline" if not fixed.body.any() else "follow-up"
    return InputError(f"no body found in the {which} CT; it cannot be registered (is it a CT of a patient?)")
