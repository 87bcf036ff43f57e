"""The 2-D radiograph path: read, segment, detect, measure and score calcinosis.

Public API: :func:`read_radiograph`, :func:`analyze_radiograph`,
:func:`write_radiograph_outputs`, :func:`render_radiograph_section_html`,
:func:`compare_summaries`.
"""

from calcinosis.radiograph.analysis import RadiographDeposit, RadiographResult, analyze_radiograph
from calcinosis.radiograph.compare import compare_summaries
from calcinosis.radiograph.io import Radiograph, radiograph_from_array, read_radiograph
from calcinosis.radiograph.outputs import render_radiograph_section_html, write_radiograph_outputs

__all__ = [
    "Radiograph",
    "RadiographDeposit",
    "RadiographResult",
    "analyze_radiograph",
    "compare_summaries",
    "radiograph_from_array",
    "read_radiograph",
    "render_radiograph_section_html",
    "write_radiograph_outputs",
]
