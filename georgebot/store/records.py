"""`Records`: what the store keeps beside job and step runs — synced revisions, context, votes,
the outbox, Slack messages George owns, usage, and the event log's reads. `Store` adds runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlmodel import Session, col, select

from georgebot import errors
from georgebot.model.approvals import Closed, Request, Vote
from georgebot.model.attempts import Replica
from georgebot.model.views import EventView, OutboxItem, RevisionView, SlackMessage, Usage
from georgebot.store.database import Database
from georgebot.store.shapes import ContextItem, RunState, from_row
from georgebot.store.statements import (
    CONTEXT,
    INSERT_CONTEXT,
    INSERT_OUTBOX,
    OUTBOX,
    REQUESTS,
    SLACK_MESSAGES,
    VOTES,
)
from georgebot.store.tables import (
    EventRow,
    LeaseRow,
    OutboxRow,
    ReplicaRow,
    RevisionRow,
    SlackEventRow,
    UsageRow,
)

CHANNEL = "george"
"""PostgreSQL's NOTIFY channel, `george.<schema>` (channels span a database; schemas do not):
every commit that changes a run (or records a revision) says so on it, as "<george> <run
id>" (or "<george> revision")."""
_NOTIFY = sa.text("SELECT pg_notify(:channel, :payload)")


def channel_of(schema: str) -> str:
    return f"{CHANNEL}.{schema}"[:63]  # PostgreSQL's limit for a name


