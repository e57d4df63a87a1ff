"""`Store`: job and step runs (on top of `Records`), each write in one short transaction.

The engine decides; the store persists. Every status change goes through a method that
also appends to the event log in the same transaction, so the audit trail can't miss one.
Claims are compare-and-set updates, safe across processes on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from georgebot.model.rendered import RenderedJob
from georgebot.model.status import JobStatus, StepStatus
from georgebot.store.database import Database
from georgebot.store.records import Records
from georgebot.store.shapes import RunState, RunSummary, StepState, StepUpdate, run_state
from georgebot.store.statements import (
    CLAIM,
    CLAIM_EXPIRED,
    INSERT_EVENT,
    JOBS,
    STEPS,
    TOUCH,
    UPDATE_LEASED_STEP,
    UPDATE_STEP,
    event_values,
    reset_step,
    touch_job,
)
from georgebot.store.tables import (
    EventRow,
    JobRunRow,
    StepRunRow,
)


class Store(Records):
    """Every read and write of actual state; `Records` holds the parts beside the runs."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._specs: dict[str, RenderedJob] = {}

    def _spec(self, row: Any) -> RenderedJob:
        """Specs are immutable per digest; parsing each once keeps passes cheap."""
        spec = self._specs.get(row.digest)
        if spec is None:
            if len(self._specs) > 10_000:
                self._specs.clear()
            spec = self._specs[row.digest] = RenderedJob.model_validate(row.spec)
        return spec

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
        """Runs and their steps in two queries (Core: passes read often, and cheaply)."""
        with self.db.engine.connect() as conn:
            runs = conn.execute(sa.select(JOBS).where(where)).all()
            if not runs:
                return []
            by_job: dict[int, list[Any]] = {}
            steps = conn.execute(sa.select(STEPS).where(STEPS.c.job_id.in_([r.id for r in runs])))
            for step in steps:
                by_job.setdefault(step.job_id, []).append(step)
        return [run_state(r, by_job.get(r.id, []), self._spec(r)) for r in runs]

    def latest_runs(self) -> dict[str, RunSummary]:
        """The latest run of every job ever seen, without its steps: what a new revision is
        compared with (cheap for thousands of finished jobs)."""
        latest = sa.select(sa.func.max(JOBS.c.id)).group_by(JOBS.c.name)
        query = sa.select(JOBS.c.id, JOBS.c.name, JOBS.c.status, JOBS.c.active, JOBS.c.digest)
        with self.db.engine.connect() as conn:
            rows = conn.execute(query.where(JOBS.c.id.in_(latest))).all()
        return {r.name: RunSummary(r.id, r.name, JobStatus(r.status), r.active, r.digest) for r in rows}

    def create_run(self, job: RenderedJob, *, file: str, revision: str, actor: str, at: datetime) -> RunState:
        with self.db.engine.begin() as conn:
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
                        INSERT_EVENT,
                        event_values(
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
                    reset_step(st)
                    reset.append(st.name)
                s.add(st)
            for gone in existing.values():  # kept for the record; views show the spec's steps only
                if gone.status != StepStatus.SUCCEEDED:
                    gone.status, gone.reason = StepStatus.CANCELLED.value, "RemovedFromSpec"
                    gone.message = "the step is no longer in the template"
                gone.position = 10_000 + gone.position
                s.add(gone)
            s.execute(
                INSERT_EVENT,
                event_values(
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
                    INSERT_EVENT, event_values(at, run, st.name, actor, st.status, "Pending", reason, message)
                )
                reset_step(st)
                s.add(st)
            touch_job(s, run.id, at)
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
            current = conn.execute(sa.select(JOBS.c.status).where(JOBS.c.id == run.id)).scalar_one()
            if current != status.value:
                conn.execute(
                    INSERT_EVENT, event_values(at, run, None, actor, current, status.value, None, message)
                )
            conn.execute(TOUCH, {"p_id": run.id, **values})
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
                    INSERT_EVENT,
                    event_values(at, run, st.name, actor, st.status, "Cancelled", "RemovedFromGit", message),
                )
                st.status, st.reason, st.message = StepStatus.CANCELLED.value, "RemovedFromGit", message
                st.lease_owner = st.lease_expires_at = st.next_attempt_at = None
                s.add(st)
            row = s.get(JobRunRow, run.id)
            assert row is not None
            s.execute(
                INSERT_EVENT,
                event_values(at, run, None, actor, row.status, "Cancelled", "RemovedFromGit", message),
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
        values: dict[str, Any] = {
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
        guards: dict[str, Any] = {"p_id": step.id, "p_status": step.status.value, "p_attempts": step.attempts}
        stmt = CLAIM
        if step.status == StepStatus.RUNNING:
            stmt, guards["p_now"] = CLAIM_EXPIRED, at
        message = f"attempt {step.attempts + 1}" + (
            " (the previous attempt's agent died; running it again)" if recovered else ""
        )
        event = event_values(
            at,
            run,
            step.name,
            "engine",
            step.status.value,
            "Running",
            "Recovered" if recovered else None,
            message,
        )
        return self._compare_and_set(run, step, stmt, guards, values, event, touch_at=None)

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
        stmt = UPDATE_STEP
        guards: dict[str, Any] = {"p_id": step.id}
        if owner is not None:
            stmt = UPDATE_LEASED_STEP
            guards |= {"p_owner": owner, "p_running": StepStatus.RUNNING.value}
        event = event_values(
            at,
            run,
            step.name,
            update.actor,
            step.status.value,
            update.to.value,
            update.reason,
            update.message,
        )
        return self._compare_and_set(
            run, step, stmt, guards, values, event, touch_at=at if progress else None
        )

    def _compare_and_set(
        self,
        run: RunState,
        step: StepState,
        stmt: sa.Update,
        guards: dict[str, Any],
        values: dict[str, Any],
        event: dict[str, Any],
        *,
        touch_at: datetime | None,
    ) -> bool:
        """One step moves only if `guards` still hold, with its event (and the job's progress
        time) in the same transaction; the cached `step` follows on success."""
        with self.db.engine.begin() as conn:
            if conn.execute(stmt, {**values, **guards}).rowcount != 1:
                conn.rollback()
                return False
            conn.execute(INSERT_EVENT, event)
            if touch_at is not None:
                conn.execute(TOUCH, {"p_id": run.id, "progress_at": touch_at, "updated_at": touch_at})
        for key, value in values.items():
            if hasattr(step, key):
                setattr(step, key, StepStatus(value) if key == "status" else value)
        return True
