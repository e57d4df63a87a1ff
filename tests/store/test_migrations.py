"""The migrations build exactly the schema the tables describe, on SQLite and PostgreSQL, so a
new column cannot ship without its migration."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from georgebot.store import (
    Database,
    tables,  # noqa: F401  (registers the tables)
)


def test_migrated_schema_matches_the_tables(database: Database) -> None:
    with database.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert differences == []


def test_an_older_database_with_twin_active_runs_keeps_the_newest(database_url: str) -> None:
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from georgebot.store.database import MIGRATIONS, create

    db = create(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0003")
        for _ in range(2):  # what two Georges made of one new job before 0004
            conn.execute(sa.text(
                "INSERT INTO job_runs (name, template, status, active, generation, digest, file, revision,"
                " channel, created_at, updated_at, progress_at) VALUES ('twin', 't', 'Running', :yes, 1,"
                " 'd', 'f', 'r', '#c', '2026-12-01', '2026-12-01', '2026-12-01')"), {"yes": True})
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        runs = conn.execute(sa.text("SELECT id, active, status FROM job_runs ORDER BY id")).all()
        events = conn.execute(sa.text("SELECT job_id, reason FROM events")).all()
    db.close()

    (old, old_active, old_status), (_, new_active, _) = runs
    assert (bool(old_active), old_status, bool(new_active)) == (False, "Cancelled", True)
    assert events == [(old, "DuplicateRun")]
