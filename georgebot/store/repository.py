"""`Store`: job and step runs (on top of `Records`), each write in one short transaction.

The engine decides (`engine/lifecycle.py`); the store persists. `commit` writes a transition
and all its effects (the steps' new states, their events, the messages they send, requests
opened and closed, votes, context, the job's status, conditions and progress time) in one
transaction, or none of it. Each step moves by compare-and-set on the state it was read in,
safe across processes on SQLite and PostgreSQL. Database errors leave as `errors.StoreBusy`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from georgebot import errors
from georgebot.model.attempts import ProcessRecord
from georgebot.model.rendered import RenderedJob
from georgebot.model.status import JobStatus, StepStatus
from georgebot.store.database import Database
from georgebot.store.records import Records
from georgebot.store.shapes import (
    Effects,
    Move,
    RunState,
    RunSummary,
    StepState,
    conditions_to_json,
    run_state,
)
from georgebot.store.statements import (
    INSERT_CONTEXT,
    INSERT_EVENT,
    INSERT_OUTBOX,
    JOBS,
    MOVE,
    MOVE_EXPIRED,
    MOVE_LEASED,
    MOVE_UNLEASED,
    OUTBOX,
    REQUESTS,
    SLACK_MESSAGES,
    STEPS,
    TOUCH,
    VOTES,
    event_values,
)
from georgebot.store.tables import (
    EventRow,
    JobRunRow,
    StepRunRow,
)


class Claim(Enum):
    CLAIMED = "claimed"
    TAKEN = "taken"  # another George claimed it, or is claiming it now
    FULL = "full"  # the agent runs its maxConcurrentSteps already, counted across Georges


class Store(Records):
    """Every read and write of actual state; `Records` holds the parts beside the runs."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._specs: dict[str, RenderedJob] = {}

    def _parse_specs(self, conn: sa.Connection, run_ids: list[int]) -> None:
        """Specs are immutable per digest: each is read and parsed once, so a pass over
        thousands of runs decodes no spec it has seen. Read by run id: another George may
        have finished or changed a run since it was read."""
        for start in range(0, len(run_ids), 500):
            query = sa.select(JOBS.c.digest, JOBS.c.spec).where(JOBS.c.id.in_(run_ids[start:start + 500]))
            for digest, spec in conn.execute(query):
                if digest not in self._specs:
                    self._specs[digest] = RenderedJob.model_validate(spec)

    # --- job runs -------------------------------------------------------------------

    def load_active(self) -> list[RunState]:
        return self._load(JOBS.c.active.is_(True))

    def load_runs(self, names: Sequence[str] | None = None) -> list[RunState]:
        """The latest run of each job (or of the named ones), active or finished."""
        latest = sa.select(sa.func.max(JOBS.c.id)).group_by(JOBS.c.name)
        if names is not None:
            latest = latest.where(JOBS.c.name.in_(names))
        return sorted(self._load(JOBS.c.id.in_(latest)), key=lambda r: r.name)

    def load_runs_by_id(self, run_ids: Sequence[int]) -> list[RunState]:
        return self._load(JOBS.c.id.in_(run_ids))

    def load_run(self, run_id: int) -> RunState:
        [run] = self._load(JOBS.c.id == run_id)
        return run

    def _load(self, where: sa.ColumnElement[bool]) -> list[RunState]:
        """Runs and their steps in a few queries (Core: passes read often, and cheaply). A run
        whose generation another George changed between the queries is read again."""
        for _ in range(5):
            loaded = self._load_once(where)
            if loaded is not None:
                return loaded
        raise errors.StoreBusy("job runs kept changing while they were read")

    def _load_once(self, where: sa.ColumnElement[bool]) -> list[RunState] | None:
        with self.db.engine.connect() as conn:
            runs = conn.execute(sa.select(*_RUN_COLUMNS).where(where)).all()
            if not runs:
                return []
            if len(self._specs) > 20_000:
                self._specs.clear()  # bounded: a cache, not a copy of history
            missing = [r.id for r in runs if r.digest not in self._specs]
            if missing:
                self._parse_specs(conn, missing)
            if any(r.digest not in self._specs for r in runs):
                return None
            by_job: dict[int, list[Any]] = {}
            steps = conn.execute(sa.select(STEPS).where(STEPS.c.job_id.in_([r.id for r in runs])))
            for step in steps:
                by_job.setdefault(step.job_id, []).append(step)
        return [run_state(r, by_job.get(r.id, []), self._specs[r.digest]) for r in runs]

    def latest_runs(self) -> dict[str, RunSummary]:
        """The latest run of every job ever seen, without its steps: what a new revision is
        compared with (cheap for thousands of finished jobs)."""
        latest = sa.select(sa.func.max(JOBS.c.id)).group_by(JOBS.c.name)
        query = sa.select(JOBS.c.id, JOBS.c.name, JOBS.c.status, JOBS.c.active, JOBS.c.digest)
        with self.db.engine.connect() as conn:
            rows = conn.execute(query.where(JOBS.c.id.in_(latest))).all()
        return {r.name: RunSummary(r.id, r.name, JobStatus(r.status), r.active, r.digest) for r in rows}

    def create_run(
        self, job: RenderedJob, *, file: str, revision: str, actor: str, at: datetime, after: int = 0
    ) -> RunState | None:
        """The job's new run, unless another George made one since the caller looked: None
        when a run of this name newer than `after` (the latest run the caller knew) exists,
        or when another active run got in first (the database holds one per job name)."""
        try:
            return self._create_run(job, file=file, revision=revision, actor=actor, at=at, after=after)
        except sa.exc.IntegrityError:
            return None

    def _create_run(
        self, job: RenderedJob, *, file: str, revision: str, actor: str, at: datetime, after: int
    ) -> RunState | None:
        with self.db.engine.begin() as conn:
            newer = conn.execute(
                sa.select(JOBS.c.id).where(JOBS.c.name == job.name, JOBS.c.id > after).limit(1)
            ).first()
            if newer is not None:
                return None
            inserted = conn.execute(
                sa.insert(JOBS).values(
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
                sa.insert(STEPS),
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
                        "agent": step.agent,
                    }
                    for position, step in enumerate(job.steps)
                ],
            )
            conn.execute(
                INSERT_EVENT,
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
            self._announce(conn, run_id)
        return self.load_run(int(run_id))

    def apply_generation(
        self,
        run: RunState,
        job: RenderedJob,
        effects: Effects,
        *,
        file: str,
        revision: str,
        at: datetime,
    ) -> bool:
        """A changed spec, in one transaction with its effects (`lifecycle.on_generation`):
        the job's row follows it, new steps are added, and steps keep the template's order."""
        with self.db.engine.begin() as conn:
            values: dict[str, Any] = {
                "generation": run.generation + 1,
                "digest": job.digest,
                "spec": job.model_dump(mode="json"),
                "file": file,
                "revision": revision,
                "channel": job.channel,
                "template": job.template,
                "updated_at": at,
            }
            conn.execute(sa.update(JOBS).where(JOBS.c.id == run.id).values(**values))
            known = {s.name for s in run.steps}
            positions = {step.name: n for n, step in enumerate(job.steps)}
            agents = {step.name: step.agent for step in job.steps}
            for state in run.steps:
                place = positions.get(state.name, 10_000 + state.position % 10_000)
                conn.execute(sa.update(STEPS).where(STEPS.c.id == state.id)
                             .values(position=place, agent=agents.get(state.name)))
            added = [
                {"job_id": run.id, "name": s.name, "position": positions[s.name], "status": "Pending",
                 "attempts": 0, "failures": 0, "message": "", "agent_digest": "",
                 "digest": job.step_digest(s.name), "agent": s.agent}
                for s in job.steps if s.name not in known
            ]
            if added:
                conn.execute(sa.insert(STEPS), added)
            if not self._write(conn, run, effects, at):
                conn.rollback()
                return False
        return True

    # --- transitions ----------------------------------------------------------------

    def claim(self, run: RunState, effects: Effects, at: datetime, *,
              cap: tuple[str, int] | None = None) -> Claim:
        """A step's claim (`lifecycle.claim`). On PostgreSQL the step's row is locked with
        SKIP LOCKED, so Georges claiming at once pass each other by instead of queueing. With
        `cap` (agent, maxConcurrentSteps) it stands only while the agent's running steps,
        counted across every George, stay within it; on PostgreSQL under a lock per agent."""
        [move] = effects.moves
        with self.db.engine.begin() as conn:
            if not self.db.is_sqlite:
                if conn.execute(_SKIP_LOCKED, {"p_id": move.old.id}).first() is None:
                    return Claim.TAKEN
                if cap is not None:
                    conn.execute(_AGENT_LOCK, {"agent": cap[0]})
            if not self._write(conn, run, effects, at, announce=False):  # a claim wakes no one
                conn.rollback()
                return Claim.TAKEN
            if cap is not None and conn.execute(_RUNNING_OF, {"agent": cap[0]}).scalar_one() > cap[1]:
                conn.rollback()
                return Claim.FULL
        return Claim.CLAIMED

    def commit(self, run: RunState, effects: Effects, at: datetime) -> bool:
        """Writes `effects` in one transaction. False, and nothing written, when a step moved
        since it was read (another process or an expired lease got there first) or a vote was
        already counted. The caller then brings its cached `run` along with `follow`."""
        if not effects:
            return True
        try:
            with self.db.engine.begin() as conn:
                if not self._write(conn, run, effects, at):
                    conn.rollback()
                    return False
        except sa.exc.IntegrityError:
            if effects.ballots:
                return False  # a concurrent vote by the same person on the same request
            raise
        return True

    def _write(self, conn: sa.Connection, run: RunState, effects: Effects, at: datetime, *,
               announce: bool = True) -> bool:
        if effects.notes:  # what happened (a vote) is logged before the moves it caused
            conn.execute(INSERT_EVENT, [
                event_values(at, run, n.step, n.actor, None, None, n.reason, n.message) for n in effects.notes
            ])
        for move in effects.moves:
            if not self._move(conn, run, move, at):
                return False
        events: list[dict[str, Any]] = []
        change = effects.job
        if change is not None and change.status is not None and change.status is not run.status:
            events.append(event_values(at, run, None, change.actor, run.status.value, change.status.value,
                                       change.reason, change.message))
        if events:
            conn.execute(INSERT_EVENT, events)
        if effects.openings:
            conn.execute(sa.insert(REQUESTS), [
                {"id": o.id, "job_id": run.id, "step_id": o.step_id, "step": o.step, "kind": o.kind,
                 "channel": o.channel, "text": o.text, "approvers": list(o.approvers), "quorum": o.quorum,
                 "digest": o.digest, "opened_at": at, "closed_at": None, "closed": None}
                for o in effects.openings
            ])
        for widening in effects.widenings:
            conn.execute(sa.update(REQUESTS)
                         .where(REQUESTS.c.id == widening.request, REQUESTS.c.closed.is_(None))
                         .values(approvers=list(widening.approvers)))
        for closing in effects.closings:
            conn.execute(sa.update(REQUESTS)
                         .where(REQUESTS.c.id == closing.request, REQUESTS.c.closed.is_(None))
                         .values(closed=closing.why.value, closed_at=at))
            # A request that closed before it was posted is never posted.
            conn.execute(sa.update(OUTBOX).where(OUTBOX.c.request_id == closing.request,
                                                 OUTBOX.c.delivered_at.is_(None)).values(delivered_at=at))
        if effects.ballots:
            conn.execute(sa.insert(VOTES), [
                {"step_id": b.step_id, "request_id": b.request, "user": b.user, "approve": b.approve,
                 "digest": b.digest, "at": at, "note": b.note}
                for b in effects.ballots
            ])
        if effects.remarks:
            conn.execute(INSERT_CONTEXT, [
                {"job_id": run.id, "step": r.step, "role": r.role, "text": r.text, "at": at,
                 "author": r.author, "data": r.data}
                for r in effects.remarks
            ])
        if again := [m.request for m in effects.messages if m.request is not None]:
            # A request queued to be posted has no message in Slack until it is (again: Slack
            # lost the one it had, with its card).
            conn.execute(sa.delete(SLACK_MESSAGES).where(SLACK_MESSAGES.c.request_id.in_(again)))
        if effects.messages:
            conn.execute(INSERT_OUTBOX, [
                {"job_id": run.id, "step": m.step, "kind": m.kind, "channel": m.channel, "text": m.text,
                 "thread_of_card": m.thread_of_card, "request_id": m.request, "created_at": at,
                 "delivered_at": None}
                for m in effects.messages
            ])
        values: dict[str, Any] = {}
        if effects.job is not None:
            change = effects.job
            if change.status is not None:
                values["status"] = change.status.value
            if change.active is not None:
                values |= {"active": change.active, "finished_at": None if change.active else at}
            if change.conditions is not None:
                values["conditions"] = conditions_to_json(change.conditions)
        if effects.progress:
            values["progress_at"] = at
        if values or effects.moves:
            conn.execute(TOUCH, {"p_id": run.id, "updated_at": at, **values})
            if announce:
                self._announce(conn, run.id)
        return True

    def _move(self, conn: sa.Connection, run: RunState, move: Move, at: datetime) -> bool:
        old, new = move.old, move.new
        finished = new.finished_at or (at if new.status in _FINISHED else None)
        values = {
            "v_status": new.status.value, "v_reason": new.reason, "v_message": new.message[:2000],
            "v_attempts": new.attempts, "v_failures": new.failures, "v_digest": new.digest,
            "v_agent_digest": new.agent_digest, "v_next_attempt_at": new.next_attempt_at,
            "v_started_at": new.started_at, "v_deadline_at": new.deadline_at, "v_finished_at": finished,
            "v_lease_owner": new.lease_owner, "v_lease_expires_at": new.lease_expires_at,
            "v_waits_for": None if new.waits is None else new.waits.to_json(),
            "p_id": old.id, "p_status": old.status.value, "p_attempts": old.attempts,
        }
        stmt = MOVE
        if move.owner is not None:
            stmt, values["p_owner"] = MOVE_LEASED, move.owner
        elif move.expired and old.lease_expires_at is None:
            stmt = MOVE_UNLEASED
        elif move.expired:
            stmt, values["p_lease"] = MOVE_EXPIRED, old.lease_expires_at
        if conn.execute(stmt, values).rowcount != 1:
            return False
        if move.logged:
            conn.execute(INSERT_EVENT, event_values(at, run, old.name, move.actor, old.status.value,
                                                    new.status.value, new.reason, new.message))
        return True

    @staticmethod
    def follow(run: RunState, effects: Effects, at: datetime) -> None:
        """Brings a cached run and its steps (found by id: `run` may be another copy than the
        one the effects were computed on) to the state `effects` committed."""
        steps = {s.id: s for s in run.steps}
        for move in effects.moves:
            target = steps.get(move.new.id)
            if target is None:
                continue
            if run._index is not None:
                run._index.moved(target.name, target.status, move.new.status)
            for name in _STATE_FIELDS:
                setattr(target, name, getattr(move.new, name))
            if move.new.status in _FINISHED and target.finished_at is None:
                target.finished_at = at
        if effects.job is not None:
            change = effects.job
            run.status = change.status or run.status
            run.active = run.active if change.active is None else change.active
            run.conditions = run.conditions if change.conditions is None else change.conditions
        if effects.progress:
            run.progress_at = at
        run.updated_at = at

    # --- leases ---------------------------------------------------------------------

    def renew_leases(self, owner: str, step_ids: Sequence[int], until: datetime) -> set[int]:
        """Renews what `owner` still holds; returns the steps another George runs now."""
        if not step_ids:
            return set()
        with self.db.engine.begin() as conn:
            conn.execute(
                sa.update(STEPS)
                .where(
                    STEPS.c.id.in_(step_ids),
                    STEPS.c.lease_owner == owner,
                    STEPS.c.status == StepStatus.RUNNING.value,
                )
                .values(lease_expires_at=until)
            )
            taken = conn.execute(
                sa.select(STEPS.c.id).where(
                    STEPS.c.id.in_(step_ids),
                    STEPS.c.lease_owner != owner,
                    STEPS.c.status == StepStatus.RUNNING.value,
                )
            )
            return {row.id for row in taken}

    def record_process(self, step_id: int, owner: str, process: ProcessRecord) -> None:
        """Where the step's current attempt runs, while `owner` holds its lease."""
        with self.db.engine.begin() as conn:
            conn.execute(
                sa.update(STEPS)
                .where(STEPS.c.id == step_id, STEPS.c.lease_owner == owner)
                .values(process=process.to_json())
            )

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


_SKIP_LOCKED = (sa.select(STEPS.c.id).where(STEPS.c.id == sa.bindparam("p_id"))
                .with_for_update(skip_locked=True))
_AGENT_LOCK = sa.text("SELECT pg_advisory_xact_lock(6700, hashtext(:agent))")
_RUNNING_OF = sa.select(sa.func.count()).select_from(STEPS).where(
    STEPS.c.agent == sa.bindparam("agent"), STEPS.c.status == StepStatus.RUNNING.value)
_STATE_FIELDS = tuple(f.name for f in fields(StepState))
_RUN_COLUMNS = tuple(c for c in JOBS.c if c.name != "spec")
_FINISHED = (StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.CANCELLED)
