"""Settings of the ultrasound deposit detector (a typed, frozen object built once)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["UltrasoundConfig"]


@dataclass(frozen=True)
class UltrasoundConfig:
    """Detector settings; lengths in mm, grey levels on the 0-255 display scale.

    Attributes
    ----------
    min_width_mm, max_width_mm : float
        Lateral extent of a deposit; wider bright structures are interfaces (fascia, cortex).
    min_thickness_mm : float
        Diameter of the opening that removes thin bright lines before foci are labelled.
    outline_opening_mm : float
        Diameter of the opening applied to a focus's half-maximum outline, so the outline
        does not run along a thin interface the deposit touches.
    max_elongation : float
        Largest width/thickness of a deposit; longer, flatter foci are linear interfaces.
    max_shadow_ratio : float
        Largest (mean grey beneath) / (mean grey beside) a deposit's shadow may have.
    min_shadow_drop : float
        Or at least this many grey levels darker beneath than beside: on a log-compressed
        display a shadow lowers the grey level by a fixed amount whatever the tissue's
        brightness (18 levels: about 3 dB on a 40 dB display); the phantom's tissue away from
        deposits drops 12 at most.
    shadow_length_mm : float
        Depth of the band beneath the focus in which the shadow is measured.
    contrast_sd : float
        How many speckle SDs above the local echo level a hyperechoic pixel must be.
    bright_percentile : float
        A hyperechoic pixel must also be at least this percentile of the region.
    peak_percentile : float
        The brightest point of a deposit must reach at least this percentile of the region.
    min_beside_level : float
        Below this grey level beside a focus, a shadow cannot be judged.
    skin_margin_mm : float
        Foci whose superficial edge lies closer than this below the skin line are the skin's
        own entry echo.
    skin_search_mm : float
        The skin line is searched this deep below the top of the echo field.
    skin_smoothing_mm : float
        Median smoothing of the skin line across columns.
    nominal_pixel_mm : float
        Pixel size assumed for the filter sizes when the image declares none (results are
        then reported in pixels).
    max_track_gap_mm : float
        Largest centroid shift between consecutive frames for one deposit track.
    """

    min_width_mm: float = 1.0
    max_width_mm: float = 12.0
    min_thickness_mm: float = 0.6
    outline_opening_mm: float = 0.9
    max_elongation: float = 6.0
    max_shadow_ratio: float = 0.8
    min_shadow_drop: float = 18.0
    shadow_length_mm: float = 5.0
    contrast_sd: float = 2.0
    bright_percentile: float = 95.0
    peak_percentile: float = 98.5
    min_beside_level: float = 20.0
    skin_margin_mm: float = 0.6
    skin_search_mm: float = 6.0
    skin_smoothing_mm: float = 3.0
    nominal_pixel_mm: float = 0.1
    max_track_gap_mm: float = 2.0

    def __post_init__(self) -> None:
        for name in ("min_width_mm", "max_width_mm", "min_thickness_mm", "max_elongation", "min_shadow_drop",
                     "shadow_length_mm", "contrast_sd", "skin_smoothing_mm", "nominal_pixel_mm",
                     "max_track_gap_mm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"UltrasoundConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 < self.max_shadow_ratio < 1:
            raise ValueError(f"UltrasoundConfig.max_shadow_ratio must be in (0, 1), got {self.max_shadow_ratio!r}")
        for name in ("bright_percentile", "peak_percentile"):
            if not 0 <= getattr(self, name) < 100:
                raise ValueError(f"UltrasoundConfig.{name} must be in [0, 100), got {getattr(self, name)!r}")
        if self.min_width_mm >= self.max_width_mm:
            raise ValueError("UltrasoundConfig.min_width_mm must be smaller than max_width_mm")
