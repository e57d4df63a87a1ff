"""SQL built once: the hot paths (claims, transitions, events) pay for parameters, not for
statement construction. Shared by the store's modules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from georgebot.store.shapes import RunState
from georgebot.store.tables import (
    ContextRow,
    EventRow,
    JobRunRow,
    OutboxRow,
    RequestRow,
    SlackMessageRow,
    StepRunRow,
    VoteRow,
)

STEPS = StepRunRow.__table__  # type: ignore[attr-defined]
# An UPDATE without `.values()` sets the columns named in the parameters; `p_` parameters
# are the guards.
INSERT_EVENT = sa.insert(EventRow.__table__)  # type: ignore[attr-defined]
CONTEXT = ContextRow.__table__  # type: ignore[attr-defined]
OUTBOX = OutboxRow.__table__  # type: ignore[attr-defined]
SLACK_MESSAGES = SlackMessageRow.__table__  # type: ignore[attr-defined]
INSERT_CONTEXT = sa.insert(CONTEXT)
INSERT_OUTBOX = sa.insert(OUTBOX)
JOBS = JobRunRow.__table__  # type: ignore[attr-defined]
REQUESTS = RequestRow.__table__  # type: ignore[attr-defined]
VOTES = VoteRow.__table__  # type: ignore[attr-defined]
TOUCH = sa.update(JOBS).where(JOBS.c.id == sa.bindparam("p_id"))

MOVED_COLUMNS = (
    "status", "reason", "message", "attempts", "failures", "digest", "agent_digest", "next_attempt_at",
    "started_at", "deadline_at", "finished_at", "lease_owner", "lease_expires_at", "waits_for",
)
"""What a step's move writes: every column that can change, so one statement serves all."""
MOVE = (
    sa.update(STEPS)
    .where(
        STEPS.c.id == sa.bindparam("p_id"),
        STEPS.c.status == sa.bindparam("p_status"),
        STEPS.c.attempts == sa.bindparam("p_attempts"),
    )
    .values({c: sa.bindparam(f"v_{c}", type_=STEPS.c[c].type) for c in MOVED_COLUMNS})
)
MOVE_LEASED = MOVE.where(STEPS.c.lease_owner == sa.bindparam("p_owner"))
MOVE_EXPIRED = MOVE.where(STEPS.c.lease_expires_at == sa.bindparam("p_lease"))
MOVE_UNLEASED = MOVE.where(STEPS.c.lease_expires_at.is_(None))


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
