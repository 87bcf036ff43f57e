"""The cohort registry: one SQLAlchemy database of studies, their lesions and summaries.

Any SQLAlchemy URL works (SQLite by default, PostgreSQL tested). Tables:

``schema_meta``
    ``name -> value``; ``schema_version`` is checked on open: an older registry is
    upgraded by the steps in :data:`MIGRATIONS`, a newer one is refused.
``studies``
    one row per study: key, input path/kind/series UID, input checksum, settings
    (JSON) and their hash, software version, status (``pending``, ``running``,
    ``done``, ``failed``), error message, attempts, timings (UTC), output folder,
    worker address and memory estimate.
``lesions``
    one row per lesion of a done study: the lesions.csv contract columns, then the
    noise SDs of volume and mass that follow them in lesions.csv (NULL where unknown).
``summaries``
    one row per done study: numeric totals (with the noise SDs of the volume and mass
    totals, NULL where unknown) and the by-compartment / region / side burdens as JSON,
    plus the whole summary.json document.

Schema versions: 1 (first); 2 adds ``volume_sd_mm3`` and ``mass_sd_mg`` to ``lesions``
and ``summaries`` (a version-1 registry is upgraded in place when the batch opens it; its
earlier studies keep NULL there).

Only the batch *client* writes (workers return results), so SQLite is safe. A
study becomes ``done`` in one transaction together with its lesions and summary.
The readers (``cohort status``/``export``, the web viewer) open the registry with
``create=False``: read-only (an SQLite file is opened in SQLite's read-only mode), so
they never change it; an older schema is refused there with the way to upgrade it.
"""

from __future__ import annotations

import datetime as dt
import os
import urllib.parse
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.util import asbool  # how SQLAlchemy reads the uri option

from calcinosis.errors import InputError

SCHEMA_VERSION = 2
STATUSES = ("pending", "running", "done", "failed")
# A database value quoted in an error message is cut to this many characters.
MAX_SHOWN_CHARS = 40

metadata = sa.MetaData()

schema_meta = sa.Table(
    "schema_meta", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)

