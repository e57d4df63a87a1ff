"""attempt processes and replicas: where each attempt runs, and what each George says of itself

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 13:30:00

A step records the process group of its attempt, so a George that recovers it stops what is
left; every running George writes a replica row (host, sandbox), which `status` reads.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import georgebot.store.tables

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("step_runs") as batch:
        batch.add_column(sa.Column("process", sa.JSON(), nullable=True))
    op.create_table(
        "replicas",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("host", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("sandbox", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("started_at", georgebot.store.tables.UtcDateTime(), nullable=False),
        sa.Column("heartbeat_at", georgebot.store.tables.UtcDateTime(), nullable=False),
        sa.Column("sync_error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("replicas")
    with op.batch_alter_table("step_runs") as batch:
        batch.drop_column("process")
