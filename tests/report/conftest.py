"""Shared inputs of the report tests: one small DICOM thigh phantom with a named patient,
analysed once without and once with ``--keep-identifiers`` (via the CLI), plus the
in-memory analysis for figure tests."""

from __future__ import annotations

import hashlib

import pytest

PATIENT_NAME = "Doe^Jane"
PATIENT_ID = "ID12345"
BIRTH_DATE = "19311231"


def tree_digest(root):
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="session")
def patient():
    """The identifiers written into the phantom series: name, ID, birth date."""
    return PATIENT_NAME, PATIENT_ID, BIRTH_DATE


@pytest.fixture(scope="session")
def phantom():
    from calcinosis.phantom import make_ct_phantom

    # small and quick: 20 slices of 1.5 mm, 1.2 mm pixels, 13 deposits in both thighs
    return make_ct_phantom("thighs", seed=1, length_mm=30.0, pixel_mm=1.2)


@pytest.fixture(scope="session")
def dicom_series(tmp_path_factory, phantom):
    from calcinosis.io import write_dicom_series

    folder = tmp_path_factory.mktemp("series") / "ct"
    files = write_dicom_series(phantom.volume, folder, patient_name=PATIENT_NAME, patient_id=PATIENT_ID,
                               patient_birth_date=BIRTH_DATE)
    return folder, files


@pytest.fixture(scope="session")
def runs(tmp_path_factory, dicom_series):
    """Output folders of ``calcinosis analyze`` without and with --keep-identifiers."""
    from calcinosis.cli import main

    folder, _ = dicom_series
    before = tree_digest(folder)
    out = {}
    for name, extra in (("default", []), ("keep", ["--keep-identifiers"])):
        dest = tmp_path_factory.mktemp(f"out-{name}")
        assert main(["analyze", str(folder), "--out", str(dest), *extra]) == 0
        out[name] = dest
    assert tree_digest(folder) == before, "the input series was modified"
    return out


@pytest.fixture(scope="session")
def analysis(dicom_series):
    from calcinosis.io import read_volume
    from calcinosis.pipeline import analyze

    return analyze(read_volume(dicom_series[0]))
