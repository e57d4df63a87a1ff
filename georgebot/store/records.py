"""`Records`: what the store keeps beside job and step runs — synced revisions, context, votes,
the outbox, Slack messages George owns, usage, and the event log's reads. `Store` adds runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from georgebot.model.views import EventView, RevisionView, Usage
from georgebot.store.database import Database
from georgebot.store.shapes import ContextItem, OutboxItem, RunState, SlackMessage, StepState, from_row
from georgebot.store.statements import (
    CONTEXT,
    INSERT_CONTEXT,
    INSERT_EVENT,
    INSERT_OUTBOX,
    OUTBOX,
    SLACK_MESSAGES,
    event_values,
)
from georgebot.store.tables import (
    EventRow,
    OutboxRow,
    RevisionRow,
    SlackMessageRow,
    UsageRow,
    VoteRow,
)


class Records:
    def __init__(self, db: Database) -> None:
        self.db = db

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
                INSERT_CONTEXT,
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
        query = sa.select(CONTEXT).where(CONTEXT.c.job_id == job_id)
        if step is not None:
            query = query.where(sa.or_(CONTEXT.c.step == step, CONTEXT.c.step.is_(None)))
        with self.db.engine.connect() as conn:
            return [from_row(ContextItem, r) for r in conn.execute(query.order_by(CONTEXT.c.id))]

    def add_vote(
        self, run: RunState, step: StepState, *, user: str, approve: bool, at: datetime, note: str = ""
    ) -> None:
        with self.session() as s:
            s.add(VoteRow(step_id=step.id, user=user, approve=approve, digest=step.digest, at=at, note=note))
            s.execute(
                INSERT_EVENT,
                event_values(
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
                INSERT_OUTBOX,
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
        query = sa.select(OUTBOX).where(OUTBOX.c.delivered_at.is_(None)).order_by(OUTBOX.c.id).limit(limit)
        with self.db.engine.connect() as conn:
            return [from_row(OutboxItem, r) for r in conn.execute(query)]

    def mark_delivered(self, outbox_id: int, at: datetime) -> None:
        with self.session() as s:
            row = s.get(OutboxRow, outbox_id)
            if row is not None:
                row.delivered_at = at
                s.add(row)
                s.commit()

    def slack_message(self, job_id: int, kind: str, step: str | None = None) -> SlackMessage | None:
        """The latest message of that kind George posted for the run (and step)."""
        query = sa.select(SLACK_MESSAGES).where(
            SLACK_MESSAGES.c.job_id == job_id, SLACK_MESSAGES.c.kind == kind
        )
        if step is not None:
            query = query.where(SLACK_MESSAGES.c.step == step)
        return self._slack_message(query.order_by(SLACK_MESSAGES.c.id.desc()).limit(1))

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
            sa.select(SLACK_MESSAGES)
            .where(SLACK_MESSAGES.c.ts == ts, SLACK_MESSAGES.c.channel_id == channel_id)
            .limit(1)
        )

    def _slack_message(self, query: sa.Select[Any]) -> SlackMessage | None:
        with self.db.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else from_row(SlackMessage, row)

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
