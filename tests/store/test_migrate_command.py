"""`georgebot migrate` brings a database to this George's schema and says from where; `--sql`
prints the same upgrade as a script and changes nothing, and the script builds the schema.
The real command, as a process, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

from georgebot.store import tables  # noqa: F401  (registers the tables)
from georgebot.store.database import MIGRATIONS, create, open_database

pytestmark = pytest.mark.slow



def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()
POSTGRES_ONLY = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


def georgebot(*args: str, url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "GEORGE_", "ANTHROPIC_"))}
    return subprocess.run([sys.executable, "-m", "georgebot", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env=env | {"GEORGE_DATABASE_URL": url})


def revision(url: str) -> str | None:
    db = create(url)
    try:
        with db.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        db.close()


def upgrade_in_process(url: str, to: str) -> None:
    db, config = create(url), alembic_config()
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, to)
    db.close()


def table_names(url: str) -> list[str]:
    db = create(url)
    try:
        return sa.inspect(db.engine).get_table_names()
    finally:
        db.close()


def apply_script(url: str, script: str) -> None:
    """As a DBA would: the script as written, through the database's own client library."""
    if url.startswith("sqlite"):
        with sqlite3.connect(sa.engine.make_url(url).database or "") as conn:
            conn.executescript(script)
        return
    libpq = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(script.encode())


def test_an_empty_database_is_brought_to_head_and_a_second_run_changes_nothing(
    database_url: str, tmp_path: Path
) -> None:
    first = georgebot("migrate", url=database_url, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().endswith(f": schema none → {HEAD}")
    assert revision(database_url) == HEAD
    assert georgebot("status", url=database_url, cwd=tmp_path).returncode == 0

    again = georgebot("migrate", url=database_url, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().endswith(f": already at {HEAD}")


def test_an_older_database_says_where_it_was(database_url: str, tmp_path: Path) -> None:
    upgrade_in_process(database_url, "0003")

    result = georgebot("migrate", url=database_url, cwd=tmp_path)

    assert result.stdout.strip().endswith(f": schema 0003 → {HEAD}")
    assert revision(database_url) == HEAD


@POSTGRES_ONLY
def test_a_password_in_the_url_is_never_printed(database_url: str, tmp_path: Path) -> None:
    with_password = sa.engine.make_url(database_url).set(password="hunter2-secret")  # trust auth lets it in
    url = with_password.render_as_string(hide_password=False)

    result = georgebot("migrate", url=url, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "***@" in result.stdout
    assert "hunter2" not in result.stdout + result.stderr


@POSTGRES_ONLY
def test_the_script_for_an_empty_postgres_database_builds_the_schema_and_changes_nothing(
    database_url: str, tmp_path: Path
) -> None:
    result = georgebot("migrate", "--sql", url=database_url, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE leases" in result.stdout
    assert "CREATE TABLE alembic_version" in result.stdout
    assert f"UPDATE alembic_version SET version_num='{HEAD}'" in result.stdout
    assert table_names(database_url) == []  # nothing ran

    apply_script(database_url, result.stdout)  # onto that schema, still empty

    assert revision(database_url) == HEAD
    db = create(database_url)
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
    db.close()
    assert georgebot("migrate", url=database_url, cwd=tmp_path).stdout.strip().endswith(
        f": already at {HEAD}")


def test_the_script_for_an_older_database_holds_only_what_it_lacks(database_url: str, tmp_path: Path) -> None:
    upgrade_in_process(database_url, "0003")

    result = georgebot("migrate", "--sql", url=database_url, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE leases" in result.stdout
    assert "CREATE TABLE job_runs" not in result.stdout
    assert "-- 0004: twin active runs" in result.stdout  # the fix-up it leaves out, said in SQL
    assert revision(database_url) == "0003"

    apply_script(database_url, result.stdout)

    assert revision(database_url) == HEAD
    at_head = georgebot("migrate", "--sql", url=database_url, cwd=tmp_path)
    assert at_head.stdout.strip().endswith(f"is already at schema {HEAD}: nothing to do")


def test_no_script_for_a_new_sqlite_file_and_no_file_made(tmp_path: Path) -> None:
    path = tmp_path / "george.db"

    result = georgebot("migrate", "--sql", url=f"sqlite:///{path}", cwd=tmp_path)

    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert "run `georgebot migrate`" in result.stderr
    assert not path.exists()


@pytest.mark.parametrize("sql", [(), ("--sql",)], ids=["migrate", "sql"])
def test_a_database_from_a_newer_george_is_one_line_and_exit_2(
    database_url: str, tmp_path: Path, sql: tuple[str, ...]
) -> None:
    open_database(database_url).close()
    db = create(database_url)
    with db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
    db.close()

    result = georgebot("migrate", *sql, url=database_url, cwd=tmp_path)

    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert "upgraded by a newer George (schema 0099" in line
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert revision(database_url) == "0099"
