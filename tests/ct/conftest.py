"""Shared CT fixtures: phantoms are made once per module and analysed once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

REAL_CT = Path(__file__).resolve().parents[3] / "shared" / "data" / "real-ct" / "chest-ct-lung1.nrrd"


@pytest.fixture(scope="session")
def real_ct_path() -> Path:
    if not REAL_CT.exists():
        pytest.skip(f"real chest CT not found at {REAL_CT} (../shared/data is beside the repository in CI)")
    return REAL_CT
