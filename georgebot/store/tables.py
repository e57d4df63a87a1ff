"""The SQLModel tables (rows). Shapes follow DESIGN.md's "Actual state".

Times are stored as naive UTC and read back aware (`UtcDateTime`), the same on SQLite and
PostgreSQL. `JobRunRow.active` is indexed so a pass touches only unfinished jobs, never
history. The event log is append-only: nothing updates or deletes `EventRow`s.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def _at(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=sa.Column(UtcDateTime(), nullable=nullable, index=index))


def _json() -> Any:
    return Field(default=None, sa_column=sa.Column(sa.JSON(), nullable=True))


class RevisionRow(SQLModel, table=True):
    __tablename__ = "revisions"

    id: int | None = Field(default=None, primary_key=True)
    sha: str = Field(index=True)
    message: str = ""
    synced_at: datetime = _at(nullable=False)
    errors: list[dict[str, Any]] | None = _json()
    agents: dict[str, Any] | None = _json()  # name -> AgentSpec JSON, for status and blocked retries


class JobRunRow(SQLModel, table=True):
    __tablename__ = "job_runs"
    # One active run per job, whatever number of Georges share the database.
    __table_args__ = (
        sa.Index("uq_job_runs_active_name", "name", unique=True,
                 sqlite_where=sa.text("active"), postgresql_where=sa.text("active")),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    template: str = ""
    status: str = "Pending"
    active: bool = Field(default=True, index=True)
    generation: int = 1
    digest: str = ""
    spec: dict[str, Any] | None = _json()  # the RenderedJob
    file: str = ""
    revision: str = ""
    channel: str = ""
    created_at: datetime = _at(nullable=False)
    updated_at: datetime = _at(nullable=False)
    progress_at: datetime = _at(nullable=False)
    finished_at: datetime | None = _at()
    conditions: list[dict[str, Any]] | None = _json()


class StepRunRow(SQLModel, table=True):
    __tablename__ = "step_runs"
    __table_args__ = (
        sa.UniqueConstraint("job_id", "name"),
        sa.Index("ix_step_runs_agent_status", "agent", "status"),  # caps count running steps
    )

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job_runs.id", index=True)
    name: str
    position: int = 0
    status: str = Field(default="Pending", index=True)
    reason: str | None = None
    message: str = ""
    attempts: int = 0  # attempts started
    failures: int = 0  # failed attempts counted against `retries`
    digest: str = ""  # the step definition this run follows; approvals bind to it
    agent_digest: str = ""  # the agent's spec when the step was blocked
    next_attempt_at: datetime | None = _at(index=True)
    started_at: datetime | None = _at()
    deadline_at: datetime | None = _at()  # started_at + timeout; ask: when to ping / fail
    finished_at: datetime | None = _at()
    agent: str | None = None  # its AgentSpec: an agent's cap counts its steps across Georges
    lease_owner: str | None = None
    lease_expires_at: datetime | None = _at()
    waits_for: dict[str, Any] | None = _json()  # `model.approvals.Waits`: the open request
    conditions: list[dict[str, Any]] | None = _json()
    process: dict[str, Any] | None = _json()  # `model.attempts.ProcessRecord` of the attempt


class ReplicaRow(SQLModel, table=True):
    """A running George process, as it describes itself; removed when it stops cleanly."""

    __tablename__ = "replicas"

    id: str = Field(primary_key=True)
    host: str = ""
    pid: int = 0
    version: str = ""
    sandbox: str = ""
    started_at: datetime = _at(nullable=False)
    heartbeat_at: datetime = _at(nullable=False)
    sync_error: str | None = None  # what is wrong with its Git sync now, if anything


class LeaseRow(SQLModel, table=True):
    """What one George at a time does (the Git sync, the outbox): held until `expires_at`,
    renewed by its holder, taken by another once it lapses."""

    __tablename__ = "leases"

    name: str = Field(primary_key=True)
    holder: str = ""
    expires_at: datetime = _at(nullable=False)
    acquired_at: datetime = _at(nullable=False)


class SlackEventRow(SQLModel, table=True):
    """A Slack event some George handled: a repeated delivery, to any George, is dropped."""

    __tablename__ = "slack_events"

    id: str = Field(primary_key=True)
    seen_at: datetime = _at(nullable=False, index=True)


class RequestRow(SQLModel, table=True):
    """An approval request (an `ask`, a held tool call, a question): votes and the Slack
    message that carries it bind to its id. Open while `closed` is null."""

    __tablename__ = "requests"

    id: str = Field(primary_key=True)
    job_id: int = Field(foreign_key="job_runs.id", index=True)
    step_id: int = Field(foreign_key="step_runs.id", index=True)
    step: str = ""
    kind: str = "ask"
    channel: str = ""
    text: str = ""
    approvers: list[str] | None = _json()
    quorum: int = 1
    digest: str = ""  # the step definition it asked about
    opened_at: datetime = _at(nullable=False)
    closed_at: datetime | None = _at()
    closed: str | None = Field(default=None, index=True)  # `model.approvals.Closed`


class VoteRow(SQLModel, table=True):
    """A person's ✅ or ❌ on one approval request; one per person and request."""

    __tablename__ = "votes"
    __table_args__ = (sa.UniqueConstraint("request_id", "user", name="uq_votes_request_id_user"),)

    id: int | None = Field(default=None, primary_key=True)
    step_id: int = Field(foreign_key="step_runs.id", index=True)
    request_id: str | None = Field(default=None, index=True)
    user: str
    approve: bool
    digest: str
    at: datetime = _at(nullable=False)
    note: str = ""