studies = sa.Table(
    "studies", metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("input_path", sa.Text, nullable=False),
    sa.Column("input_kind", sa.String(16), nullable=False),
    sa.Column("series_uid", sa.String(128)),
    sa.Column("input_checksum", sa.String(64)),
    sa.Column("settings", sa.JSON),
    sa.Column("settings_hash", sa.String(64)),
    sa.Column("software_version", sa.String(32)),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("error", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("queued_at", sa.DateTime(timezone=True)),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("run_time_s", sa.Float),
    sa.Column("output_dir", sa.Text),
    sa.Column("worker", sa.String(255)),
    sa.Column("memory_estimate_bytes", sa.BigInteger),
)

# The lesions.csv contract columns, with their SQL types.
LESION_COLUMNS: dict[str, Any] = {
    "lesion_id": sa.Integer, "x_mm": sa.Float, "y_mm": sa.Float, "z_mm": sa.Float,
    "volume_mm3": sa.Float, "mass_mg": sa.Float, "agatston": sa.Float, "peak_hu": sa.Float,
    "mean_hu": sa.Float, "max_diameter_mm": sa.Float, "compartment": sa.String(32),
    "side": sa.String(16), "region": sa.String(32), "depth_mm": sa.Float,
    "bone_distance_mm": sa.Float, "background_hu": sa.Float, "n_voxels": sa.Integer,
    "confidence": sa.String(16), "flags": sa.Text,
}
# The columns lesions.csv has after the contract's: each measurement's noise SD (in
# ``summaries`` the same names hold the totals' SDs).
LESION_SD_COLUMNS: dict[str, Any] = {"volume_sd_mm3": sa.Float, "mass_sd_mg": sa.Float}

lesions = sa.Table(
    "lesions", metadata,
    sa.Column("study_key", sa.String(200), sa.ForeignKey("studies.key", ondelete="CASCADE"),
              primary_key=True),
    *[sa.Column(name, type_, primary_key=(name == "lesion_id"), nullable=(name != "lesion_id"))
      for name, type_ in LESION_COLUMNS.items()],
    *[sa.Column(name, type_) for name, type_ in LESION_SD_COLUMNS.items()],
)

summaries = sa.Table(
    "summaries", metadata,
    sa.Column("study_key", sa.String(200), sa.ForeignKey("studies.key", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("lesion_count", sa.Integer, nullable=False),
    sa.Column("volume_mm3", sa.Float, nullable=False),
    sa.Column("mass_mg", sa.Float, nullable=False),
    sa.Column("agatston", sa.Float, nullable=False),
    sa.Column("low_confidence_count", sa.Integer),
    sa.Column("by_compartment", sa.JSON),
    sa.Column("by_region", sa.JSON),
    sa.Column("by_side", sa.JSON),
    sa.Column("pattern", sa.Text),
    sa.Column("warnings", sa.JSON),
    sa.Column("summary", sa.JSON),
    *[sa.Column(name, type_) for name, type_ in LESION_SD_COLUMNS.items()],
)


def _add_sd_columns(conn: sa.Connection) -> None:
    """Version 1 -> 2: the noise SD columns of ``lesions`` and ``summaries`` (NULL for the
    studies already done)."""
    for table in (lesions, summaries):
        have = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
        for name in LESION_SD_COLUMNS:
            if name not in have:
                column_type = table.c[name].type.compile(dialect=conn.dialect)
                conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {name} {column_type}"))


# schema_version N -> function upgrading a connection from N to N + 1.
MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {1: _add_sd_columns}


@dataclass(frozen=True)
class StudyRow:
    """The registry's record of one study (the columns the batch decides on)."""

    key: str
    status: str
    input_path: str
    series_uid: str | None
    input_checksum: str | None
    settings_hash: str | None
    error: str | None
    attempts: int
    output_dir: str | None


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def sqlite_file(url: str | sa.engine.URL) -> Path | None:
    """The file of an SQLite URL: its path, or the path of a ``file:`` URI (with ``uri=true``).

    None for another database, an in-memory one, or a URL that does not parse.
    """
    try:
        url = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return None
    database = url.database
    if url.get_backend_name() != "sqlite" or database in (None, "", ":memory:"):
        return None
    if database.startswith("file:") and asbool(url.query.get("uri", False)):
        parts = urllib.parse.urlsplit(database)
        path = urllib.parse.unquote(parts.path)
        if path in ("", ":memory:") or url.query.get("mode") == "memory":
            return None
        return Path(path)
    return Path(database)


def database_url(value: str | os.PathLike[str]) -> str:
    """An SQLAlchemy URL from ``value``: a URL as is; a folder -> its ``registry.sqlite``; a path -> SQLite."""
    text = str(value)
    if "://" in text:
        return text
    path = Path(text)
    if path.is_dir():
        path = path / "registry.sqlite"
    return f"sqlite:///{path.resolve()}"


class Registry:
    """An open registry database. Use :meth:`open`; close with :meth:`close` (or ``with``).

    Parameters
    ----------
    url : str
        SQLAlchemy URL (``sqlite:///OUT/registry.sqlite``, ``postgresql+psycopg://...``).
    create : bool
        True (the batch, the only writer): create the tables when absent and upgrade an
        older schema. False (``cohort status``/``export``, the viewer): read-only; a
        database without a registry, or with an older schema, is an error.
    """

    def __init__(self, engine: sa.Engine, *, read_only: bool = False) -> None:
        self.engine = engine
        self.read_only = read_only

    @classmethod
    def open(cls, url: str, *, create: bool = True) -> Registry:
        shown = _shown(url)
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise InputError(f"cannot use database URL {shown!r}: {exc}; give an SQLAlchemy URL "
                             "such as sqlite:///registry.sqlite or postgresql+psycopg://user@host/db") from exc
        db_path = sqlite_file(parsed)
        if db_path is not None:
            if not create and not db_path.exists():
                raise InputError(f"no registry at {db_path}; run calcinosis batch first or give --db")
            if create:
                try:
                    db_path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise InputError(f"cannot create the folder of the registry database {shown}: "
                                     f"{exc.strerror or exc}; give --db in a folder you can write") from exc
            else:
                parsed = _read_only_sqlite(parsed, db_path)
        try:
            engine = sa.create_engine(parsed, future=True, **_engine_options(parsed))
            registry = cls(engine, read_only=not create)
            registry._check_schema(create, shown)
        except sa.exc.NoSuchModuleError as exc:
            raise InputError(f"no database driver for {shown}: {exc}; install it (e.g. psycopg[binary])") from exc
        except ImportError as exc:
            # The dialect is known but its driver module is not installed: SQLAlchemy's default
            # for postgresql:// is psycopg2, while calcinosis's tests install psycopg (3).
            raise InputError(f"no database driver for {shown}: module {exc.name or exc} is not installed; "
                             "install it, or name an installed driver in the URL "
                             "(e.g. postgresql+psycopg://user@host/db)") from exc
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            raise InputError(f"cannot open the registry database {shown}: "
                             f"{' '.join(str(exc.orig or exc).split())}") from exc
        except sa.exc.DatabaseError as exc:  # e.g. a file that is not an SQLite database
            raise InputError(f"cannot use {shown} as a registry: {' '.join(str(exc.orig or exc).split())}; "
                             "give a registry written by calcinosis batch, or a new path") from exc
        return registry

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ---------------------------------------------------------------------------
    def _check_schema(self, create: bool, shown: str) -> None:
        """Check (and, for the writer, create or upgrade) the schema; a reader changes nothing."""
        if create:
            metadata.create_all(self.engine)
        else:
            inspector = sa.inspect(self.engine)
            absent = [name for name in metadata.tables if not inspector.has_table(name)]
            if absent:
                raise InputError(f"{shown} holds no calcinosis registry (no {absent[0]} table); "
                                 "run calcinosis batch first or give another --db")
        with self.engine.connect() as conn:
            version = _version(conn.execute(sa.select(schema_meta.c.value)
                                            .where(schema_meta.c.name == "schema_version")).scalar(), shown)
        if version is None:
            # Tables without a recorded version: current if they have every column of it.
            missing = _missing_columns(self.engine)
            if missing:
                raise InputError(f"{shown} records no schema version and lacks {missing[0]} of this "
                                 f"version's tables; give another --db or start a new registry")
            if create:
                with self.engine.begin() as conn:
                    conn.execute(schema_meta.insert().values(name="schema_version", value=str(SCHEMA_VERSION)))
            return
        if version > SCHEMA_VERSION:
            raise InputError(f"the registry has schema version {version}, newer than this calcinosis "
                             f"understands ({SCHEMA_VERSION}); upgrade calcinosis")
        if version < SCHEMA_VERSION and not create:
            raise InputError(f"{shown} is an older registry (schema {version}), this calcinosis reads schema "
                             f"{SCHEMA_VERSION}; run calcinosis batch with it as --db to upgrade it (in place)")
        with self.engine.begin() as conn:
            while version < SCHEMA_VERSION:
                if version not in MIGRATIONS:
                    raise InputError(f"no upgrade from registry schema version {version}; "
                                     "start a new registry with --db")
                MIGRATIONS[version](conn)
                version += 1
                conn.execute(schema_meta.update().where(schema_meta.c.name == "schema_version")
                             .values(value=str(version)))

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(schema_meta.c.value)
                                    .where(schema_meta.c.name == "schema_version")).scalar_one())

    # -- reading --------------------------------------------------------------------------
    def study_rows(self) -> dict[str, StudyRow]:
        cols = [studies.c[name] for name in StudyRow.__dataclass_fields__]
        with self.engine.connect() as conn:
            return {r.key: StudyRow(**r._asdict()) for r in conn.execute(sa.select(*cols))}

    # -- writing (the batch client only) --------------------------------------------------
    def _write(self) -> AbstractContextManager[sa.Connection]:
        """A write transaction; a registry opened for reading has none (asking is a bug)."""
        if self.read_only:
            raise RuntimeError("the registry was opened read-only (create=False); only the batch writes")
        return self.engine.begin()

    def upsert_studies(self, rows: Iterable[dict[str, Any]]) -> None:
        """Insert or update study rows (dicts of ``studies`` columns with ``key``) in one transaction.

        A row written with a status other than ``done`` loses its earlier lesions and summary
        in the same transaction: they were measured on another input or with other settings
        than the row now records, and a kill before the redo finished left them joined to it.
        """
        rows = list(rows)
        if not rows:
            return
        with self._write() as conn:
            existing = set(conn.execute(sa.select(studies.c.key)).scalars())
            for row in rows:
                if row.get("status", "done") != "done":
                    conn.execute(lesions.delete().where(lesions.c.study_key == row["key"]))
                    conn.execute(summaries.delete().where(summaries.c.study_key == row["key"]))
                if row["key"] in existing:
                    conn.execute(studies.update().where(studies.c.key == row["key"])
                                 .values({k: v for k, v in row.items() if k != "key"}))
                else:
                    conn.execute(studies.insert().values(**row))

    def delete_studies(self, keys: Iterable[str]) -> None:
        """Remove studies with their lesions and summaries, in one transaction."""
        keys = list(keys)
        if keys:
            with self._write() as conn:
                conn.execute(lesions.delete().where(lesions.c.study_key.in_(keys)))
                conn.execute(summaries.delete().where(summaries.c.study_key.in_(keys)))
                conn.execute(studies.delete().where(studies.c.key.in_(keys)))

    def record_done(self, key: str, study: dict[str, Any], lesion_rows: list[dict[str, Any]],
                    summary: dict[str, Any]) -> None:
        """Mark ``key`` done with its lesions and summary, all in one transaction."""
        totals = summary.get("totals", {})
        with self._write() as conn:
            conn.execute(lesions.delete().where(lesions.c.study_key == key))
            conn.execute(summaries.delete().where(summaries.c.study_key == key))
            if lesion_rows:
                conn.execute(lesions.insert(), [
                    {"study_key": key, **{c: _finite(row.get(c)) for c in (*LESION_COLUMNS, *LESION_SD_COLUMNS)}}
                    for row in lesion_rows])
            conn.execute(summaries.insert().values(
                study_key=key, lesion_count=int(totals.get("count", len(lesion_rows))),
                volume_mm3=float(totals.get("volume_mm3", 0.0)), mass_mg=float(totals.get("mass_mg", 0.0)),
                agatston=float(totals.get("agatston", 0.0)),
                volume_sd_mm3=_finite(totals.get("volume_sd_mm3")), mass_sd_mg=_finite(totals.get("mass_sd_mg")),
                low_confidence_count=summary.get("low_confidence_count"),
                by_compartment=summary.get("by_compartment"), by_region=summary.get("by_region"),
                by_side=summary.get("by_side"), pattern=_text(summary.get("pattern")),
                warnings=summary.get("warnings"), summary=summary))
            conn.execute(studies.update().where(studies.c.key == key)
                         .values(status="done", error=None, **study))

    def record_failed(self, key: str, error: str, study: dict[str, Any]) -> None:
        """Mark ``key`` failed with its one-line reason; drop any earlier result rows."""
        with self._write() as conn:
            conn.execute(lesions.delete().where(lesions.c.study_key == key))
            conn.execute(summaries.delete().where(summaries.c.study_key == key))
            conn.execute(studies.update().where(studies.c.key == key)
                         .values(status="failed", error=error, **study))

    def set_status(self, keys: Iterable[str], status: str, error: str | None = None) -> None:
        keys = list(keys)
        if keys:
            with self._write() as conn:
                conn.execute(studies.update().where(studies.c.key.in_(keys))
                             .values(status=status, error=error))


def _read_only_sqlite(url: sa.engine.URL, path: Path) -> sa.engine.URL:
    """``url`` opening SQLite file ``path`` in SQLite's read-only mode (a ``file:`` URI, mode=ro)."""
    return url.set(database=path.resolve().as_uri(), query={**url.query, "uri": "true", "mode": "ro"})


def _version(value: str | None, shown: str) -> int | None:
    """The recorded schema version (None when none is recorded); a value that is no number is bad input."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise InputError(f"{shown} is a damaged registry: schema version {_clip(value)!r} is not a number; "
                         "give another --db or start a new registry") from None


def _missing_columns(engine: sa.Engine) -> list[str]:
    """``table.column`` of this schema version that the database lacks (tables absent count too)."""
    inspector = sa.inspect(engine)
    missing = []
    for table in metadata.tables.values():
        if not inspector.has_table(table.name):
            missing.append(table.name)
            continue
        have = {c["name"] for c in inspector.get_columns(table.name)}
        missing.extend(f"{table.name}.{c.name}" for c in table.columns if c.name not in have)
    return missing


def _clip(text: str) -> str:
    """A value from the database, short enough for a one-line message."""
    return text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + "..."


def _engine_options(url: sa.engine.URL) -> dict[str, Any]:
    if url.get_backend_name() == "sqlite":
        # Readers (cohort status while a batch runs) wait rather than fail on a write lock.
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True}


def _shown(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def _finite(value: Any) -> Any:
    """NaN (an empty number in lesions.csv) is stored as NULL, the same in every database."""
    return None if isinstance(value, float) and value != value else value


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    import json

    return json.dumps(value, ensure_ascii=False)
