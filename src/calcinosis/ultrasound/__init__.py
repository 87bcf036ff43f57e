"""The 2-D ultrasound path: calcified deposits (hyperechoic foci with acoustic shadows) on B-mode.

Read (:func:`read_ultrasound`), analyse (:func:`analyze_ultrasound`), write
(:func:`write_ultrasound_outputs`); the report section is :func:`render_ultrasound_section_html`.
"""

from calcinosis.ultrasound.analysis import UltrasoundResult, UsDeposit, analyze_ultrasound
from calcinosis.ultrasound.config import UltrasoundConfig
from calcinosis.ultrasound.io import UltrasoundImage, UsRegion, read_ultrasound
from calcinosis.ultrasound.masks import FrameMasks, frame_masks
from calcinosis.ultrasound.report import (
    render_overlay_png,
    render_report_html,
    render_ultrasound_section_html,
    write_ultrasound_outputs,
)

__all__ = [
    "FrameMasks",
    "UltrasoundConfig",
    "UltrasoundImage",
    "UltrasoundResult",
    "UsDeposit",
    "UsRegion",
    "analyze_ultrasound",
    "frame_masks",
    "read_ultrasound",
    "render_overlay_png",
    "render_report_html",
    "render_ultrasound_section_html",
    "write_ultrasound_outputs",
]
