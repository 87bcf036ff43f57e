"""Ultrasound tests: this folder on the import path, for its shared truth matching (``us_truth``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
