"""Typed, frozen settings of a follow-up comparison, built once and passed down."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

from calcinosis.errors import InputError


class AffineMode(str, Enum):
    """Whether the rigid registration is refined by an affine one."""

    AUTO = "auto"  # keep the affine result only where it fits clearly better and stays plausible
    NEVER = "never"
    ALWAYS = "always"


@dataclass(frozen=True)
class RegistrationConfig:
    """Settings of the follow-up -> baseline registration.

    Parameters
    ----------
    resolution_mm : float
        Isotropic voxel size (mm) of the images the registration runs on; 2 mm is
        plenty for bone and body outline and keeps it fast.
    sampling_fraction : float
        Fraction of the fixed image's voxels the metric samples at each level.
    fine_resolution_mm : float or None
        The best rigid fit is refined once more on images of this voxel size (mm),
        sampling as many points as the coarse levels; ``None`` (default) skips it:
        with slices of different thickness a finer grid mostly fits the slice profiles.
    seed : int
        Seed of that sampling: the same pair always gives the same transform.
    iterations : int
        Optimiser iterations per resolution level.
    affine : AffineMode or str
        ``auto``: try an affine refinement and keep it only if it lowers the metric by
        the fraction ``affine_min_gain``, improves the bone overlap (Dice) by
        ``affine_min_dice_gain`` and scales by no more than ``affine_max_scale``
        (a rigid fit is the truth for bone; affine terms mostly absorb slice-profile
        differences unless posture or scanner calibration changed).
    deposit_refinement : bool
        After the image registration, correct a residual translation with the
        constellation of deposits (anatomy that is nearly constant along the limb,
        such as the femoral shaft, leaves the shift along it undetermined).
    max_refinement_mm : float
        Largest translation the deposit refinement may add.
    """

    resolution_mm: float = 2.0
    sampling_fraction: float = 0.25
    fine_resolution_mm: float | None = None
    seed: int = 20240611
    iterations: int = 200
    affine: AffineMode | str = AffineMode.AUTO
    affine_min_gain: float = 0.10
    affine_min_dice_gain: float = 0.01
    affine_max_scale: float = 0.05
    deposit_refinement: bool = True
    max_refinement_mm: float = 25.0

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "affine", AffineMode(self.affine))
        except ValueError as exc:
            raise InputError(f"affine must be one of {[m.value for m in AffineMode]}, got {self.affine!r}") from exc
        if not 0.5 <= self.resolution_mm <= 8.0:
            raise InputError(f"registration resolution_mm must be in 0.5..8 mm, got {self.resolution_mm}")
        if not 0.01 <= self.sampling_fraction <= 1.0:
            raise InputError(f"sampling_fraction must be in 0.01..1, got {self.sampling_fraction}")
        if self.iterations < 1:
            raise InputError(f"iterations must be >= 1, got {self.iterations}")


@dataclass(frozen=True)
class CompareConfig:
    """Settings of the deposit-by-deposit comparison.

    Parameters
    ----------
    change_pct : float
        A deposit (and the total burden) has grown / shrunk when its mass changes by
        more than this percentage (25 %, the published change rule, by default).
    gate_min_mm : float
        Smallest distance (mm) within which two deposit centroids may be matched.
    gate_radius_factor : float
        The gate grows with size: ``max(gate_min_mm, factor * (r_baseline + r_followup))``
        with ``r`` the radius (mm) of the sphere of the deposit's volume.
    fov_margin_mm : float
        A deposit counts as covered by the other scan only when its centroid lies at
        least its extent (half its largest diameter, at least the radius of the sphere of
        its volume) plus this margin inside that scan's field of view, not counting that
        scan's first and last slice (where the analysis cannot report a deposit). A deposit
        found in both scans counts as covered.
    registration : RegistrationConfig
    noise_sds : float
        A change larger than ``change_pct`` is still ``stable`` when the two masses differ by
        no more than this many SDs of the image noise (each lesion's ``mass_sd_mg``, added in
        quadrature; changes.csv's detail says ``within_noise``): on a noisy scan a small
        deposit's mass moves by more than 25 % from noise alone. 0 turns the rule off; so does
        a lesions.csv without noise SDs (written before they were added).
    """

    change_pct: float = 25.0
    gate_min_mm: float = 5.0
    gate_radius_factor: float = 1.5
    fov_margin_mm: float = 1.0
    registration: RegistrationConfig = RegistrationConfig()
    noise_sds: float = 2.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.noise_sds < 100.0:
            raise InputError(f"noise_sds must be in [0, 100), got {self.noise_sds}")
        if not 0.0 < self.change_pct < 1000.0:
            raise InputError(f"change_pct must be a percentage in (0, 1000), got {self.change_pct}")
        if self.gate_min_mm <= 0 or self.gate_radius_factor < 0:
            raise InputError("gate_min_mm must be positive and gate_radius_factor non-negative")
        if self.fov_margin_mm < 0:
            raise InputError(f"fov_margin_mm must be >= 0, got {self.fov_margin_mm}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["registration"]["affine"] = AffineMode(self.registration.affine).value
        return d
