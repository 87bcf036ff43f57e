"""Shared fixtures: a folder of small phantom studies and registry databases (SQLite, PostgreSQL)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from calcinosis.cohort.discover import discover_studies
from calcinosis.cohort.registry import lesions, studies, summaries

PG_ENV = "CALCINOSIS_TEST_PG_URL"


@dataclass(frozen=True)
class StudyFolder:
    """The study folder and what a batch must make of it (by input path, keys unknown here)."""

    root: Path
    good: tuple[Path, ...]  # inputs that must end done (files, or DICOM series folders)
    bad: dict[Path, str]  # input -> a fragment its failure reason must hold


def small_phantom(seed: int):
    from calcinosis.phantom import make_ct_phantom

    return make_ct_phantom("thighs", seed=seed, length_mm=24.0, pixel_mm=1.5, n_deposits=4)


@pytest.fixture(scope="session")
def study_folder(tmp_path_factory) -> StudyFolder:
    """NIfTI, NRRD and DICOM studies in nested folders, one truncated file, one MR series."""
    from calcinosis.io import write_dicom_series, write_volume

    root = tmp_path_factory.mktemp("studies")
    a, b, c = (small_phantom(seed) for seed in (11, 12, 13))
    nifti = write_volume(a.volume, root / "site_a" / "patient 01" / "thigh.nii.gz")
    nrrd = write_volume(b.volume, root / "site_a" / "patient02" / "scan.nrrd")
    ct_dir = root / "site_b" / "P03" / "2020-01-01" / "CT"
    write_dicom_series(c.volume, ct_dir, patient_id="P03", series_description="thighs CT")
    # The CT series is split over two sub-folders: it is still one study.
    part = ct_dir / "part2"
    part.mkdir()
    for f in sorted(ct_dir.glob("*"))[::2]:
        if f.is_file():
            shutil.move(f, part / f.name)
    mr_dir = root / "site_b" / "P03" / "2020-01-01" / "MR"
    write_dicom_series(c.volume, mr_dir, patient_id="P03", modality="MR", series_number=2)
    broken = root / "broken" / "copy_interrupted.nii.gz"
    broken.parent.mkdir(parents=True)
    data = nifti.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    (root / "site_a" / "README.txt").write_text("not an image\n")
    return StudyFolder(root, good=(nifti, nrrd, ct_dir),
                       bad={broken: "truncated", mr_dir: "not CT: modality MR"})


def pg_url_or_skip() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set (no PostgreSQL server; .ci/setup-postgres.sh starts one)")
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """A fresh, empty registry database URL: SQLite in a temp folder, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.sqlite'}"
        return
    import sqlalchemy as sa

    base = sa.engine.make_url(pg_url_or_skip())
    name = f"calcinosis_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"cannot create a PostgreSQL test database at {base.render_as_string()}: {exc.orig}")
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def checks():
    """The registry checks below, for the test modules (conftest is not importable by name)."""
    return SimpleNamespace(keys_by_input=keys_by_input, registry_rows=registry_rows,
                           assert_registry_matches_outputs=assert_registry_matches_outputs)


# -- checks ------------------------------------------------------------------------------
def keys_by_input(root: Path, out: Path | None = None) -> dict[Path, str]:
    """Study key of each input (file, or DICOM series folder), as discovery names them."""
    found = discover_studies(root, exclude=(out,) if out else ())
    return {Path(s.input_path): s.key for s in found.studies}


def registry_rows(url: str) -> dict[str, dict]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {r.key: r._asdict() for r in conn.execute(sa.select(studies))}
    finally:
        engine.dispose()


def assert_registry_matches_outputs(url: str, out: Path) -> None:
    """Done rows are exactly the complete output folders; their lesions and totals equal the files."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = {r.key: r for r in conn.execute(sa.select(studies))}
            lesion_rows = [r._asdict() for r in conn.execute(sa.select(lesions))]
            summary_rows = {r.study_key: r for r in conn.execute(sa.select(summaries))}
    finally:
        engine.dispose()
    folders = {p.name for p in out.iterdir() if p.is_dir()}
    done = {k for k, r in rows.items() if r.status == "done"}
    assert folders == done, "output folders and done studies differ"
    assert set(summary_rows) == done
    assert {r["study_key"] for r in lesion_rows} <= done
    for key in done:
        folder = out / key
        assert (folder / "summary.json").is_file() and (folder / "lesions.csv").is_file()
        assert rows[key].output_dir == str(folder)
        summary = json.loads((folder / "summary.json").read_text())
        s = summary_rows[key]
        assert s.lesion_count == summary["totals"]["count"]
        assert s.mass_mg == summary["totals"]["mass_mg"]
        assert s.by_compartment == summary["by_compartment"]
        with open(folder / "lesions.csv", newline="") as fh:
            csv_rows = list(csv.DictReader(fh))
        mine = sorted((r for r in lesion_rows if r["study_key"] == key), key=lambda r: r["lesion_id"])
        assert len(mine) == len(csv_rows) == summary["totals"]["count"]
        for db_row, csv_row in zip(mine, csv_rows):
            assert db_row["lesion_id"] == int(csv_row["lesion_id"])
            assert db_row["compartment"] == csv_row["compartment"]
            assert abs(db_row["mass_mg"] - float(csv_row["mass_mg"])) <= 1e-6 * max(1.0, abs(db_row["mass_mg"]))
            for sd in ("volume_sd_mm3", "mass_sd_mg"):  # the noise SDs after the contract's columns
                if csv_row[sd] == "":
                    assert db_row[sd] is None
                else:
                    assert abs(db_row[sd] - float(csv_row[sd])) <= 1e-6 * max(1.0, abs(db_row[sd]))
        assert s.mass_sd_mg == summary["totals"]["mass_sd_mg"]
    for key, r in rows.items():
        if r.status != "done":
            assert not (out / key).exists()
