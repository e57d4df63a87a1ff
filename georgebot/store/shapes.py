"""What crosses the store's border: plain dataclasses built from rows (rows themselves never
leave), and `Effects`, everything one transition writes, which `Store.commit` applies in one
transaction."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, TypeVar

from georgebot.model.approvals import Closed, WaitKind, Waits
from georgebot.model.attempts import ProcessRecord
from georgebot.model.rendered import RenderedJob
from georgebot.model.status import Condition, JobStatus, StepStatus


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
    waits: Waits | None
    process: ProcessRecord | None = None  # the attempt's process group, once it has one


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
    conditions: tuple[Condition, ...]
    steps: list[StepState] = field(default_factory=list)
    _index: StepIndex | None = field(default=None, repr=False, compare=False)

    def step(self, name: str) -> StepState | None:
        return self.index.steps.get(name) if self._index is not None else next(
            (s for s in self.steps if s.name == name), None)

    @property
    def index(self) -> StepIndex:
        """Its live steps by status, and those whose needs have all succeeded, kept current by
        `Store.follow`, so a pass over a long job does not scan every step."""
        if self._index is None:
            self._index = StepIndex(self)
        return self._index

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)


class StepIndex:
    """Built from a run once; `moved` keeps it current as its steps change status."""

    def __init__(self, run: RunState) -> None:
        spec = run.spec
        self.steps = {s.name: s for s in run.steps}
        self.live = [s for s in run.steps if s.name in spec.by_name]
        self.dependents: dict[str, list[str]] = {}
        for wanted in spec.steps:
            for need in wanted.needs:
                self.dependents.setdefault(need, []).append(wanted.name)
        done = {s.name for s in self.live if s.status is StepStatus.SUCCEEDED}
        self.unmet = {s.name: sum(1 for n in spec.needs[s.name] if n not in done) for s in self.live}
        self.by_status: dict[StepStatus, set[str]] = {}
        self.free: dict[StepStatus, set[str]] = {}  # by status, those whose needs all succeeded
        for s in self.live:
            self.by_status.setdefault(s.status, set()).add(s.name)
            if self.unmet[s.name] == 0:
                self.free.setdefault(s.status, set()).add(s.name)

    def named(self, status: StepStatus) -> list[StepState]:
        """The live steps in that status, in the template's order."""
        names = self.by_status.get(status)
        if not names:
            return []
        found = [self.steps[n] for n in names]
        found.sort(key=lambda s: s.position)
        return found

    def unblocked(self, status: StepStatus) -> list[StepState]:
        """The live steps in that status whose needs have all succeeded, in order."""
        found = [self.steps[n] for n in self.free.get(status, ())]
        found.sort(key=lambda s: s.position)
        return found

    def moved(self, name: str, old: StepStatus, new: StepStatus) -> None:
        if name not in self.unmet or old is new:
            return
        self.by_status.get(old, set()).discard(name)
        self.by_status.setdefault(new, set()).add(name)
        if self.unmet[name] == 0:
            self.free.get(old, set()).discard(name)
            self.free.setdefault(new, set()).add(name)
        change = -1 if new is StepStatus.SUCCEEDED else 1 if old is StepStatus.SUCCEEDED else 0
        for dependent in self.dependents.get(name, ()) if change else ():
            if dependent not in self.unmet:
                continue
            status = self.steps[dependent].status
            if self.unmet[dependent] == 0:
                self.free.get(status, set()).discard(dependent)
            self.unmet[dependent] += change
            if self.unmet[dependent] == 0:
                self.free.setdefault(status, set()).add(dependent)


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


def from_row(cls: type[T], row: Any) -> T:
    return cls(**{f.name: row._mapping[f.name] for f in fields(cls)})  # type: ignore[arg-type]


# --- what one transition writes ------------------------------------------------------


@dataclass(frozen=True)
class Move:
    """One step's new state. It applies only while the step still has `old`'s status and
    attempts (and, with `owner`, that lease; with `expired`, the lease it had when read)."""

    old: StepState
    new: StepState
    actor: str = "engine"
    owner: str | None = None
    expired: bool = False  # a recovery: guarded on the expired lease as it was read
    logged: bool = True  # False: an in-place change (a reminder), no status event


