"""``calcinosis serve``: a read-only web viewer for studies, deposits and comparisons.

:func:`~calcinosis.web.app.create_app` builds the FastAPI app from a
:class:`~calcinosis.web.catalog.Catalog` (a ``batch`` registry, single ``analyze``
folders, ``compare`` folders). Slices are rendered on demand as PNG and cached;
the pages are plain JavaScript shipped in ``static/`` and load nothing from the
internet.
"""

from calcinosis.web.app import ServerSettings, create_app
from calcinosis.web.catalog import Catalog, ComparisonSource, StudySource, comparison_from_folder, study_from_folder

__all__ = ["Catalog", "ComparisonSource", "ServerSettings", "StudySource", "comparison_from_folder",
           "create_app", "study_from_folder"]
