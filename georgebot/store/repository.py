"""`Store`: every read and write of actual state, each write in one short transaction.

The engine decides; the store persists. Every status change goes through a method that
also appends to the event log in the same transaction, so the audit trail can't miss one.
Claims are compare-and-set updates, safe across processes on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel import Session, col, select

from georgebot.model.rendered import RenderedJob
from georgebot.model.status import JobStatus, StepStatus
from georgebot.model.views import EventView, RevisionView, Usage
from georgebot.store.database import Database
from georgebot.store.tables import (
    ContextRow,
    EventRow,
    JobRunRow,
    OutboxRow,
    RevisionRow,
    SlackMessageRow,
    StepRunRow,
    UsageRow,
    VoteRow,
)


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


def _as(cls: type[T], row: Any) -> T:
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


def _step(row: Any) -> StepState:
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


def _run(row: Any, steps: Iterable[Any], spec: RenderedJob) -> RunState:
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
        steps=sorted((_step(s) for s in steps), key=lambda s: s.position),
    )


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._specs: dict[str, RenderedJob] = {}

    def _spec(self, row: Any) -> RenderedJob:
        """Specs are immutable per digest; parsing each once keeps passes cheap."""
        spec = self._specs.get(row.digest)
        if spec is None:
            if len(self._specs) > 10_000:
                self._specs.clear()
            spec = self._specs[row.digest] = RenderedJob.model_validate(row.spec)
        return spec

    def session(self) -> Session:
        return Session(self.db.engine, expire_on_commit=False)

    # --- revisions ------------------------------------------------------------------

    def record_revision(
        self,
        sha: str,
        message: str,
        errors: list[dict[str, Any]],
        agents: dict[str, Any],
        at: datetime,
    ) -> None:
        with self.session() as s:
            s.add(RevisionRow(sha=sha, message=message, synced_at=at, errors=errors, agents=agents))
            s.commit()

    def touch_revision(self, at: datetime) -> None:
        """A sync that found nothing new still counts as a sync (status shows its age)."""
        with self.session() as s:
            row = s.exec(select(RevisionRow).order_by(col(RevisionRow.id).desc()).limit(1)).first()
            if row is not None:
                row.synced_at = at
                s.add(row)
                s.commit()

    def current_revision(self) -> tuple[RevisionView, list[dict[str, Any]], dict[str, Any]] | None:
        with self.session() as s:
            row = s.exec(select(RevisionRow).order_by(col(RevisionRow.id).desc()).limit(1)).first()
            if row is None:
                return None
            return (
                RevisionView(sha=row.sha, message=row.message, synced_at=row.synced_at),
                list(row.errors or []),
                dict(row.agents or {}),
            )

    # --- job runs -------------------------------------------------------------------

    def load_active(self) -> list[RunState]:
        return self._load(_jobs.c.active.is_(True))

    def load_runs(self, names: Sequence[str] | None = None) -> list[RunState]:
        """The latest run of each job (or of the named ones), active or finished."""
        latest = sa.select(sa.func.max(_jobs.c.id)).group_by(_jobs.c.name)
        if names is not None:
            latest = latest.where(_jobs.c.name.in_(names))
        return sorted(self._load(_jobs.c.id.in_(latest)), key=lambda r: r.name)

    def load_runs_by_id(self, run_ids: Sequence[int]) -> list[RunState]:
        return self._load(_jobs.c.id.in_(run_ids))

    def load_run(self, run_id: int) -> RunState:
        [run] = self._load(_jobs.c.id == run_id)
        return run

    def _load(self, where: sa.ColumnElement[bool]) -> list[RunState]:
        """Runs and their steps in two queries (Core: passes read often, and cheaply)."""
        with self.db.engine.connect() as conn:
            runs = conn.execute(sa.select(_jobs).where(where)).all()
            if not runs:
                return []
            by_job: dict[int, list[Any]] = {}
            steps = conn.execute(sa.select(_steps).where(_steps.c.job_id.in_([r.id for r in runs])))
            for step in steps:
                by_job.setdefault(step.job_id, []).append(step)
        return [_run(r, by_job.get(r.id, []), self._spec(r)) for r in runs]

    def latest_runs(self) -> dict[str, RunSummary]:
        """The latest run of every job ever seen, without its steps: what a new revision is
        compared with (cheap for thousands of finished jobs)."""
        latest = sa.select(sa.func.max(_jobs.c.id)).group_by(_jobs.c.name)
        query = sa.select(_jobs.c.id, _jobs.c.name, _jobs.c.status, _jobs.c.active, _jobs.c.digest)
        with self.db.engine.connect() as conn:
            rows = conn.execute(query.where(_jobs.c.id.in_(latest))).all()
        return {r.name: RunSummary(r.id, r.name, JobStatus(r.status), r.active, r.digest) for r in rows}

    def create_run(self, job: RenderedJob, *, file: str, revision: str, actor: str, at: datetime) -> RunState:
        with self.db.engine.begin() as conn:
            inserted = conn.execute(
                sa.insert(_jobs).values(
                    name=job.name,
                    template=job.template,
                    status=JobStatus.PENDING.value,
                    active=True,
                    generation=1,
                    digest=job.digest,
                    spec=job.model_dump(mode="json"),
                    file=file,
                    revision=revision,
                    channel=job.channel,
                    created_at=at,
                    updated_at=at,
                    progress_at=at,
                    conditions=[],
                )
            )
            run_id = int(inserted.inserted_primary_key[0])  # type: ignore[index]
            conn.execute(
                sa.insert(_steps),
                [
                    {
                        "job_id": run_id,
                        "name": step.name,
                        "position": position,
                        "status": "Pending",
                        "attempts": 0,
                        "failures": 0,
                        "message": "",
                        "agent_digest": "",
                        "digest": job.step_digest(step.name),
                    }
                    for position, step in enumerate(job.steps)
                ],
            )
            conn.execute(
                _INSERT_EVENT,
                {
                    "at": at,
                    "job_id": run_id,
                    "job": job.name,
                    "step": None,
                    "actor": actor,
                    "from_status": None,
                    "to_status": "Pending",
                    "reason": "Created",
                    "message": f"job created from template {job.template}",
                },
            )
        return self.load_run(int(run_id))

    def apply_generation(
        self,
        run: RunState,
        job: RenderedJob,
        *,
        file: str,
        revision: str,
        actor: str,
        at: datetime,
    ) -> list[str]:
        """A changed spec: unfinished steps follow it; succeeded steps stay. Returns the
        steps that were reset (blocked, failed or waiting on an older definition)."""
        reset: list[str] = []
        with self.session() as s:
            row = s.get(JobRunRow, run.id)
            assert row is not None
            row.generation += 1
            row.digest, row.spec, row.file = job.digest, job.model_dump(mode="json"), file
            row.revision, row.channel, row.template = revision, job.channel, job.template
            row.updated_at = row.progress_at = at
            row.conditions = [c for c in row.conditions or [] if c.get("type") != "InvalidSpec"]
            s.add(row)
            existing = {
                st.name: st for st in s.exec(select(StepRunRow).where(StepRunRow.job_id == run.id)).all()
            }
            for position, step in enumerate(job.steps):
                digest = job.step_digest(step.name)
                st = existing.pop(step.name, None)
                if st is None:
                    s.add(StepRunRow(job_id=run.id, name=step.name, position=position, digest=digest))
                    continue
                st.position = position
                if st.status in (StepStatus.SUCCEEDED, StepStatus.RUNNING):
                    s.add(st)  # a running attempt finishes on the definition it started with
                    continue
                changed = st.digest != digest
                st.digest = digest
                # Blocked waits for exactly this: a commit. A failed or waiting step starts over
                # when its own definition changed (its approvals bound to the old one are void).
                if st.status in (StepStatus.BLOCKED, StepStatus.CANCELLED) or (
                    changed and st.status in (StepStatus.FAILED, StepStatus.WAITING)
                ):
                    s.execute(
                        _INSERT_EVENT,
                        _event(
                            at,
                            run,
                            st.name,
                            actor,
                            st.status,
                            "Pending",
                            "SpecChanged",
                            f"generation {row.generation} applies to this step",
                        ),
                    )
                    _reset(st)
                    reset.append(st.name)
                s.add(st)
            for gone in existing.values():  # kept for the record; views show the spec's steps only
                if gone.status != StepStatus.SUCCEEDED:
                    gone.status, gone.reason = StepStatus.CANCELLED.value, "RemovedFromSpec"
                    gone.message = "the step is no longer in the template"
                gone.position = 10_000 + gone.position
                s.add(gone)
            s.execute(
                _INSERT_EVENT,
                _event(
                    at,
                    run,
                    None,
                    actor,
                    None,
                    None,
                    "SpecChanged",
                    f"generation {row.generation} from {revision[:12]}",
                ),
            )
            s.commit()
        return reset

    def reset_steps(
        self,
        run: RunState,
        names: Iterable[str],
        *,
        actor: str,
        reason: str,
        message: str,
        at: datetime,
    ) -> None:
        with self.session() as s:
            for st in s.exec(
                select(StepRunRow).where(StepRunRow.job_id == run.id, col(StepRunRow.name).in_(list(names)))
            ).all():
                s.execute(
                    _INSERT_EVENT, _event(at, run, st.name, actor, st.status, "Pending", reason, message)
                )
                _reset(st)
                s.add(st)
            _touch(s, run.id, at)
            s.commit()

    def set_job_status(
        self,
        run: RunState,
        status: JobStatus,
        *,
        actor: str,
        message: str,
        at: datetime,
        active: bool | None = None,
    ) -> None:
        values: dict[str, Any] = {"status": status.value, "updated_at": at}
        if active is not None:
            values |= {"active": active, "finished_at": None if active else at}
        with self.db.engine.begin() as conn:
            current = conn.execute(sa.select(_jobs.c.status).where(_jobs.c.id == run.id)).scalar_one()
            if current != status.value:
                conn.execute(
                    _INSERT_EVENT, _event(at, run, None, actor, current, status.value, None, message)
                )
            conn.execute(_TOUCH, {"p_id": run.id, **values})
        run.status = status
        if active is not None:
            run.active = active

    def set_conditions(self, run: RunState, conditions: list[dict[str, Any]], at: datetime) -> None:
        with self.session() as s:
            row = s.get(JobRunRow, run.id)
            assert row is not None
            row.conditions = conditions
            row.updated_at = at
            s.add(row)
            s.commit()
        run.conditions = conditions

    def cancel_run(self, run: RunState, *, actor: str, message: str, at: datetime) -> None:
        with self.session() as s:
            for st in s.exec(select(StepRunRow).where(StepRunRow.job_id == run.id)).all():
                if st.status in (StepStatus.SUCCEEDED, StepStatus.CANCELLED):
                    continue
                s.execute(
                    _INSERT_EVENT,
                    _event(at, run, st.name, actor, st.status, "Cancelled", "RemovedFromGit", message),
                )
                st.status, st.reason, st.message = StepStatus.CANCELLED.value, "RemovedFromGit", message
                st.lease_owner = st.lease_expires_at = st.next_attempt_at = None
                s.add(st)
            row = s.get(JobRunRow, run.id)
            assert row is not None
            s.execute(
                _INSERT_EVENT,
                _event(at, run, None, actor, row.status, "Cancelled", "RemovedFromGit", message),
            )
            row.status, row.active, row.finished_at, row.updated_at = "Cancelled", False, at, at
            s.add(row)
            s.commit()

    # --- steps ----------------------------------------------------------------------

    def claim(
        self,
        step: StepState,
        *,
        owner: str,
        until: datetime,
        at: datetime,
        deadline: datetime | None,
        run: RunState,
        recovered: bool = False,
    ) -> bool:
        """Compare-and-set: Pending/Retrying (or Running with an expired lease) → Running."""
        params = {
            "p_id": step.id,
            "p_status": step.status.value,
            "p_attempts": step.attempts,
            "status": StepStatus.RUNNING.value,
            "lease_owner": owner,
            "lease_expires_at": until,
            "attempts": step.attempts + 1,
            "started_at": at,
            "deadline_at": deadline,
            "next_attempt_at": None,
            "reason": None,
            "message": "",
        }
        if step.status == StepStatus.RUNNING:
            params["p_now"] = at
        stmt = _CLAIM_EXPIRED if step.status == StepStatus.RUNNING else _CLAIM
        with self.db.engine.begin() as conn:
            if conn.execute(stmt, params).rowcount != 1:
                conn.rollback()
                return False
            conn.execute(
                _INSERT_EVENT,
                _event(
                    at,
                    run,
                    step.name,
                    "engine",
                    step.status.value,
                    "Running",
                    "Recovered" if recovered else None,
                    f"attempt {step.attempts + 1}"
                    + (" (the previous attempt's agent died; running it again)" if recovered else ""),
                ),
            )
        step.status, step.attempts, step.lease_owner = StepStatus.RUNNING, step.attempts + 1, owner
        step.lease_expires_at, step.started_at, step.deadline_at = until, at, deadline
        step.next_attempt_at, step.reason, step.message = None, None, ""
        return True

    def renew_leases(self, owner: str, step_ids: Sequence[int], until: datetime) -> None:
        if not step_ids:
            return
        with self.session() as s:
            s.execute(
                sa.update(StepRunRow)
                .where(
                    col(StepRunRow.id).in_(step_ids),
                    col(StepRunRow.lease_owner) == owner,
                    col(StepRunRow.status) == StepStatus.RUNNING.value,
                )
                .values(lease_expires_at=until)
            )
            s.commit()

    def release_leases(self, owner: str, at: datetime) -> int:
        """On a clean shutdown: this process's running steps are free to run again at once,
        and the log says why they will run again."""
        with self.session() as s:
            rows = s.exec(
                select(StepRunRow, JobRunRow)
                .join(JobRunRow, col(JobRunRow.id) == col(StepRunRow.job_id))
                .where(
                    col(StepRunRow.lease_owner) == owner,
                    col(StepRunRow.status) == StepStatus.RUNNING.value,
                )
            ).all()
            for step, job in rows:
                step.lease_expires_at = at
                s.add(step)
                s.add(
                    EventRow(
                        at=at,
                        job_id=job.id,
                        job=job.name,
                        step=step.name,
                        actor="engine",
                        reason="Interrupted",
                        message=f"George stopped during attempt {step.attempts}; "
                        "the next start runs it again",
                    )
                )
            s.commit()
            return len(rows)

    def transition(
        self,
        run: RunState,
        step: StepState,
        update: StepUpdate,
        at: datetime,
        *,
        owner: str | None = None,
        progress: bool = True,
    ) -> bool:
        """Moves a step and writes the event. With `owner`, only while that lease holds."""
        values: dict[str, Any] = {
            "status": update.to.value,
            "reason": update.reason,
            "message": update.message[:2000],
            **update.fields,
        }
        if update.to is not StepStatus.RUNNING:
            values.setdefault("lease_owner", None)
            values.setdefault("lease_expires_at", None)
        if update.to in (StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.CANCELLED):
            values.setdefault("finished_at", at)
        with self.db.engine.begin() as conn:
            stmt, params = _UPDATE_STEP, {**values, "p_id": step.id}
            if owner is not None:
                stmt = _UPDATE_LEASED_STEP
                params |= {"p_owner": owner, "p_running": StepStatus.RUNNING.value}
            if conn.execute(stmt, params).rowcount != 1:
                conn.rollback()
                return False
            conn.execute(
                _INSERT_EVENT,
                _event(
                    at,
                    run,
                    step.name,
                    update.actor,
                    step.status.value,
                    update.to.value,
                    update.reason,
                    update.message,
                ),
            )
            if progress:
                conn.execute(_TOUCH, {"p_id": run.id, "progress_at": at, "updated_at": at})
        step.status, step.reason, step.message = update.to, update.reason, update.message
        for key, value in values.items():
            if hasattr(step, key) and key != "status":
                setattr(step, key, value)
        return True

    def log(
        self,
        run: RunState | None,
        *,
        job: str,
        step: str | None,
        actor: str,
        reason: str,
        message: str,
        at: datetime,
    ) -> None:
        """An event that changes no status: an ignored reaction, a refused command."""
        with self.session() as s:
            s.add(
                EventRow(
                    at=at,
                    job_id=run.id if run else None,
                    job=job,
                    step=step,
                    actor=actor,
                    reason=reason,
                    message=message[:2000],
                )
            )
            s.commit()

    # --- context, votes, outbox -----------------------------------------------------

    def add_context(
        self,
        job_id: int,
        step: str | None,
        role: str,
        text: str,
        at: datetime,
        *,
        author: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(
                _INSERT_CONTEXT,
                {
                    "job_id": job_id,
                    "step": step,
                    "role": role,
                    "text": text,
                    "at": at,
                    "author": author,
                    "data": data,
                },
            )

    def context(self, job_id: int, step: str | None = None) -> list[ContextItem]:
        """The job's context, oldest first; with `step`, that step's and the job thread's."""
        query = sa.select(_context).where(_context.c.job_id == job_id)
        if step is not None:
            query = query.where(sa.or_(_context.c.step == step, _context.c.step.is_(None)))
        with self.db.engine.connect() as conn:
            return [_as(ContextItem, r) for r in conn.execute(query.order_by(_context.c.id))]

    def add_vote(
        self, run: RunState, step: StepState, *, user: str, approve: bool, at: datetime, note: str = ""
    ) -> None:
        with self.session() as s:
            s.add(VoteRow(step_id=step.id, user=user, approve=approve, digest=step.digest, at=at, note=note))
            s.execute(
                _INSERT_EVENT,
                _event(
                    at,
                    run,
                    step.name,
                    f"user:{user}",
                    None,
                    None,
                    "Approved" if approve else "Rejected",
                    f"{'approved' if approve else 'rejected'} by {user}" + (f": {note}" if note else ""),
                ),
            )
            s.commit()

    def approvers_so_far(self, step: StepState) -> list[str]:
        with self.session() as s:
            rows = s.exec(
                select(VoteRow.user)
                .where(
                    VoteRow.step_id == step.id,
                    VoteRow.digest == step.digest,
                    col(VoteRow.approve),
                )
                .order_by(col(VoteRow.id))
            ).all()
            return list(dict.fromkeys(rows))

    def enqueue(
        self,
        job_id: int | None,
        *,
        channel: str,
        text: str,
        kind: str = "note",
        step: str | None = None,
        thread_of_card: bool = True,
        meta: dict[str, Any] | None = None,
        at: datetime,
    ) -> int:
        with self.db.engine.begin() as conn:
            inserted = conn.execute(
                _INSERT_OUTBOX,
                {
                    "job_id": job_id,
                    "step": step,
                    "kind": kind,
                    "channel": channel,
                    "text": text,
                    "thread_of_card": thread_of_card,
                    "meta": meta,
                    "created_at": at,
                    "delivered_at": None,
                },
            )
            return int(inserted.inserted_primary_key[0])  # type: ignore[index]

    def pending_outbox(self, limit: int = 100) -> list[OutboxItem]:
        query = sa.select(_outbox).where(_outbox.c.delivered_at.is_(None)).order_by(_outbox.c.id).limit(limit)
        with self.db.engine.connect() as conn:
            return [_as(OutboxItem, r) for r in conn.execute(query)]

    def mark_delivered(self, outbox_id: int, at: datetime) -> None:
        with self.session() as s:
            row = s.get(OutboxRow, outbox_id)
            if row is not None:
                row.delivered_at = at
                s.add(row)
                s.commit()

    def slack_message(self, job_id: int, kind: str, step: str | None = None) -> SlackMessage | None:
        """The latest message of that kind George posted for the run (and step)."""
        query = sa.select(_slack).where(_slack.c.job_id == job_id, _slack.c.kind == kind)
        if step is not None:
            query = query.where(_slack.c.step == step)
        return self._slack_message(query.order_by(_slack.c.id.desc()).limit(1))

    def record_slack_message(
        self,
        job_id: int,
        *,
        kind: str,
        channel_id: str,
        ts: str,
        step: str | None = None,
        digest: str = "",
        at: datetime,
    ) -> None:
        with self.session() as s:
            s.add(
                SlackMessageRow(
                    job_id=job_id,
                    kind=kind,
                    channel_id=channel_id,
                    ts=ts,
                    step=step,
                    digest=digest,
                    created_at=at,
                )
            )
            s.commit()

    def find_slack_message(self, channel_id: str, ts: str) -> SlackMessage | None:
        return self._slack_message(
            sa.select(_slack).where(_slack.c.ts == ts, _slack.c.channel_id == channel_id).limit(1)
        )

    def _slack_message(self, query: sa.Select[Any]) -> SlackMessage | None:
        with self.db.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _as(SlackMessage, row)

    # --- usage and audit ------------------------------------------------------------

    def add_usage(self, job_id: int, step: str, model: str, usage: Usage, at: datetime) -> None:
        with self.session() as s:
            s.add(
                UsageRow(
                    job_id=job_id,
                    step=step,
                    model=model,
                    at=at,
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    cache_read_input_tokens=usage.cache_read_input_tokens,
                    cache_creation_input_tokens=usage.cache_creation_input_tokens,
                    cost_usd=usage.cost_usd,
                )
            )
            s.commit()

    def usage(self, job_ids: Sequence[int]) -> dict[tuple[int, str], Usage]:
        if not job_ids:
            return {}
        with self.session() as s:
            rows = s.execute(
                sa.select(
                    col(UsageRow.job_id),
                    col(UsageRow.step),
                    sa.func.sum(UsageRow.input_tokens),
                    sa.func.sum(UsageRow.output_tokens),
                    sa.func.sum(UsageRow.cache_read_input_tokens),
                    sa.func.sum(UsageRow.cache_creation_input_tokens),
                    sa.func.sum(UsageRow.cost_usd),
                )
                .where(col(UsageRow.job_id).in_(job_ids))
                .group_by(col(UsageRow.job_id), col(UsageRow.step))
            ).all()
            return {
                (r[0], r[1]): Usage(int(r[2]), int(r[3]), int(r[4]), int(r[5]), float(r[6])) for r in rows
            }

    def events(self, job: str) -> list[EventView]:
        with self.session() as s:
            rows = s.exec(select(EventRow).where(EventRow.job == job).order_by(col(EventRow.id))).all()
            return [
                EventView(
                    at=r.at,
                    job=r.job,
                    step=r.step,
                    actor=r.actor,
                    from_status=r.from_status,
                    to_status=r.to_status,
                    reason=r.reason,
                    message=r.message,
                )
                for r in rows
            ]

    def running_counts(self) -> dict[int, int]:
        """job id -> steps Running, for agents' running counts."""
        with self.session() as s:
            rows = s.execute(
                sa.select(col(StepRunRow.job_id), sa.func.count())
                .where(col(StepRunRow.status) == StepStatus.RUNNING.value)
                .group_by(col(StepRunRow.job_id))
            ).all()
            return {int(j): int(n) for j, n in rows}


