"""Discovery, fingerprints, the registry schema and the ``cohort`` / ``batch`` command lines."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import re
import shutil

import numpy as np
import pytest
import sqlalchemy as sa

from calcinosis.cli import main
from calcinosis.cohort import (
    SCHEMA_VERSION,
    BatchSettings,
    Registry,
    discover_studies,
    input_checksum,
    run_batch,
)
from calcinosis.cohort.batch import LOCK_NAME
from calcinosis.cohort.export import cohort_rows
from calcinosis.cohort.registry import lesions, summaries
from calcinosis.io.integrity import check_nifti_complete
from calcinosis.errors import InputError
from calcinosis.volume import Volume


def tiny_volume(seed: int) -> Volume:
    rng = np.random.default_rng(seed)
    return Volume(rng.integers(-100, 100, (4, 12, 10)).astype(np.int16), (0.7, 0.7, 2.0))


def test_discovery_finds_files_and_series_whatever_the_layout(tmp_path):
    from calcinosis.io import write_dicom_series, write_volume

    root = tmp_path / "root"
    write_volume(tiny_volume(0), root / "a b" / "x.nii.gz")
    write_volume(tiny_volume(1), root / "a b" / "y.mha")
    series = root / "p1" / "ct"
    write_dicom_series(tiny_volume(2), series, series_uid="1.2.826.0.1.3680043.10.999.1")
    (series / "deeper").mkdir()
    files = sorted(series.glob("*.dcm")) or sorted(p for p in series.iterdir() if p.is_file())
    for f in files[:2]:
        shutil.move(f, series / "deeper" / f.name)
    write_dicom_series(tiny_volume(3), root / "p1" / "pet", modality="PT")
    (root / ".hidden").mkdir()
    write_volume(tiny_volume(4), root / ".hidden" / "skip.nii.gz")
    out = root / "results"  # an output folder inside the root is not searched
    write_volume(tiny_volume(5), out / "k" / "lesions.nii.gz")

    found = discover_studies(root, exclude=(out,))
    by_input = {s.input_path: s for s in found.studies}
    assert set(by_input) == {str((root / "a b" / "x.nii.gz").resolve()),
                             str((root / "a b" / "y.mha").resolve()),
                             str(series.resolve()), str((root / "p1" / "pet").resolve())}
    ct = by_input[str(series.resolve())]
    assert ct.kind == "dicom" and ct.series_uid == "1.2.826.0.1.3680043.10.999.1"
    assert len(ct.files) == 4 and ct.problem is None and ct.n_voxels == 4 * 12 * 10
    pet = by_input[str((root / "p1" / "pet").resolve())]
    assert pet.problem == "not CT: modality PT"
    assert by_input[str((root / "a b" / "x.nii.gz").resolve())].n_voxels == 480
    for s in found.studies:
        assert re.fullmatch(r"[A-Za-z0-9_-]+-[0-9a-f]{8}", s.key)
    # Stable: the same keys from another spelling of the same root.
    again = discover_studies(tmp_path / "root" / "p1" / "..", exclude=(out,))
    assert [s.key for s in again.studies] == [s.key for s in found.studies]
    with pytest.raises(InputError, match="not a folder"):
        discover_studies(root / "a b" / "x.nii.gz")


def test_a_series_of_only_localizer_images_is_no_study(tmp_path):
    # The scout beside each patient's CT series was a study of its own: analysed as a volume,
    # the patient had two rows in the registry (the scout's failed, or done with findings on
    # a projection image). Skipped now, like the series that hold no image.
    import pydicom

    from calcinosis.io import write_dicom_series

    root = tmp_path / "root"
    write_dicom_series(tiny_volume(0), root / "p1" / "ct", series_uid="1.2.826.0.1.3680043.10.999.60")
    scout = write_dicom_series(tiny_volume(1), root / "p1" / "scout", series_number=9,
                               series_uid="1.2.826.0.1.3680043.10.999.61")
    for f in scout:
        ds = pydicom.dcmread(f)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
        ds.save_as(f)
    found = discover_studies(root)
    assert [s.input_path for s in found.studies] == [str((root / "p1" / "ct").resolve())]
    (skipped,) = found.skipped
    assert skipped.startswith("p1/scout: ") and "LOCALIZER" in skipped


def test_discovery_follows_linked_folders_once_and_skips_output_folders(tmp_path):
    from calcinosis.io import write_dicom_series, write_volume

    root = tmp_path / "root"
    elsewhere = tmp_path / "archive" / "pat"
    write_dicom_series(tiny_volume(6), elsewhere, series_uid="1.2.826.0.1.3680043.10.999.6")
    root.mkdir()
    (root / "patlink").symlink_to(elsewhere, target_is_directory=True)  # was skipped without a word
    (root / "loop").symlink_to(root, target_is_directory=True)  # walked once, not for ever
    write_volume(tiny_volume(7), root / "a.nii.gz")
    # A calcinosis output folder inside the root (a batch's or analyze's): not studies (its label
    # maps were read as CTs and failed).
    out = root / "old-run" / "a-1234"
    write_volume(tiny_volume(8), out / "lesions.nii.gz")
    (out / "summary.json").write_text(json.dumps({"schema_version": "1", "software": {"name": "calcinosis"}}))
    found = discover_studies(root)
    kinds = sorted((s.kind, s.series_uid or "") for s in found.studies)
    assert kinds == [("dicom", "1.2.826.0.1.3680043.10.999.6"), ("file", "")]


def test_an_enhanced_ct_file_is_a_study_of_its_folder(tmp_path, enhanced_ct):
    # A series of one multi-frame file: its input is the file's folder (read as a series),
    # not the file with a series UID.
    from calcinosis.io import read_volume, write_dicom_series

    phantom = tiny_volume(6)
    files = write_dicom_series(phantom, tmp_path / "single")
    path = enhanced_ct(files, tmp_path / "root" / "p1" / "ct.dcm")
    found = discover_studies(tmp_path / "root")
    (study,) = found.studies
    assert study.kind == "dicom" and study.input_path == str(path.parent.resolve())
    assert study.n_voxels == 4 * 12 * 10 and study.problem is None
    np.testing.assert_array_equal(read_volume(study.input_path, series_uid=study.series_uid).array,
                                  phantom.array)


def test_checksum_follows_content_size_and_slices(tmp_path):
    from calcinosis.io import write_dicom_series

    files = write_dicom_series(tiny_volume(0), tmp_path / "s")
    first = input_checksum(files, tmp_path / "s")
    assert input_checksum(files, tmp_path / "s") == first
    assert input_checksum(files[:-1], tmp_path / "s") != first  # a slice missing
    big = tmp_path / "big.bin"
    data = bytearray(np.random.default_rng(0).bytes(600_000))
    big.write_bytes(data)
    st = big.stat()
    before = input_checksum([big], tmp_path)
    data[-10] ^= 0xFF  # the last bytes are hashed (a gzip CRC lives there)
    big.write_bytes(data)
    os.utime(big, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert input_checksum([big], tmp_path) != before


def test_truncated_nifti_is_refused(tmp_path):
    from calcinosis.io import write_volume

    for name in ("v.nii", "v.nii.gz"):
        path = write_volume(tiny_volume(0), tmp_path / name)
        check_nifti_complete(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) - 40])
        with pytest.raises(InputError, match="truncated"):
            check_nifti_complete(path)


def test_registry_schema_version_checked_on_open(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    with Registry.open(url) as reg:
        assert reg.schema_version() == SCHEMA_VERSION
        assert set(sa.inspect(reg.engine).get_table_names()) >= {"schema_meta", "studies", "lesions",
                                                                 "summaries"}
        with reg.engine.begin() as conn:
            conn.execute(sa.text("UPDATE schema_meta SET value = '99' WHERE name = 'schema_version'"))
    with pytest.raises(InputError, match="newer"):
        Registry.open(url)
    with pytest.raises(InputError, match="no registry"):
        Registry.open(f"sqlite:///{tmp_path / 'absent.sqlite'}", create=False)
    empty = tmp_path / "empty.sqlite"
    sa.create_engine(f"sqlite:///{empty}").connect().close()
    with pytest.raises(InputError, match="no calcinosis registry"):
        Registry.open(f"sqlite:///{empty}", create=False)
    with pytest.raises(InputError, match="database URL"):
        Registry.open("notadriver:://x")
    # A file that is not a database (given by mistake): refused, and left as it was (it was an
    # internal error).
    text = tmp_path / "notes.sqlite"
    text.write_text("not a database")
    for create in (True, False):
        with pytest.raises(InputError, match="as a registry: file is not a database"):
            Registry.open(f"sqlite:///{text}", create=create)
    assert text.read_text() == "not a database"


def test_cli_batch_status_export(study_folder, tmp_path, capsys):
    root = study_folder.good[0].parent.parent.parent / "site_b"  # DICOM CT (split) + MR series
    out = tmp_path / "out"
    assert main(["batch", str(root), "--out", str(out), "--workers", "1", "--in-process"]) == 0
    printed = capsys.readouterr().out
    assert "2 studies: 1 done, 1 failed" in printed and "not CT: modality MR" in printed

    assert main(["cohort", "status", "--db", str(out)]) == 0
    status = capsys.readouterr().out
    assert status.splitlines()[0] == "2 studies: 0 pending, 0 running, 1 done, 1 failed"
    assert "not CT: modality MR" in status

    csv_path = tmp_path / "cohort.csv"
    assert main(["cohort", "export", "--db", f"sqlite:///{out / 'registry.sqlite'}",
                 "--out", str(csv_path)]) == 0
    with open(csv_path, newline="") as fh:
        rows = {r["status"]: r for r in csv.DictReader(fh)}
    done, failed = rows["done"], rows["failed"]
    summary = json.loads((out / done["key"] / "summary.json").read_text())
    assert int(done["lesion_count"]) == summary["totals"]["count"]
    assert float(done["mass_mg"]) == summary["totals"]["mass_mg"]
    for comp, burden in summary["by_compartment"].items():
        assert float(done[f"compartment_{comp}_mass_mg"]) == burden["mass_mg"]
        assert int(done[f"compartment_{comp}_count"]) == burden["count"]
    for region, burden in summary["by_region"].items():
        assert float(done[f"region_{region}_volume_mm3"]) == burden["volume_mm3"]
    # The calcinosis burden (a trial's endpoint: not the vascular and visceral calcifications
    # the totals hold too), all of it and the high-confidence part, with noise SDs.
    for key, prefix in (("calcinosis_totals", "calcinosis"),
                        ("calcinosis_totals_high_confidence", "calcinosis_high_confidence")):
        for m in ("count", "volume_mm3", "mass_mg", "agatston", "volume_sd_mm3", "mass_sd_mg"):
            want = summary[key][m]
            assert done[f"{prefix}_{m}"] == ("" if want is None else str(want)), (prefix, m)
    assert int(done["calcinosis_count"]) >= int(done["calcinosis_high_confidence_count"])
    assert failed["calcinosis_count"] == ""
    assert failed["error"] == "not CT: modality MR" and failed["lesion_count"] == ""

    # Bad input: one line, exit code 2.
    assert main(["batch", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert main(["batch", str(root), "--out", str(out), "--workers", "0"]) == 2
    assert main(["cohort", "status", "--db", str(tmp_path / "nothing.sqlite")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 3 and "Traceback" not in err


def test_one_batch_at_a_time_per_output_folder(study_folder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with open(out / LOCK_NAME, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(InputError, match="another calcinosis batch"):
            run_batch(study_folder.root, out, settings=BatchSettings(processes=False))


def test_version_1_registry_is_upgraded_and_keeps_its_studies(db_url):
    # A registry written before the noise SD columns (schema 1: lesions and summaries without
    # volume_sd_mm3 / mass_sd_mg) is refused by a reader; the writer opens it, it gains the
    # columns (NULL for its studies) and then stores the SDs of new ones. SQLite and, where a
    # server is set up, PostgreSQL.
    url = db_url
    with Registry.open(url) as reg:
        reg.upsert_studies([{"key": "old", "input_path": "/a", "input_kind": "nifti", "status": "pending"},
                            {"key": "new", "input_path": "/b", "input_kind": "nifti", "status": "pending"}])
        reg.record_done("old", {}, [{"lesion_id": 1, "mass_mg": 2.0}], {"totals": {"count": 1, "mass_mg": 2.0}})
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # back to schema 1
        for table in ("lesions", "summaries"):
            for column in ("volume_sd_mm3", "mass_sd_mg"):
                conn.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        conn.execute(sa.text("UPDATE schema_meta SET value = '1' WHERE name = 'schema_version'"))
    engine.dispose()
    with pytest.raises(InputError, match=r"older registry \(schema 1\)"):  # a reader changes nothing
        Registry.open(url, create=False)
    with Registry.open(url) as reg:  # the batch upgrades it
        assert reg.schema_version() == SCHEMA_VERSION == 2
        with reg.engine.connect() as conn:
            old = conn.execute(sa.select(lesions)).one()
            assert old.mass_mg == 2.0 and old.volume_sd_mm3 is None and old.mass_sd_mg is None
        reg.record_done("new", {}, [{"lesion_id": 1, "mass_mg": 3.0, "volume_sd_mm3": 0.5, "mass_sd_mg": 0.25},
                                    {"lesion_id": 2, "mass_mg": 1.0, "volume_sd_mm3": float("nan")}],
                        {"totals": {"count": 2, "mass_mg": 4.0, "volume_sd_mm3": None, "mass_sd_mg": 0.3}})
        with reg.engine.connect() as conn:
            new = {r.lesion_id: r for r in conn.execute(sa.select(lesions).where(lesions.c.study_key == "new"))}
            totals = conn.execute(sa.select(summaries).where(summaries.c.study_key == "new")).one()
    assert (new[1].volume_sd_mm3, new[1].mass_sd_mg) == (0.5, 0.25)
    assert new[2].volume_sd_mm3 is None and new[2].mass_sd_mg is None  # NaN and absent: NULL
    assert totals.volume_sd_mm3 is None and totals.mass_sd_mg == 0.3
    with Registry.open(url, create=False) as reg:
        columns, rows = cohort_rows(reg)
    assert columns[columns.index("agatston") + 1:columns.index("agatston") + 3] == ["volume_sd_mm3", "mass_sd_mg"]
    by_key = {r["key"]: r for r in rows}
    assert by_key["new"]["mass_sd_mg"] == 0.3 and by_key["old"]["mass_sd_mg"] is None
    assert by_key["new"]["calcinosis_mass_mg"] is None  # its summary has no calcinosis burden


@pytest.mark.parametrize("option, value, word", [
    ("--workers", "100000", "local workers"),  # each a process: the run never started them all
    ("--memory-per-worker", "nan", "positive number of GiB"),  # was an internal error
])
def test_batch_settings_past_what_the_machine_can_do_exit_2(tmp_path, capsys, option, value, word):
    out = tmp_path / "out"
    assert main(["batch", str(tmp_path), "--out", str(out), option, value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and word in err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
def test_a_named_pipe_in_the_folders_is_skipped_not_read(tmp_path):
    # Opening a named pipe blocks until something writes to it: a batch (and a DICOM folder
    # read) with one among its files hung for ever. Pipes, sockets and devices are skipped.
    import threading

    from calcinosis.io import read_volume, write_dicom_series, write_volume

    root = tmp_path / "root"
    write_volume(tiny_volume(0), root / "x.nii.gz")
    series = root / "ct"
    write_dicom_series(tiny_volume(2), series, series_uid="1.2.826.0.1.3680043.10.999.7")
    os.mkfifo(root / "pipe.nii.gz")
    os.mkfifo(series / "pipe.dcm")
    found = {}

    def run():
        found["studies"] = discover_studies(root).studies
        found["volume"] = read_volume(series)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "reading stopped at the named pipe"
    assert sorted(s.kind for s in found["studies"]) == ["dicom", "file"]
    assert found["volume"].shape[0] == tiny_volume(2).shape[0]


def test_lesion_export_rows_are_each_studys_lesions_csv(study_folder, tmp_path, capsys):
    # There was no per-lesion export: a trial team read the lesions table by SQL, whose floats
    # do not print as lesions.csv does (1.5 for "1.50"). cohort export --lesions writes every
    # done study's rows as its lesions.csv holds them, after the study key.
    root = study_folder.good[0].parent.parent  # site_a: a NIfTI and an NRRD study
    out = tmp_path / "out"
    assert main(["batch", str(root), "--out", str(out), "--workers", "1", "--in-process"]) == 0
    studies_csv, lesions_csv = tmp_path / "cohort.csv", tmp_path / "lesions.csv"
    args = ["cohort", "export", "--db", str(out), "--out", str(studies_csv), "--lesions", str(lesions_csv)]
    assert main(args) == 0
    with open(lesions_csv, newline="") as fh:
        header, *rows = list(csv.reader(fh))
    with open(studies_csv, newline="") as fh:
        per_study = {r["key"]: r for r in csv.DictReader(fh)}
    assert len(per_study) == 2 and all(r["status"] == "done" for r in per_study.values())
    for key, study in per_study.items():
        with open(out / key / "lesions.csv", newline="") as fh:
            own_header, *own_rows = list(csv.reader(fh))
        assert header == ["key", *own_header]
        mine = [r[1:] for r in rows if r[0] == key]
        assert mine == own_rows and len(mine) == int(study["lesion_count"]) > 0
        total = sum(float(r[own_header.index("mass_mg")]) for r in mine)
        assert abs(total - float(study["mass_mg"])) < 1e-9
    assert {r[0] for r in rows} == set(per_study)

    # An earlier export is replaced; someone's CSV or the same path twice are refused.
    assert main(args) == 0
    other = tmp_path / "mine.csv"
    other.write_text("patient,note\n1,x\n")
    assert main([*args[:-1], str(other)]) == 2
    assert main([*args[:-1], str(studies_csv)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "--lesions" in err[0] and "same file" in err[1]
    assert other.read_text() == "patient,note\n1,x\n"
