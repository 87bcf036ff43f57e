"""Follow-up: register two CT visits of one patient and follow each deposit.

:func:`compare_visits` registers the follow-up to the baseline
(:func:`register_volumes`), matches deposits (:func:`match_lesions`) and gives each
a :class:`Status`; :func:`write_comparison` writes ``changes.csv``,
``comparison.json`` and ``report.html``. ``calcinosis compare`` is
:func:`calcinosis.follow.cli.run_compare`.
"""

from calcinosis.follow.compare import Comparison, compare_visits
from calcinosis.follow.config import AffineMode, CompareConfig, RegistrationConfig
from calcinosis.follow.matching import Change, Status, match_lesions
from calcinosis.follow.outputs import read_track_ids, write_comparison
from calcinosis.follow.registration import Registration, register_volumes
from calcinosis.follow.visit import Visit, load_analysis_folder, visit_from_analysis

__all__ = [
    "AffineMode",
    "Change",
    "CompareConfig",
    "Comparison",
    "RegistrationConfig",
    "Registration",
    "Status",
    "Visit",
    "compare_visits",
    "load_analysis_folder",
    "match_lesions",
    "read_track_ids",
    "register_volumes",
    "visit_from_analysis",
    "write_comparison",
]