_steps = StepRunRow.__table__  # type: ignore[attr-defined]
# Statements built once: hot paths pay for parameters, not for SQL. An UPDATE without
# `.values()` sets the columns named in the parameters; `p_` parameters are the guards.
_CLAIM = sa.update(_steps).where(
    _steps.c.id == sa.bindparam("p_id"),
    _steps.c.status == sa.bindparam("p_status"),
    _steps.c.attempts == sa.bindparam("p_attempts"),
)
_CLAIM_EXPIRED = _CLAIM.where(_steps.c.lease_expires_at < sa.bindparam("p_now"))
_UPDATE_STEP = sa.update(_steps).where(_steps.c.id == sa.bindparam("p_id"))
_UPDATE_LEASED_STEP = _UPDATE_STEP.where(
    _steps.c.lease_owner == sa.bindparam("p_owner"), _steps.c.status == sa.bindparam("p_running")
)
_INSERT_EVENT = sa.insert(EventRow.__table__)  # type: ignore[attr-defined]
_context = ContextRow.__table__  # type: ignore[attr-defined]
_outbox = OutboxRow.__table__  # type: ignore[attr-defined]
_slack = SlackMessageRow.__table__  # type: ignore[attr-defined]
_INSERT_CONTEXT = sa.insert(_context)
_INSERT_OUTBOX = sa.insert(_outbox)
_jobs = JobRunRow.__table__  # type: ignore[attr-defined]
_TOUCH = sa.update(_jobs).where(_jobs.c.id == sa.bindparam("p_id"))


def _event(
    at: datetime,
    run: RunState,
    step: str | None,
    actor: str,
    from_status: str | None,
    to_status: str | None,
    reason: str | None,
    message: str,
) -> dict[str, Any]:
    return {
        "at": at,
        "job_id": run.id,
        "job": run.name,
        "step": step,
        "actor": actor,
        "from_status": from_status,
        "to_status": to_status,
        "reason": reason,
        "message": message[:2000],
    }


def _reset(st: StepRunRow) -> None:
    st.status, st.reason, st.message = StepStatus.PENDING.value, None, ""
    st.failures = 0
    st.next_attempt_at = st.deadline_at = st.finished_at = None
    st.lease_owner = st.lease_expires_at = None
    st.waits_for = None


def _touch(s: Session, job_id: int, at: datetime) -> None:
    s.execute(sa.update(JobRunRow).where(col(JobRunRow.id) == job_id).values(progress_at=at, updated_at=at))
