"""Opening the database: SQLite (WAL) or PostgreSQL, schema upgraded by Alembic at start.

`open_database(url)` is called once by the runtime or a command; migrations live in
`store/migrations/` and run automatically, so an old `george.db` is upgraded in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine
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


def migrate(db: Database) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


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
        raise ConfigError(f"cannot open the database {redact(url)}: {e.orig}") from e
    return db


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

