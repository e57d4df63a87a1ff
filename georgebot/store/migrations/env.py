"""Alembic environment: online, on the connection `store.database.migrate` hands in; offline
(`upgrade_script`, for `georgebot migrate --sql`), writing SQL for the dialect it names."""

from alembic import context
from sqlmodel import SQLModel

from georgebot.store import tables  # noqa: F401  (registers the tables)

if context.is_offline_mode():
    dialect = context.config.attributes["dialect"]
    context.configure(
        dialect_name=dialect,
        target_metadata=SQLModel.metadata,
        literal_binds=True,
        render_as_batch=dialect == "sqlite",
    )
else:
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
with context.begin_transaction():
    context.run_migrations()
