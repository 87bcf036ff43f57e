"""Clinical work-up of calcinosis: classify the type, apply the SSc criteria, list treatments.

Decision support for a clinician, not a diagnosis. The rules, criteria and
treatment knowledge are data files with citations in ``data/``.

Public functions: :func:`load_case`, :func:`run_workup`, :func:`write_workup`,
:func:`render_workup_section_html`, :func:`load_imaging_summary`.
"""

from calcinosis.clinical.case import Case, CaseFormatWarning, load_case, parse_case
from calcinosis.clinical.imaging import load_imaging_summary
from calcinosis.clinical.knowledge import Knowledge, load_knowledge
from calcinosis.clinical.report import render_workup_html, render_workup_section_html, write_workup
from calcinosis.clinical.workup import DISCLAIMER, Workup, run_workup

__all__ = [
    "DISCLAIMER",
    "Case",
    "CaseFormatWarning",
    "Knowledge",
    "Workup",
    "load_case",
    "load_imaging_summary",
    "load_knowledge",
    "parse_case",
    "render_workup_html",
    "render_workup_section_html",
    "run_workup",
    "write_workup",
]
