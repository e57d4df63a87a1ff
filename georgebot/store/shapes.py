"""What leaves the store: plain dataclasses built from rows (rows themselves never do)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, TypeVar

from georgebot.model.rendered import RenderedJob
from georgebot.model.status import JobStatus, StepStatus


@dataclass
class StepState:
    id: int
    job_id: int
    name: str
    position: int
    status: StepStatus
    reason: str | None
    message: str
    attempts: int
    failures: int
    digest: str
    agent_digest: str
    next_attempt_at: datetime | None
    started_at: datetime | None
    deadline_at: datetime | None
    finished_at: datetime | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    waits_for: dict[str, Any] | None


@dataclass
class RunState:
    id: int
    name: str
    template: str
    status: JobStatus
    active: bool
    generation: int
    digest: str
    spec: RenderedJob
    file: str
    revision: str
    channel: str
    created_at: datetime
    updated_at: datetime
    progress_at: datetime
    conditions: list[dict[str, Any]]
    steps: list[StepState] = field(default_factory=list)

    def step(self, name: str) -> StepState | None:
        return next((s for s in self.steps if s.name == name), None)


@dataclass(frozen=True)
class RunSummary:
    id: int
    name: str
    status: JobStatus
    active: bool
    digest: str


@dataclass(frozen=True)
class ContextItem:
    """One entry of a job's context, oldest first (see `engine.ports.ContextEntry`)."""

    id: int
    job_id: int
    step: str | None
    at: datetime
    role: str
    author: str | None
    text: str
    data: dict[str, Any] | None


@dataclass(frozen=True)
class OutboxItem:
    id: int
    job_id: int | None
    step: str | None
    kind: str
    channel: str
    text: str
    thread_of_card: bool
    meta: dict[str, Any] | None
    created_at: datetime


@dataclass(frozen=True)
class SlackMessage:
    """A Slack message George owns: a job's card or an approval request."""

    id: int
    job_id: int
    step: str | None
    kind: str
    channel_id: str
    ts: str
    digest: str
    created_at: datetime


def from_row(cls: type[T], row: Any) -> T:
    return cls(**{f.name: row._mapping[f.name] for f in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class StepUpdate:
    """A step transition; fields left as `...` keep their value."""

    to: StepStatus
    reason: str | None = None
    message: str = ""
    actor: str = "engine"
    fields: dict[str, Any] = field(default_factory=dict)


T = TypeVar("T")


def step_state(row: Any) -> StepState:
    """From an ORM row or a Core row alike (both read by attribute)."""
    assert row.id is not None
    return StepState(
        id=row.id,
        job_id=row.job_id,
        name=row.name,
        position=row.position,
        status=StepStatus(row.status),
        reason=row.reason,
        message=row.message,
        attempts=row.attempts,
        failures=row.failures,
        digest=row.digest,
        agent_digest=row.agent_digest,
        next_attempt_at=row.next_attempt_at,
        started_at=row.started_at,
        deadline_at=row.deadline_at,
        finished_at=row.finished_at,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        waits_for=row.waits_for,
    )


def run_state(row: Any, steps: Iterable[Any], spec: RenderedJob) -> RunState:
    assert row.id is not None
    return RunState(
        id=row.id,
        name=row.name,
        template=row.template,
        status=JobStatus(row.status),
        active=row.active,
        generation=row.generation,
        digest=row.digest,
        spec=spec,
        file=row.file,
        revision=row.revision,
        channel=row.channel,
        created_at=row.created_at,
        updated_at=row.updated_at,
        progress_at=row.progress_at,
        conditions=list(row.conditions or []),
        steps=sorted((step_state(s) for s in steps), key=lambda s: s.position),
    )
