"""Typed, frozen analysis settings, built once (by the CLI or the caller) and passed down."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from calcinosis.errors import InputError

# Hydroxyapatite mass per (cm^3 * HU) is about 0.8 mg (phantom-calibrated scanners 0.6-1.1): a
# calibration far past that is a typo or another unit, and NaN cannot be written to JSON.
MAX_CALIBRATION_MG_PER_HU_CM3 = 10.0
# ... and one far below it (1e-300 made every mass 0.0 mg).
MIN_CALIBRATION_MG_PER_HU_CM3 = 0.01


@dataclass(frozen=True)
class AnalysisConfig:
    """Settings of one CT analysis.

    Parameters
    ----------
    threshold_hu : float
        Detection threshold; a lesion's extent is its voxels at or above it (130 HU,
        the Agatston threshold, by default).
    mass_calibration_mg_per_hu_cm3 : float
        ``c`` in ``mass = c * sum(HU - background) * voxel volume``: hydroxyapatite
        equivalent mg per (cm^3 * HU). 0.8 unless a phantom calibration is known.
    seed_sigma : float
        A lesion needs a core whose smoothed HU exceeds the local soft-tissue level by
        this many standard deviations of the smoothed image noise; this, not a tuned
        constant, is what rejects noise specks on noisy scans.
    min_volume_mm3 : float
        Smallest lesion kept (a 1 mm sphere is 0.52 mm^3).
    metal_hu : float
        Objects with a peak at or above this are metal (jewellery, leads, implants), never lesions.
    bone_min_volume_mm3, bone_min_extent_mm : float
        A dense connected structure larger than either is treated as bone (or skeletal
        cartilage), not as a deposit; deposits attached to it are split off.
    juxta_osseous_mm, cutaneous_mm, midline_mm : float
        Compartment and side rules of the output contract.
    """

    threshold_hu: float = 130.0
    mass_calibration_mg_per_hu_cm3: float = 0.8
    seed_sigma: float = 5.0
    min_volume_mm3: float = 0.5
    metal_hu: float = 2500.0
    bone_min_volume_mm3: float = 6000.0
    bone_min_extent_mm: float = 45.0
    juxta_osseous_mm: float = 5.0
    cutaneous_mm: float = 3.0
    midline_mm: float = 10.0
    shell_mm: float = 1.5

    def __post_init__(self) -> None:
        if not -200.0 <= self.threshold_hu <= 1000.0:
            raise InputError(
                f"threshold_hu={self.threshold_hu} is outside -200..1000 HU; calcification "
                "thresholds are usually 130 HU"
            )
        if not MIN_CALIBRATION_MG_PER_HU_CM3 <= self.mass_calibration_mg_per_hu_cm3 <= MAX_CALIBRATION_MG_PER_HU_CM3:
            raise InputError(
                f"mass calibration {self.mass_calibration_mg_per_hu_cm3:g} is not a number of mg per (cm^3 * HU) "
                f"in {MIN_CALIBRATION_MG_PER_HU_CM3:g}..{MAX_CALIBRATION_MG_PER_HU_CM3:g} (hydroxyapatite: about 0.8)")
        for name in ("seed_sigma", "min_volume_mm3", "bone_min_volume_mm3", "bone_min_extent_mm",
                     "juxta_osseous_mm", "cutaneous_mm", "midline_mm", "shell_mm"):
            if not getattr(self, name) >= 0:  # NaN too
                raise InputError(f"{name} must be a number, not negative")
        if self.shell_mm < 1.0:
            raise InputError("shell_mm must be at least 1 mm (the contract's mass shell)")
        if self.metal_hu <= self.threshold_hu:
            raise InputError("metal_hu must be above threshold_hu")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
