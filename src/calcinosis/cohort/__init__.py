"""Cohorts: batch analysis of many CT studies on Dask, results in a registry database.

* :func:`run_batch` finds every study under a folder (:func:`discover_studies`),
  runs the CT pipeline on each on a Dask cluster, writes ``OUTROOT/<key>/`` and
  records every study in the registry (:class:`Registry`, any SQLAlchemy URL).
* :func:`cohort_status` and :func:`export_csv` read a registry back.
"""

from calcinosis.cohort.batch import BatchEvent, BatchReport, BatchSettings, run_batch
from calcinosis.cohort.discover import Discovery, Study, discover_studies, study_key
from calcinosis.cohort.export import CohortStatus, cohort_rows, cohort_status, export_csv
from calcinosis.cohort.fingerprint import input_checksum, settings_hash
from calcinosis.cohort.registry import SCHEMA_VERSION, Registry, database_url

__all__ = [
    "SCHEMA_VERSION",
    "BatchEvent",
    "BatchReport",
    "BatchSettings",
    "CohortStatus",
    "Discovery",
    "Registry",
    "Study",
    "cohort_rows",
    "cohort_status",
    "database_url",
    "discover_studies",
    "export_csv",
    "input_checksum",
    "run_batch",
    "settings_hash",
    "study_key",
]