class ContextRow(SQLModel, table=True):
    """A step's context, oldest first: output tails, notes, people's replies, LLM turns."""

    __tablename__ = "context"

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job_runs.id", index=True)
    step: str | None = None
    at: datetime = _at(nullable=False)
    role: str = "note"
    author: str | None = None
    text: str = ""
    data: dict[str, Any] | None = _json()


class OutboxRow(SQLModel, table=True):
    """A chat message to deliver; headless runs leave it queued."""

    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    job_id: int | None = Field(default=None, foreign_key="job_runs.id", index=True)
    step: str | None = None
    kind: str = "note"
    channel: str = ""
    text: str = ""
    thread_of_card: bool = True
    request_id: str | None = Field(default=None, index=True)  # an approval request's message
    created_at: datetime = _at(nullable=False)
    delivered_at: datetime | None = _at(index=True)


class SlackMessageRow(SQLModel, table=True):
    """A Slack message George owns: a job's card or an approval request."""

    __tablename__ = "slack_messages"
    # One card per run and one message per request, whatever number of Georges post them.
    __table_args__ = (
        sa.Index("uq_slack_messages_card", "job_id", unique=True,
                 sqlite_where=sa.text("kind = 'card'"), postgresql_where=sa.text("kind = 'card'")),
        sa.Index("uq_slack_messages_request", "request_id", unique=True,
                 sqlite_where=sa.text("request_id IS NOT NULL"),
                 postgresql_where=sa.text("request_id IS NOT NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job_runs.id", index=True)
    step: str | None = None
    kind: str = "card"
    channel_id: str = ""
    ts: str = Field(default="", index=True)
    request_id: str | None = None
    created_at: datetime = _at(nullable=False)


class UsageRow(SQLModel, table=True):
    __tablename__ = "usage"

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job_runs.id", index=True)
    step: str = ""
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cost_usd: float = 0.0
    at: datetime = _at(nullable=False)


class EventRow(SQLModel, table=True):
    """The audit trail: who changed what, from which status to which, why, when."""

    __tablename__ = "events"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _at(nullable=False)
    job_id: int | None = Field(default=None, index=True)
    job: str = Field(default="", index=True)
    step: str | None = None
    actor: str = "engine"
    from_status: str | None = None
    to_status: str | None = None
    reason: str | None = None
    message: str = ""
