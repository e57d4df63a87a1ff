"""What is rendered (Slack cards, `status`, `audit`): read-only shapes built by `store/`.

The JSON forms of `georgebot status --json` and `audit --json` are made from these, so
field names here are part of a documented, stable contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from georgebot.model.attempts import Replica
from georgebot.model.status import Condition, JobStatus, StepStatus


def iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat().replace("+00:00", "Z")


def dollars(usd: float) -> str:
    """A cost as people read it: to the cent from $1, to a tenth of a cent below it
    ($0.004), and `<$0.001` for less; cards, `/george status` and `georgebot status` share it."""
    if usd <= 0:
        return "$0.00"
    amount = Decimal(repr(usd))
    if amount >= 1:
        return f"${amount.quantize(Decimal('0.01'), ROUND_HALF_UP)}"
    tenths = amount.quantize(Decimal("0.001"), ROUND_HALF_UP)
    if tenths == 0:
        return "<$0.001"
    if tenths >= 1:
        return "$1.00"
    text = f"{tenths:.3f}"
    return f"${text[:-1] if text.endswith('0') else text}"


@dataclass(frozen=True)
class OutboxItem:
    """A chat message to deliver, as the outbox holds it."""

    id: int
    job_id: int | None
    step: str | None
    kind: str
    channel: str
    text: str
    thread_of_card: bool
    request_id: str | None
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
    request_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            round(self.cost_usd + other.cost_usd, 6),
        )


@dataclass(frozen=True)
class WaitView:
    """What a Waiting step waits for: whom, how many, who has answered."""

    channel: str
    text: str
    approvers: tuple[str, ...]
    quorum: int
    approved_by: tuple[str, ...] = ()
    kind: str = "ask"  # "ask", "question" (a reply answers it) or "tool" (an agent's held call)
    request: str = ""  # the request's id: votes and its Slack message bind to it
    escalated_to: tuple[str, ...] = ()  # asked too, once the request escalated


@dataclass(frozen=True)
class StepView:
    name: str
    form: str
    status: StepStatus
    reason: str | None
    message: str
    attempts: int
    needs: tuple[str, ...] = ()
    agent: str | None = None
    next_attempt_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    waiting: WaitView | None = None
    usage: Usage = Usage()
    conditions: tuple[Condition, ...] = ()
    replica: str | None = None  # the George running it now (its lease owner)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "form": self.form,
            "replica": self.replica,
            "status": str(self.status),
            "reason": self.reason,
            "message": self.message,
            "attempts": self.attempts,
            "agent": self.agent,
            "needs": list(self.needs),
            "next_attempt_at": iso(self.next_attempt_at),
            "usage": _usage_json(self.usage),
        }


@dataclass(frozen=True)
class JobView:
    name: str
    template: str
    status: JobStatus
    generation: int
    channel: str
    revision: str
    steps: tuple[StepView, ...]
    created_at: datetime
    updated_at: datetime
    conditions: tuple[Condition, ...] = ()
    usage: Usage = Usage()
    run_id: int = 0

    def step(self, name: str) -> StepView:
        return next(s for s in self.steps if s.name == name)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "template": self.template,
            "status": str(self.status),
            "generation": self.generation,
            "observedGeneration": self.generation,  # the steps follow it (or InvalidSpec says why not)
            "channel": self.channel,
            "revision": self.revision,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "conditions": [_condition_json(c) for c in self.conditions],
            "usage": _usage_json(self.usage),
            "steps": [s.to_json() for s in self.steps],
        }


@dataclass(frozen=True)
class EventView:
    at: datetime
    job: str
    step: str | None
    actor: str
    from_status: str | None
    to_status: str | None
    reason: str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "at": iso(self.at),
            "job": self.job,
            "step": self.step,
            "actor": self.actor,
            "from": self.from_status,
            "to": self.to_status,
            "reason": self.reason,
            "message": self.message,
        }


@dataclass(frozen=True)
class RevisionView:
    sha: str
    message: str
    synced_at: datetime


@dataclass(frozen=True)
class AgentView:
    name: str
    capabilities: dict[str, list[str]]
    running: int
    model: str | None = None


@dataclass(frozen=True)
class StatusView:
    revision: RevisionView | None
    manifest_errors: tuple[dict[str, Any], ...]
    agents: tuple[AgentView, ...]
    jobs: tuple[JobView, ...]
    usage: Usage = field(default_factory=Usage)
    replicas: tuple[Replica, ...] = ()
    sandbox: str = ""  # "kind: detail" of the newest running George, or of this machine

    @property
    def sync_error(self) -> str | None:
        """What a running George says is wrong with its Git sync (it goes on meanwhile)."""
        return next((r.sync_error for r in reversed(self.replicas) if r.sync_error), None)

    def to_json(self) -> dict[str, Any]:
        rev = self.revision
        kind, _, detail = self.sandbox.partition(": ")
        return {
            "sandbox": {"kind": kind, "detail": detail} if self.sandbox else None,
            "replicas": [
                {"id": r.id, "host": r.host, "pid": r.pid, "version": r.version,
                 "sandbox": r.sandbox, "started_at": iso(r.started_at), "heartbeat_at": iso(r.heartbeat_at),
                 "sync_error": r.sync_error, "leader": "sync" in r.leads, "leads": list(r.leads)}
                for r in self.replicas
            ],
            "revision": None
            if rev is None
            else {"sha": rev.sha, "message": rev.message, "synced_at": iso(rev.synced_at)},
            "sync_error": self.sync_error,
            "manifest_errors": list(self.manifest_errors),
            "agents": [
                {"name": a.name, "capabilities": a.capabilities, "running": a.running, "model": a.model}
                for a in self.agents
            ],
            "jobs": [j.to_json() for j in self.jobs],
        }


def _usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cost_usd": usage.cost_usd,
    }


def _condition_json(c: Condition) -> dict[str, Any]:
    return {
        "type": c.type,
        "status": "True" if c.status else "False",
        "reason": c.reason,
        "message": c.message,
        "lastTransitionTime": iso(c.last_transition_time),
        "observedGeneration": c.observed_generation,
    }
