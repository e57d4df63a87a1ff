"""SQL built once: the hot paths (claims, transitions, events) pay for parameters, not for
statement construction. Shared by the store's modules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from georgebot.model.status import StepStatus
from georgebot.store.shapes import RunState
from georgebot.store.tables import (
    ContextRow,
    EventRow,
    JobRunRow,
    OutboxRow,
    SlackMessageRow,
    StepRunRow,
)

STEPS = StepRunRow.__table__  # type: ignore[attr-defined]
# Statements built once: hot paths pay for parameters, not for SQL. An UPDATE without
# `.values()` sets the columns named in the parameters; `p_` parameters are the guards.
CLAIM = sa.update(STEPS).where(
    STEPS.c.id == sa.bindparam("p_id"),
    STEPS.c.status == sa.bindparam("p_status"),
    STEPS.c.attempts == sa.bindparam("p_attempts"),
)
CLAIM_EXPIRED = CLAIM.where(STEPS.c.lease_expires_at < sa.bindparam("p_now"))
UPDATE_STEP = sa.update(STEPS).where(STEPS.c.id == sa.bindparam("p_id"))
UPDATE_LEASED_STEP = UPDATE_STEP.where(
    STEPS.c.lease_owner == sa.bindparam("p_owner"), STEPS.c.status == sa.bindparam("p_running")
)
INSERT_EVENT = sa.insert(EventRow.__table__)  # type: ignore[attr-defined]
CONTEXT = ContextRow.__table__  # type: ignore[attr-defined]
OUTBOX = OutboxRow.__table__  # type: ignore[attr-defined]
SLACK_MESSAGES = SlackMessageRow.__table__  # type: ignore[attr-defined]
INSERT_CONTEXT = sa.insert(CONTEXT)
INSERT_OUTBOX = sa.insert(OUTBOX)
JOBS = JobRunRow.__table__  # type: ignore[attr-defined]
TOUCH = sa.update(JOBS).where(JOBS.c.id == sa.bindparam("p_id"))


def event_values(
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


def reset_step(st: StepRunRow) -> None:
    st.status, st.reason, st.message = StepStatus.PENDING.value, None, ""
    st.failures = 0
    st.next_attempt_at = st.deadline_at = st.finished_at = None
    st.lease_owner = st.lease_expires_at = None
    st.waits_for = None


def touch_job(s: Session, job_id: int, at: datetime) -> None:
    s.execute(sa.update(JobRunRow).where(col(JobRunRow.id) == job_id).values(progress_at=at, updated_at=at))
