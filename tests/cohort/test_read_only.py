"""The registry's readers (``cohort status``/``export``, the viewer) never change it; export never
overwrites what is not an export; a damaged or older registry is one line of bad input."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest
import sqlalchemy as sa

from calcinosis.cli import main
from calcinosis.cohort import SCHEMA_VERSION, Registry
from calcinosis.errors import InputError


def make_registry(folder: Path) -> Path:
    """A registry (``folder/registry.sqlite``) of one done and one failed study, as the batch writes it."""
    path = folder / "registry.sqlite"
    with Registry.open(f"sqlite:///{path}") as reg:
        reg.upsert_studies([{"key": "a", "input_path": "/in/a.nii.gz", "input_kind": "file", "status": "running"},
                            {"key": "b", "input_path": "/in/b.nii.gz", "input_kind": "file", "status": "running"}])
        reg.record_done("a", {}, [{"lesion_id": 1, "mass_mg": 2.0}], {"totals": {"count": 1, "mass_mg": 2.0}})
        reg.record_failed("b", "truncated file", {})
    return path


def edit(path: Path, *statements: str) -> None:
    """Run SQL on the registry file directly (to make it older or damaged)."""
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    engine.dispose()


def to_schema_1(path: Path) -> None:
    """Back to schema 1: lesions and summaries without the noise SD columns."""
    edit(path, *[f"ALTER TABLE {t} DROP COLUMN {c}" for t in ("lesions", "summaries")
                 for c in ("volume_sd_mm3", "mass_sd_mg")],
         "UPDATE schema_meta SET value = '1' WHERE name = 'schema_version'")


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err and "internal error" not in err, err
    return err


def test_export_refuses_to_overwrite_the_registry_or_any_file_that_is_no_export(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    db = make_registry(out)
    before = md5(db)
    # The registry itself (given as the folder, as a path, as a URL): it was replaced by CSV text.
    for given in (str(out), str(db), f"sqlite:///{db}"):
        assert main(["cohort", "export", "--db", given, "--out", str(db)]) == 2
        assert "registry database itself" in one_error_line(capsys)
        assert md5(db) == before
    # Another SQLite file, or any file that is not an earlier export: refused, left as it was.
    other = tmp_path / "other.sqlite"
    other.write_bytes(db.read_bytes())
    notes = tmp_path / "notes.csv"
    notes.write_text("patient,visit\n1,2\n")
    for path in (other, notes):
        kept = path.read_bytes()
        assert main(["cohort", "export", "--db", str(out), "--out", str(path)]) == 2
        assert "not a cohort export" in one_error_line(capsys)
        assert path.read_bytes() == kept
    # A new path, an empty file and an earlier export are written.
    csv_path = tmp_path / "cohort.csv"
    empty = tmp_path / "empty.csv"
    empty.touch()
    for path in (csv_path, csv_path, empty):
        assert main(["cohort", "export", "--db", str(out), "--out", str(path)]) == 0
        with open(path, newline="") as fh:
            assert [r["key"] for r in csv.DictReader(fh)] == ["a", "b"]
    assert md5(db) == before


def test_export_to_a_path_that_cannot_be_written_is_bad_input(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    make_registry(out)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    target = blocker / "cohort.csv"  # under a file: no folder can be made there
    assert main(["cohort", "export", "--db", str(out), "--out", str(target)]) == 2
    assert str(target) in one_error_line(capsys)


@pytest.mark.parametrize("command", [["status"], ["export", "--out", "cohort.csv"]])
def test_readers_leave_an_older_registry_as_it_is_and_say_how_to_upgrade(tmp_path, capsys, monkeypatch,
                                                                          command):
    monkeypatch.chdir(tmp_path)
    db = make_registry(tmp_path)
    to_schema_1(db)
    before = md5(db)
    assert main(["cohort", command[0], "--db", str(db), *command[1:]]) == 2
    err = one_error_line(capsys)
    assert "older registry (schema 1)" in err and "calcinosis batch" in err
    assert md5(db) == before
    assert not (tmp_path / "cohort.csv").exists()
    # The writer (the batch opens it so) upgrades it; then the readers read it.
    with Registry.open(f"sqlite:///{db}") as reg:
        assert reg.schema_version() == SCHEMA_VERSION
    assert main(["cohort", command[0], "--db", str(db), *command[1:]]) == 0


def test_a_reader_opens_the_registry_read_only(tmp_path):
    # The viewer (serve --db) opens it the same way as cohort status and export.
    db = make_registry(tmp_path)
    before = md5(db)
    with Registry.open(f"sqlite:///{db}", create=False) as reg:
        with pytest.raises(sa.exc.OperationalError, match="readonly"):
            with reg.engine.begin() as conn:
                conn.execute(sa.text("DELETE FROM studies"))
    assert md5(db) == before


def test_a_registry_without_a_recorded_version(tmp_path, capsys):
    db = make_registry(tmp_path)
    edit(db, "DELETE FROM schema_meta")
    before = md5(db)
    # Its tables are those of this version: read as they are, not stamped by a reader.
    assert main(["cohort", "status", "--db", str(db)]) == 0
    assert capsys.readouterr().out.startswith("2 studies: 0 pending, 0 running, 1 done, 1 failed")
    assert md5(db) == before
    # Tables of an older version: refused by readers and the writer alike, not stamped as current.
    to_schema_1(db)
    before = md5(db)
    for create in (False, True):
        with pytest.raises(InputError, match="no schema version.*volume_sd_mm3"):
            Registry.open(f"sqlite:///{db}", create=create)
    assert md5(db) == before


@pytest.mark.parametrize("statement, words", [
    ("UPDATE schema_meta SET value = 'abc' WHERE name = 'schema_version'", "schema version 'abc'"),
    ("DROP TABLE studies", "no studies table"),
])
def test_a_damaged_registry_is_bad_input(tmp_path, capsys, statement, words):
    db = make_registry(tmp_path)
    edit(db, statement)
    before = md5(db)
    for command in (["status"], ["export", "--out", str(tmp_path / "cohort.csv")]):
        assert main(["cohort", *command, "--db", str(db)]) == 2
        assert words in one_error_line(capsys)
    assert md5(db) == before


def test_an_sqlite_uri_names_its_file(tmp_path, capsys):
    db = make_registry(tmp_path)
    assert main(["cohort", "status", "--db", f"sqlite:///file:{db}?mode=ro&uri=true"]) == 0
    assert capsys.readouterr().out.startswith("2 studies:")
    assert main(["cohort", "status", "--db", f"sqlite:///file:{tmp_path / 'absent.sqlite'}?uri=true"]) == 2
    assert f"no registry at {tmp_path / 'absent.sqlite'}" in one_error_line(capsys)


def test_a_database_url_that_cannot_be_opened_is_one_line_of_bad_input(tmp_path, capsys, monkeypatch):
    # Both were internal errors (exit 1): an SQLite file whose folder cannot be made, and a
    # URL of a database whose driver module is not installed (postgresql:// defaults to
    # psycopg2, which calcinosis does not install). The driver is kept out here by hand.
    import sys

    (tmp_path / "a_file").write_text("x")
    root = tmp_path / "studies"
    root.mkdir()
    monkeypatch.setitem(sys.modules, "MySQLdb", None)  # importing it raises ImportError
    for url, words in ((f"sqlite:///{tmp_path / 'a_file' / 'registry.sqlite'}", "cannot create the folder"),
                       ("mysql://user@localhost/db", "module MySQLdb is not installed")):
        assert main(["batch", str(root), "--out", str(tmp_path / "out"), "--db", url]) == 2
        assert words in one_error_line(capsys)
    assert main(["cohort", "status", "--db", "mysql://user@localhost/db"]) == 2
    assert "no database driver" in one_error_line(capsys)


def test_studies_done_with_other_settings_are_told_apart(tmp_path, capsys):
    # A rerun with other settings redoes the studies it finds; one it no longer finds (or
    # another batch's, into the same --db) keeps the old settings' result. The export had no
    # column saying which settings a row came from: a cohort's totals mixed them unseen.
    path = tmp_path / "registry.sqlite"
    with Registry.open(f"sqlite:///{path}") as reg:
        reg.upsert_studies([{"key": k, "input_path": f"/in/{k}.nii.gz", "input_kind": "file",
                             "status": "running", "settings_hash": h}
                            for k, h in (("a", "1" * 64), ("b", "2" * 64), ("c", "2" * 64))])
        for key in "abc":
            reg.record_done(key, {}, [{"lesion_id": 1, "mass_mg": 2.0}], {"totals": {"count": 1, "mass_mg": 2.0}})
    assert main(["cohort", "status", "--db", str(path)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[1] == ("done studies were analysed with 2 different settings (the export's "
                          f"settings_hash column tells them apart): 2 with {'2' * 12}, 1 with {'1' * 12}")
    out = tmp_path / "cohort.csv"
    assert main(["cohort", "export", "--db", str(path), "--out", str(out)]) == 0
    with open(out, newline="") as fh:
        rows = {r["key"]: r for r in csv.DictReader(fh)}
    assert {k: r["settings_hash"] for k, r in rows.items()} == {"a": "1" * 64, "b": "2" * 64, "c": "2" * 64}

    make_registry(tmp_path / "one")  # one settings (none recorded): no such line
    assert main(["cohort", "status", "--db", str(tmp_path / "one")]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