@dataclass(frozen=True)
class Note:
    """An audit event that changes no status: a vote, an ignored reaction, a condition."""

    step: str | None
    actor: str
    reason: str
    message: str


@dataclass(frozen=True)
class Outgoing:
    """A message for people, through the outbox."""

    channel: str
    text: str
    kind: str = "note"  # note, output, agent, approval, ping
    step: str | None = None
    thread_of_card: bool = True
    request: str | None = None  # an approval request's id: its message binds to it


@dataclass(frozen=True)
class Opening:
    """A new approval request."""

    id: str
    step_id: int
    step: str
    kind: WaitKind
    channel: str
    text: str
    approvers: tuple[str, ...]
    quorum: int
    digest: str


@dataclass(frozen=True)
class Closing:
    request: str
    why: Closed


@dataclass(frozen=True)
class Widening:
    """An escalation: the request asks these approvers now (its earlier ones and the escalation's)."""

    request: str
    approvers: tuple[str, ...]


@dataclass(frozen=True)
class Ballot:
    """A person's counted ✅ or ❌ on one request: at most one per person and request."""

    request: str
    step_id: int
    user: str
    approve: bool
    digest: str
    note: str = ""


@dataclass(frozen=True)
class Remark:
    """A context entry: a person's reply, a decision an agent reads back."""

    step: str | None
    role: str
    text: str
    author: str | None = None
    data: dict[str, Any] | None = None


@dataclass(frozen=True)
class JobChange:
    """The job's own row: its status (logged), whether it is active, its conditions."""

    status: JobStatus | None = None
    active: bool | None = None
    conditions: tuple[Condition, ...] | None = None
    actor: str = "engine"
    reason: str | None = None
    message: str = ""


@dataclass(frozen=True)
class Effects:
    """Everything one transition writes; `Store.commit` writes all of it or none of it."""

    moves: tuple[Move, ...] = ()
    notes: tuple[Note, ...] = ()
    messages: tuple[Outgoing, ...] = ()
    openings: tuple[Opening, ...] = ()
    closings: tuple[Closing, ...] = ()
    ballots: tuple[Ballot, ...] = ()
    remarks: tuple[Remark, ...] = ()
    job: JobChange | None = None
    progress: bool = False  # the job made progress (its Stalled clock restarts)
    widenings: tuple[Widening, ...] = ()

    def __add__(self, other: Effects) -> Effects:
        job = other.job or self.job
        if self.job and other.job:
            job = JobChange(
                other.job.status or self.job.status,
                other.job.active if other.job.active is not None else self.job.active,
                other.job.conditions if other.job.conditions is not None else self.job.conditions,
                other.job.actor,
                other.job.reason or self.job.reason,
                other.job.message or self.job.message,
            )
        return Effects(
            self.moves + other.moves,
            self.notes + other.notes,
            self.messages + other.messages,
            self.openings + other.openings,
            self.closings + other.closings,
            self.ballots + other.ballots,
            self.remarks + other.remarks,
            job,
            self.progress or other.progress,
            self.widenings + other.widenings,
        )

    def __bool__(self) -> bool:
        return bool(
            self.moves or self.notes or self.messages or self.openings or self.closings
            or self.ballots or self.remarks or self.job or self.progress or self.widenings
        )


NOTHING = Effects()

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
        waits=Waits.from_json(row.waits_for) if row.waits_for else None,
        process=ProcessRecord.from_json(row.process) if row.process else None,
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
        conditions=conditions_from_json(row.conditions),
        steps=sorted((step_state(s) for s in steps), key=lambda s: s.position),
    )


def conditions_from_json(raw: list[dict[str, Any]] | None) -> tuple[Condition, ...]:
    return tuple(
        Condition(
            type=c["type"],
            status=bool(c["status"]),
            reason=c.get("reason", ""),
            message=c.get("message", ""),
            last_transition_time=datetime.fromisoformat(c["lastTransitionTime"]),
            observed_generation=c.get("observedGeneration"),
        )
        for c in raw or []
    )


def conditions_to_json(conditions: Iterable[Condition]) -> list[dict[str, Any]]:
    return [
        {
            "type": c.type,
            "status": c.status,
            "reason": c.reason,
            "message": c.message,
            "lastTransitionTime": c.last_transition_time.isoformat(),
            "observedGeneration": c.observed_generation,
        }
        for c in conditions
    ]
