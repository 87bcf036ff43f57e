"""Matching of detected ultrasound foci to phantom truth, shared by the ultrasound tests and
``bench/bench_2d_accuracy.py`` (as ``tests/ct/accuracy.py`` is for CT)."""

from __future__ import annotations


def match_focus(focus, deposits, pixel_mm: float):
    """The ground-truth deposit whose box (grown by 1 mm) holds the focus centre, or None."""
    grow = 1.0 / pixel_mm
    for d in deposits:
        half_w = d.width_mm / pixel_mm / 2 + grow
        half_t = d.thickness_mm / pixel_mm / 2 + grow
        if abs(focus.col - d.x_px) <= half_w and abs(focus.row - d.y_px) <= half_t:
            return d
    return None
