"""approval requests: votes, outbox messages and Slack messages bind to a request's id

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 10:40:00

A step waiting in an older database gets a request for what it waits on; the votes, the
undelivered request message and the Slack message of that step's current definition move to
it, so an upgrade loses no approval in progress.

Only approvals move, as 0001 counted only approvals: a waiting step's rejection on its current
definition ended an earlier round (the step was retried since), and bound to the new request
it would hide that person's approval and refuse the next one as already counted. An undelivered
request message whose `meta.digest` names another definition stays unbound, as 0001 dropped it
when its turn came; bound, it would be posted as the current request.
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import context, op

import georgebot.store.tables

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.Integer(), nullable=False),
        sa.Column("step", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("approvers", sa.JSON(), nullable=True),
        sa.Column("quorum", sa.Integer(), nullable=False),
        sa.Column("digest", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("opened_at", georgebot.store.tables.UtcDateTime(), nullable=False),
        sa.Column("closed_at", georgebot.store.tables.UtcDateTime(), nullable=True),
        sa.Column("closed", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["job_runs.id"]),
        sa.ForeignKeyConstraint(["step_id"], ["step_runs.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_requests_closed"), ["closed"], unique=False)
        batch_op.create_index(batch_op.f("ix_requests_job_id"), ["job_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_requests_step_id"), ["step_id"], unique=False)

    with op.batch_alter_table("votes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.create_index(batch_op.f("ix_votes_request_id"), ["request_id"], unique=False)
        batch_op.create_unique_constraint("uq_votes_request_id_user", ["request_id", "user"])
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.create_index(batch_op.f("ix_outbox_request_id"), ["request_id"], unique=False)
    with op.batch_alter_table("slack_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.create_index(batch_op.f("ix_slack_messages_request_id"), ["request_id"], unique=False)

    if context.is_offline_mode():  # a script has no rows to read
        op.execute("-- 0002: the approvals in progress of waiting steps are not carried to requests here: "
                   "run `georgebot migrate` to keep them")
    else:
        _carry_waiting_steps()

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("meta")
    with op.batch_alter_table("slack_messages", schema=None) as batch_op:
        batch_op.drop_column("digest")


def _carry_waiting_steps() -> None:
    conn = op.get_bind()
    steps = sa.table(
        "step_runs", sa.column("id"), sa.column("job_id"), sa.column("name"), sa.column("status"),
        sa.column("digest"), sa.column("waits_for", sa.JSON()), sa.column("started_at"),
    )
    requests = sa.table(
        "requests", sa.column("id"), sa.column("job_id"), sa.column("step_id"), sa.column("step"),
        sa.column("kind"), sa.column("channel"), sa.column("text"), sa.column("approvers", sa.JSON()),
        sa.column("quorum"), sa.column("digest"), sa.column("opened_at"),
    )
    votes = sa.table("votes", sa.column("id"), sa.column("step_id"), sa.column("digest"),
                     sa.column("user"), sa.column("approve", sa.Boolean()), sa.column("request_id"))
    outbox = sa.table("outbox", sa.column("id"), sa.column("job_id"), sa.column("step"),
                      sa.column("kind"), sa.column("delivered_at"), sa.column("meta", sa.JSON()),
                      sa.column("request_id"))
    slack = sa.table("slack_messages", sa.column("id"), sa.column("job_id"), sa.column("step"),
                     sa.column("kind"), sa.column("digest"), sa.column("request_id"))
    waiting = conn.execute(
        sa.select(steps).where(steps.c.status == "Waiting", steps.c.waits_for.is_not(None))
    ).all()
    for step in waiting:
        waits = dict(step.waits_for or {})
        request = uuid.uuid4().hex
        conn.execute(sa.insert(requests).values(
            id=request, job_id=step.job_id, step_id=step.id, step=step.name,
            kind=str(waits.get("kind", "ask")), channel=str(waits.get("channel", "")),
            text=str(waits.get("text", "")), approvers=list(waits.get("approvers", [])),
            quorum=int(waits.get("quorum", 1)), digest=step.digest,
            opened_at=step.started_at or sa.func.current_timestamp(),
        ))
        waits["request"] = request
        waits["reminded"] = bool(waits.pop("pinged", False))
        conn.execute(sa.update(steps).where(steps.c.id == step.id).values(waits_for=waits))
        seen: set[str] = set()
        for vote in conn.execute(sa.select(votes).where(
                votes.c.step_id == step.id, votes.c.digest == step.digest,
                votes.c.approve.is_(True)).order_by(votes.c.id)).all():
            if vote.user not in seen:  # one vote per person and request
                seen.add(vote.user)
                conn.execute(sa.update(votes).where(votes.c.id == vote.id).values(request_id=request))
        for message in conn.execute(sa.select(outbox.c.id, outbox.c.meta).where(
                outbox.c.job_id == step.job_id, outbox.c.step == step.name, outbox.c.kind == "approval",
                outbox.c.delivered_at.is_(None))).all():
            if str((message.meta or {}).get("digest") or step.digest) == step.digest:
                conn.execute(sa.update(outbox).where(outbox.c.id == message.id).values(request_id=request))
        conn.execute(sa.update(slack).where(
            slack.c.job_id == step.job_id, slack.c.step == step.name, slack.c.kind == "approval",
            slack.c.digest == step.digest).values(request_id=request))


def downgrade() -> None:
    with op.batch_alter_table("slack_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("digest", sqlmodel.sql.sqltypes.AutoString(), nullable=False,
                                      server_default=""))
        batch_op.drop_index(batch_op.f("ix_slack_messages_request_id"))
        batch_op.drop_column("request_id")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("meta", sa.JSON(), nullable=True))
        batch_op.drop_index(batch_op.f("ix_outbox_request_id"))
        batch_op.drop_column("request_id")
    with op.batch_alter_table("votes", schema=None) as batch_op:
        batch_op.drop_constraint("uq_votes_request_id_user", type_="unique")
        batch_op.drop_index(batch_op.f("ix_votes_request_id"))
        batch_op.drop_column("request_id")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_requests_step_id"))
        batch_op.drop_index(batch_op.f("ix_requests_job_id"))
        batch_op.drop_index(batch_op.f("ix_requests_closed"))
    op.drop_table("requests")
