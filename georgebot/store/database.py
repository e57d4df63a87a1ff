"""Opening the database: SQLite (WAL) or PostgreSQL, schema upgraded by Alembic at start.

`open_database(url)` is called once by the runtime or a command; migrations live in
`store/migrations/` and run automatically, so an old `george.db` is upgraded in place.
`georgebot migrate` runs them on their own (`migrate`), or prints them as SQL (`upgrade_script`).
"""

from __future__ import annotations

import fcntl
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError

from georgebot.errors import ConfigError
from georgebot.model.urls import redact

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass
class Database:
    engine: Engine
    url: str
    commits: int = 0
    """Transactions committed: a write that went through says the database takes writes."""

    def __post_init__(self) -> None:
        sa.event.listen(self.engine, "commit", self._committed)

    def _committed(self, _conn: Any) -> None:
        self.commits += 1

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(busy_ms: int) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return on_connect


def create(url: str, *, busy_ms: int = 5000) -> Database:
    """`busy_ms`: how long a SQLite write waits for another writer's lock before the store
    reports the database busy (and George writes again later)."""
    try:
        if url.startswith("sqlite"):
            engine = sa.create_engine(url, connect_args={"check_same_thread": False})
            sa.event.listen(engine, "connect", _sqlite_pragmas(busy_ms))
        else:
            engine = sa.create_engine(url, pool_pre_ping=True)
    except (ArgumentError, ImportError) as e:
        raise ConfigError(
            f"GEORGE_DATABASE_URL {redact(url)!r} is not usable ({e}); use sqlite:///george.db "
            "or postgresql+psycopg://user@host/db"
        ) from e
    return Database(engine=engine, url=url)


MIGRATION_LOCK = 0x6765_6F72_6765  # "george": the advisory lock every George upgrades under


@dataclass(frozen=True)
class Upgrade:
    """What `migrate` did: the schema before (None: a database George never wrote) and after."""

    before: str | None
    after: str


def migrate(db: Database) -> Upgrade:
    """Brings the schema to this George's head, one George at a time: on PostgreSQL under a
    transaction-level advisory lock, on SQLite under an exclusive lock of a file beside the
    database, so Georges started at the same moment all succeed. A database newer than this
    George is a ConfigError saying so."""
    config = _config()
    with _migration_lock(db), db.engine.begin() as connection:
        if not db.is_sqlite:
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = connection
        before = _revision(config, connection, db.url)
        command.upgrade(config, "head")
    return Upgrade(before=before, after=_head(config))


def upgrade_script(db: Database) -> str:
    """The SQL `migrate` would run on this database, for its dialect, changing nothing: for a
    DBA who applies schema changes by hand. The migrations' data fix-ups need rows to read, so
    the script leaves them out and says so in SQL comments. A SQLite file that does not exist
    is not created."""
    config = _config(dialect=db.engine.dialect.name)
    before, path = None, _sqlite_file(db)
    if path is None or Path(path).exists():
        with db.engine.connect() as connection:
            before = _revision(config, connection, db.url)
    if before == _head(config):
        return f"-- {redact(db.url)} is already at schema {before}: nothing to do\n"
    script = io.StringIO()
    config.output_buffer = script
    try:
        command.upgrade(config, f"{before}:head" if before else "head", sql=True)
    except CommandError as e:  # SQLite alters a table by copying it, which needs the live table
        if not db.is_sqlite:
            raise
        raise ConfigError(
            f"cannot write the upgrade of {redact(db.url)} as SQL: on SQLite some migrations rebuild "
            "tables from the live database; run `georgebot migrate` (on a copy of the file to try it first)"
        ) from e
    return script.getvalue()


def _config(**attributes: Any) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes.update(attributes)
    return config


def _head(config: Config) -> str:
    return str(ScriptDirectory.from_config(config).get_current_head())


def _revision(config: Config, connection: Connection, url: str) -> str | None:
    """The database's schema revision, None when George never wrote it; a revision this
    George does not know is a newer George's, and a ConfigError."""
    known = {rev.revision for rev in ScriptDirectory.from_config(config).walk_revisions()}
    current = MigrationContext.configure(connection).get_current_revision()
    if current is not None and current not in known:
        raise ConfigError(
            f"the database {redact(url)} was upgraded by a newer George (schema {current}; "
            f"this one knows up to {_head(config)}): run that George's version or a newer one"
        )
    return current


def _sqlite_file(db: Database) -> str | None:
    database = db.engine.url.database if db.is_sqlite else None
    return None if not database or database == ":memory:" else database


@contextmanager
def _migration_lock(db: Database) -> Iterator[None]:
    database = _sqlite_file(db)
    if database is None:
        yield
        return
    with open(f"{database}-migrating", "a") as lock:  # george.db-* is ignored by Git
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def open_database(url: str, *, upgrade: bool = True, busy_ms: int = 5000) -> Database:
    """Connects and brings the schema up to date; a database that can't be reached is a ConfigError."""
    db = create(url, busy_ms=busy_ms)
    try:
        if upgrade:
            migrate(db)
        else:
            with db.engine.connect():
                pass
    except OperationalError as e:
        db.close()
        raise _unreachable(url, e) from e
    return db


@contextmanager
def connected(url: str) -> Iterator[Database]:
    """For `georgebot migrate`: the database without an upgrade at start, closed at the end;
    one that cannot be reached (at the start or mid-way) is a ConfigError."""
    db = create(url)
    try:
        yield db
    except OperationalError as e:
        raise _unreachable(url, e) from e
    finally:
        db.close()


def _unreachable(url: str, e: OperationalError) -> ConfigError:
    return ConfigError(f"cannot open the database {redact(url)}: {e.orig}")


@contextmanager
def reading(url: str) -> Iterator[Database]:
    """For `status` and `audit`: no migration, no writes; a database George never wrote is
    a ConfigError that says how to make one."""
    missing = ConfigError(
        f"no George state in {redact(url)}: run `georgebot reconcile` or `georgebot run` first"
    )
    database = sa.engine.make_url(url).database if url.startswith("sqlite") else None
    if database not in (None, "", ":memory:") and not Path(database).exists():
        raise missing  # connecting would create the file, and status never writes
    db = open_database(url, upgrade=False)
    try:
        yield db
    except (OperationalError, ProgrammingError) as e:
        raise missing from e
    finally:
        db.close()

