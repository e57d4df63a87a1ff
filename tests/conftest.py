"""Fixtures shared by every test: databases (SQLite, and PostgreSQL when available), a clock.

PostgreSQL runs when GEORGE_TEST_POSTGRES_URL is set (CI always sets it); each test gets
a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from georgebot.engine.service import Engine
from georgebot.store import Database, Store, open_database
from tests.engine.harness import FakeSource, ScriptedRunner, make_engine

POSTGRES_URL = os.environ.get("GEORGE_TEST_POSTGRES_URL")


@dataclass
class FakeClock:
    """The engine's injected clock; tests move it by hand."""

    at: datetime = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> None:
        self.at += delta


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _postgres_schema_url() -> Iterator[str]:
    if not POSTGRES_URL:
        pytest.skip(
            "PostgreSQL half skipped: set GEORGE_TEST_POSTGRES_URL "
            "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test) to run it"
        )
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as e:
        admin.dispose()
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL}: {e.orig}")
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'george.db'}"
    else:
        yield from _postgres_schema_url()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A schema of its own on the PostgreSQL server, for what only PostgreSQL does."""
    yield from _postgres_schema_url()


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = open_database(database_url)
    yield db
    db.close()


@pytest.fixture
def store(database: Database) -> Store:
    return Store(database)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """For engine tests whose logic does not depend on the database kind."""
    db = open_database(f"sqlite:///{tmp_path / 'george.db'}")
    yield Store(db)
    db.close()


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> None:
    """Every task a test starts must be finished when it ends (kopf's hygiene check)."""
    yield  # type: ignore[misc]
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not leaked, f"tasks leaked: {[t.get_name() for t in leaked]}"


@pytest.fixture
def source() -> FakeSource:
    """A manifests repository whose commits the test makes."""
    return FakeSource()


@pytest.fixture
def runner() -> ScriptedRunner:
    return ScriptedRunner()


@pytest.fixture
async def engine(
    sqlite_store: Store, source: FakeSource, runner: ScriptedRunner, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[Engine]:
    eng = make_engine(sqlite_store, source, runner, clock, tmp_path / "home")
    await eng.start()
    yield eng
    await eng.close()


@pytest.fixture
def other_store(database_url: str) -> Iterator[Store]:
    """Another process's own connection to the test's database."""
    db = open_database(database_url)
    yield Store(db)
    db.close()


@pytest.fixture
async def engines() -> AsyncIterator[list[Engine]]:
    """Engines the test starts; each is closed at the end, even when the test fails."""
    started: list[Engine] = []
    yield started
    for engine in reversed(started):
        await engine.close()