class Records:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.announce_as: str | None = None
        """On PostgreSQL, commits are announced (NOTIFY) under this name, so other Georges
        read the run again at once, and this one knows its own announcements."""
        self._channel: str | None = None

    def _announce(self, conn: sa.Connection, what: int | str) -> None:
        if self.announce_as is None or self.db.is_sqlite:
            return
        if self._channel is None:
            self._channel = channel_of(str(conn.execute(sa.text("SELECT current_schema()")).scalar_one()))
        conn.execute(_NOTIFY, {"channel": self._channel, "payload": f"{self.announce_as} {what}"})

    def guarded(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Calls `fn`; a database that is locked, read-only, full or unreachable leaves as
        `errors.StoreBusy` (a temporary condition), never as a driver's exception."""
        try:
            return fn(*args, **kwargs)
        except sa.exc.OperationalError as e:
            raise errors.StoreBusy(f"the database is not writable now: {_first_line(e.orig)}") from e
        except sa.exc.DBAPIError as e:
            if e.connection_invalidated:
                raise errors.StoreBusy(f"the database connection was lost: {_first_line(e.orig)}") from e
            raise

    def session(self) -> Session:
        return Session(self.db.engine, expire_on_commit=False)

    def probe(self) -> None:
        """A write, rolled back: raises while the database does not take writes (locked,
        read-only, full), so George can say when it does again."""
        with self.db.engine.begin() as conn:  # committed, though it changes nothing
            conn.execute(sa.text("UPDATE revisions SET sha = sha WHERE id = (SELECT max(id) FROM revisions)"))

    # --- replicas -------------------------------------------------------------------

    def register_replica(self, replica: Replica) -> None:
        with self.session() as s:
            s.merge(ReplicaRow(**dataclasses.asdict(replica)))
            s.commit()

    def heartbeat(self, replica_id: str, at: datetime, sync_error: str | None = None) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(sa.update(ReplicaRow.__table__).where(  # type: ignore[attr-defined]
                col(ReplicaRow.id) == replica_id).values(heartbeat_at=at, sync_error=sync_error))

    def remove_replica(self, replica_id: str) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(sa.delete(ReplicaRow.__table__).where(  # type: ignore[attr-defined]
                col(ReplicaRow.id) == replica_id))

    def forget_replicas(self, silent_since: datetime) -> int:
        """Removes the rows of Georges silent since then (killed: no clean stop removed them)."""
        with self.db.engine.begin() as conn:
            return int(conn.execute(sa.delete(ReplicaRow.__table__).where(  # type: ignore[attr-defined]
                col(ReplicaRow.heartbeat_at) < silent_since)).rowcount)

    def replicas(self) -> list[Replica]:
        """Every George that said it runs, oldest first (a killed one stays until it is
        seen silent: its heartbeat tells)."""
        leads: dict[str, list[str]] = {}
        now = datetime.now(UTC)
        for name, holder in sorted(self.leaders(now).items(), key=lambda lead: lead[0] != "sync"):
            leads.setdefault(holder, []).append(name)
        with self.session() as s:
            rows = s.exec(select(ReplicaRow).order_by(col(ReplicaRow.started_at))).all()
            return [Replica(id=r.id, host=r.host, pid=r.pid, version=r.version, sandbox=r.sandbox,
                            started_at=r.started_at, heartbeat_at=r.heartbeat_at, sync_error=r.sync_error,
                            leads=tuple(leads.get(r.id, ())))
                    for r in rows]

    # --- what one George at a time leads --------------------------------------------

    def lead(self, name: str, holder: str, now: datetime, until: datetime) -> bool:
        """Takes the lease `name` if it is free or has lapsed, or keeps it if `holder` has it;
        True while `holder` leads. Guarded updates: two Georges never both hold it."""
        table = LeaseRow.__table__  # type: ignore[attr-defined]
        with self.db.engine.begin() as conn:
            kept = conn.execute(
                sa.update(table)
                .where(table.c.name == name, sa.or_(table.c.holder == holder, table.c.expires_at <= now))
                .values(holder=holder, expires_at=until,
                        acquired_at=sa.case((table.c.holder == holder, table.c.acquired_at), else_=now))
            )
            if kept.rowcount == 1:
                return True
            if conn.execute(sa.select(table.c.name).where(table.c.name == name)).first() is not None:
                return False
        try:
            with self.db.engine.begin() as conn:
                conn.execute(sa.insert(table).values(name=name, holder=holder, expires_at=until,
                                                     acquired_at=now))
        except sa.exc.IntegrityError:
            return False  # another George took it first
        return True

    def resign(self, name: str, holder: str, now: datetime) -> None:
        """A George stopping cleanly hands the lease on at once."""
        table = LeaseRow.__table__  # type: ignore[attr-defined]
        with self.db.engine.begin() as conn:
            conn.execute(sa.update(table).where(table.c.name == name, table.c.holder == holder)
                         .values(expires_at=now))

    def leaders(self, now: datetime) -> dict[str, str]:
        """Who leads what now: lease name → holder (lapsed leases are nobody's)."""
        table = LeaseRow.__table__  # type: ignore[attr-defined]
        with self.db.engine.connect() as conn:
            rows = conn.execute(sa.select(table.c.name, table.c.holder).where(table.c.expires_at > now))
            return {name: holder for name, holder in rows}

    # --- Slack events ---------------------------------------------------------------

    def first_delivery(self, event_id: str, at: datetime) -> bool:
        """Records that some George handles this Slack event; False when one already did (a
        retry, a redelivery, another replica's copy)."""
        table = SlackEventRow.__table__  # type: ignore[attr-defined]
        try:
            with self.db.engine.begin() as conn:
                conn.execute(sa.insert(table).values(id=event_id, seen_at=at))
        except sa.exc.IntegrityError:
            return False
        return True

    def forget_slack_events(self, seen_before: datetime) -> int:
        """Events Slack no longer retries (the leading George prunes them)."""
        table = SlackEventRow.__table__  # type: ignore[attr-defined]
        with self.db.engine.begin() as conn:
            return int(conn.execute(sa.delete(table).where(table.c.seen_at < seen_before)).rowcount)

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
            s.flush()
            self._announce(s.connection(), "revision")
            s.commit()

    def recorded_revision(self) -> str | None:
        """The sha of the revision the leading George applied last (cheap: one row)."""
        query = sa.select(RevisionRow.__table__.c.sha).order_by(  # type: ignore[attr-defined]
            RevisionRow.__table__.c.id.desc()).limit(1)  # type: ignore[attr-defined]
        with self.db.engine.connect() as conn:
            return conn.execute(query).scalar_one_or_none()

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

    def request(self, request_id: str) -> Request | None:
        """An approval request with its votes, oldest first."""
        with self.db.engine.connect() as conn:
            row = conn.execute(sa.select(REQUESTS).where(REQUESTS.c.id == request_id)).first()
            if row is None:
                return None
            votes = conn.execute(
                sa.select(VOTES.c.user, VOTES.c.approve, VOTES.c.at, VOTES.c.note)
                .where(VOTES.c.request_id == request_id).order_by(VOTES.c.id)
            ).all()
        return _request(row, votes)

    def last_approvers(self, step_id: int) -> tuple[str, ...]:
        """Whom the step's latest request asked: who may reopen it after a rejection."""
        query = (
            sa.select(REQUESTS.c.approvers).where(REQUESTS.c.step_id == step_id)
            .order_by(REQUESTS.c.opened_at.desc(), REQUESTS.c.id).limit(1)
        )
        with self.db.engine.connect() as conn:
            found = conn.execute(query).scalar_one_or_none()
        return tuple(found or ())

    def approvals(self, request_ids: Sequence[str]) -> dict[str, list[str]]:
        """Who has approved each request so far, in order (the cards show them)."""
        if not request_ids:
            return {}
        query = (
            sa.select(VOTES.c.request_id, VOTES.c.user)
            .where(VOTES.c.request_id.in_(request_ids), VOTES.c.approve.is_(True))
            .order_by(VOTES.c.id)
        )
        out: dict[str, list[str]] = {}
        with self.db.engine.connect() as conn:
            for request_id, user in conn.execute(query):
                out.setdefault(request_id, []).append(user)
        return out

    def open_requests_of(self, job_id: int) -> list[tuple[Request, str | None]]:
        """A run's open requests, each with the channel of its Slack message (None: not posted)."""
        query = (
            sa.select(REQUESTS, SLACK_MESSAGES.c.channel_id)
            .outerjoin(SLACK_MESSAGES, SLACK_MESSAGES.c.request_id == REQUESTS.c.id)
            .where(REQUESTS.c.job_id == job_id, REQUESTS.c.closed.is_(None))
        )
        with self.db.engine.connect() as conn:
            return [(_request(r, ()), r.channel_id) for r in conn.execute(query)]

    def request_messages(self, job_id: int) -> list[tuple[Request, SlackMessage]]:
        """Every request of a run George posted, oldest first, with its votes and its message:
        what the chat edits as the requests move."""
        with self.db.engine.connect() as conn:
            rows, messages, votes = _posted(conn, REQUESTS.c.job_id == job_id)
        return [(_request(r, votes.get(r.id, [])), messages[r.message_id]) for r in rows]

    def open_requests(self) -> list[tuple[Request, SlackMessage, SlackMessage | None]]:
        """Every open request whose message George posted, with its votes, its message and
        its job's card: what a reconciliation of reactions (`reactions.get`) looks at."""
        with self.db.engine.connect() as conn:
            rows, messages, votes = _posted(conn, REQUESTS.c.closed.is_(None))
            if not rows:
                return []
            cards: dict[int, SlackMessage] = {}
            for m in conn.execute(
                sa.select(SLACK_MESSAGES)
                .where(SLACK_MESSAGES.c.job_id.in_({r.job_id for r in rows}), SLACK_MESSAGES.c.kind == "card")
                .order_by(SLACK_MESSAGES.c.id)
            ):
                cards[m.job_id] = from_row(SlackMessage, m)  # the latest card of each run
        return [(_request(r, votes.get(r.id, [])), messages[r.message_id], cards.get(r.job_id)) for r in rows]

    def enqueue(
        self,
        job_id: int | None,
        *,
        channel: str,
        text: str,
        kind: str = "note",
        step: str | None = None,
        thread_of_card: bool = True,
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
                    "request_id": None,
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

    def request_message(self, request_id: str) -> SlackMessage | None:
        """The Slack message that carries a request, once posted."""
        return self._slack_message(
            sa.select(SLACK_MESSAGES).where(SLACK_MESSAGES.c.request_id == request_id).limit(1)
        )

    def record_slack_message(
        self,
        job_id: int,
        *,
        kind: str,
        channel_id: str,
        ts: str,
        step: str | None = None,
        request_id: str | None = None,
        at: datetime,
        replacing: str | None = None,
    ) -> SlackMessage:
        """Where Slack put a card or a request. The database holds one card per run and one
        message per request: when another George recorded its own first, that one is returned
        (and the caller deletes its copy). `replacing`: the ts of a card Slack lost."""
        mine = sa.select(SLACK_MESSAGES).where(SLACK_MESSAGES.c.channel_id == channel_id,
                                               SLACK_MESSAGES.c.ts == ts).limit(1)
        if replacing is not None:
            with self.db.engine.begin() as conn:
                moved = conn.execute(sa.update(SLACK_MESSAGES).where(
                    SLACK_MESSAGES.c.job_id == job_id, SLACK_MESSAGES.c.kind == kind,
                    SLACK_MESSAGES.c.ts == replacing).values(channel_id=channel_id, ts=ts, created_at=at))
            if moved.rowcount:
                return self._slack_message(mine) or _missing(ts)
        try:
            with self.db.engine.begin() as conn:
                conn.execute(sa.insert(SLACK_MESSAGES).values(
                    job_id=job_id, kind=kind, channel_id=channel_id, ts=ts, step=step,
                    request_id=request_id, created_at=at))
        except sa.exc.IntegrityError:
            first = self._slack_message(sa.select(SLACK_MESSAGES).where(
                SLACK_MESSAGES.c.request_id == request_id if request_id is not None
                else sa.and_(SLACK_MESSAGES.c.job_id == job_id, SLACK_MESSAGES.c.kind == kind)).limit(1))
            if first is None:
                raise
            return first
        return self._slack_message(mine) or _missing(ts)

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


def _missing(ts: str) -> SlackMessage:
    raise errors.StoreBusy(f"the message {ts} George recorded is not there when read back")


def _posted(
    conn: sa.Connection, where: Any
) -> tuple[Sequence[Any], dict[int, SlackMessage], dict[str, list[Any]]]:
    """The requests matching `where` whose message George posted, oldest first: their rows,
    those messages by id, and each request's votes in order."""
    rows = conn.execute(
        sa.select(REQUESTS, SLACK_MESSAGES.c.id.label("message_id"))
        .join(SLACK_MESSAGES, SLACK_MESSAGES.c.request_id == REQUESTS.c.id)
        .where(where)
        .order_by(REQUESTS.c.opened_at, REQUESTS.c.id)
    ).all()
    if not rows:
        return [], {}, {}
    messages = {
        m.id: from_row(SlackMessage, m)
        for m in conn.execute(
            sa.select(SLACK_MESSAGES).where(SLACK_MESSAGES.c.id.in_([r.message_id for r in rows]))
        )
    }
    votes: dict[str, list[Any]] = {}
    for v in conn.execute(
        sa.select(VOTES.c.request_id, VOTES.c.user, VOTES.c.approve, VOTES.c.at, VOTES.c.note)
        .where(VOTES.c.request_id.in_([r.id for r in rows]))
        .order_by(VOTES.c.id)
    ):
        votes.setdefault(v.request_id, []).append(v)
    return rows, messages, votes


def _request(row: Any, votes: Sequence[Any]) -> Request:
    return Request(
        id=row.id,
        job_id=row.job_id,
        step_id=row.step_id,
        step=row.step,
        kind=row.kind,
        channel=row.channel,
        approvers=tuple(row.approvers or ()),
        quorum=row.quorum,
        digest=row.digest,
        text=row.text,
        closed=Closed(row.closed) if row.closed else None,
        votes=tuple(Vote(v.user, bool(v.approve), getattr(v, "at", None), getattr(v, "note", "") or "")
                    for v in votes),
        closed_at=row.closed_at,
    )


P = ParamSpec("P")
T = TypeVar("T")


def _first_line(error: BaseException | None) -> str:
    return str(error).strip().splitlines()[0] if error is not None and str(error).strip() else "unknown error"
