"""replicas share work: leases on what one George leads, Slack events seen, steps' agents,
one card per run and one message per request

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 16:00:00

One George at a time leads the Git sync and the outbox (a row in `leases`); a Slack event
any George handled is recorded in `slack_events`, so a repeat reaching another is dropped;
a step names its agent, so an agent's `maxConcurrentSteps` counts across Georges.
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import context, op

import georgebot.store.tables

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("holder", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("expires_at", georgebot.store.tables.UtcDateTime(), nullable=False),
        sa.Column("acquired_at", georgebot.store.tables.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "slack_events",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("seen_at", georgebot.store.tables.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_slack_events_seen_at"), "slack_events", ["seen_at"], unique=False)
    with op.batch_alter_table("step_runs") as batch:
        batch.add_column(sa.Column("agent", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch.create_index("ix_step_runs_agent_status", ["agent", "status"], unique=False)
    # One card per run (the newest: a card Slack lost was posted again) and one message per
    # request (the first), held by the database from now on.
    op.execute("DELETE FROM slack_messages WHERE kind = 'card' AND id NOT IN ("
               "SELECT max(id) FROM slack_messages WHERE kind = 'card' GROUP BY job_id)")
    op.execute("DELETE FROM slack_messages WHERE request_id IS NOT NULL AND id NOT IN ("
               "SELECT min(id) FROM slack_messages WHERE request_id IS NOT NULL GROUP BY request_id)")
    with op.batch_alter_table("slack_messages") as batch:
        batch.drop_index("ix_slack_messages_request_id")
        batch.create_index("uq_slack_messages_card", ["job_id"], unique=True,
                           sqlite_where=sa.text("kind = 'card'"), postgresql_where=sa.text("kind = 'card'"))
        batch.create_index("uq_slack_messages_request", ["request_id"], unique=True,
                           sqlite_where=sa.text("request_id IS NOT NULL"),
                           postgresql_where=sa.text("request_id IS NOT NULL"))
    if context.is_offline_mode():  # a script has no rows to read
        op.execute("-- 0005: step_runs.agent stays empty for the steps of active runs, which then count "
                   "toward no agent's maxConcurrentSteps: run `georgebot migrate` to fill it in")
    else:
        _name_agents()


def _name_agents() -> None:
    conn = op.get_bind()
    runs = conn.execute(sa.text("SELECT id, spec FROM job_runs WHERE active")).all()
    for run_id, spec in runs:
        if isinstance(spec, str):  # SQLite hands JSON back as text here
            spec = json.loads(spec)
        for step in (spec or {}).get("steps", []):
            if step.get("agent"):
                conn.execute(
                    sa.text("UPDATE step_runs SET agent = :agent WHERE job_id = :id AND name = :name"),
                    {"agent": step["agent"], "id": run_id, "name": step["name"]})


def downgrade() -> None:
    with op.batch_alter_table("slack_messages") as batch:
        batch.drop_index("uq_slack_messages_request")
        batch.drop_index("uq_slack_messages_card")
        batch.create_index("ix_slack_messages_request_id", ["request_id"], unique=False)
    with op.batch_alter_table("step_runs") as batch:
        batch.drop_index("ix_step_runs_agent_status")
        batch.drop_column("agent")
    op.drop_index(op.f("ix_slack_events_seen_at"), table_name="slack_events")
    op.drop_table("slack_events")
    op.drop_table("leases")
