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
