"""A database George wrote under the first schema (Alembic revision 0001) upgrades to the
current head with nothing in progress lost: a step waiting for approvals gets a request, and
the votes, the undelivered request message and the Slack message of the step's current
definition bind to it, so the next ✅ completes the step. What belongs to an older definition
or an earlier round stays behind. On SQLite and PostgreSQL.

The rows are written as George 0001 wrote them, in plain SQL over the 0001 shapes (the
SQLModel classes describe the new schema).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from georgebot.engine import lifecycle
from georgebot.model.approvals import Closed, Vote
from georgebot.model.status import StepStatus
from georgebot.store import Database, Store
from georgebot.store import tables as _tables
from georgebot.store.database import MIGRATIONS, create, migrate
from tests.engine.harness import job, step

T0 = datetime(2026, 11, 24, 9, 0)  # naive UTC, as 0001 stored every time
CHANNEL_ID, REQUEST_TS, CARD_TS = "C0OPS", "1764000000.000200", "1764000000.000100"
SPEC = job(
    "deploy",
    step("build"),
    step("approve", needs=("build",), ask={"approvers": ["U1", "U2"], "quorum": 2, "message": "ok?"}),
)
STEP_DIGEST = SPEC.step_digest("approve")
OLD_DIGEST = "0ld0ld0ld0ld0ld0"  # the step's definition before the last change
WAITS_0001 = {"channel": "#ops", "text": "ok?", "approvers": ["U1", "U2"], "quorum": 2, "kind": "ask",
              "pinged": True}

# --- the 0001 shapes -------------------------------------------------------------------

JOB_RUNS = sa.table(
    "job_runs", sa.column("id", sa.Integer()), sa.column("name"), sa.column("template"),
    sa.column("status"), sa.column("active", sa.Boolean()), sa.column("generation", sa.Integer()),
    sa.column("digest"), sa.column("spec", sa.JSON()), sa.column("file"), sa.column("revision"),
    sa.column("channel"), sa.column("created_at", sa.DateTime()), sa.column("updated_at", sa.DateTime()),
    sa.column("progress_at", sa.DateTime()), sa.column("finished_at", sa.DateTime()),
    sa.column("conditions", sa.JSON()),
)
STEP_RUNS = sa.table(
    "step_runs", sa.column("id", sa.Integer()), sa.column("job_id", sa.Integer()), sa.column("name"),
    sa.column("position", sa.Integer()), sa.column("status"), sa.column("reason"), sa.column("message"),
    sa.column("attempts", sa.Integer()), sa.column("failures", sa.Integer()), sa.column("digest"),
    sa.column("agent_digest"), sa.column("started_at", sa.DateTime()),
    sa.column("deadline_at", sa.DateTime()), sa.column("finished_at", sa.DateTime()),
    sa.column("waits_for", sa.JSON()), sa.column("conditions", sa.JSON()),
)
VOTES = sa.table(
    "votes", sa.column("id", sa.Integer()), sa.column("step_id", sa.Integer()), sa.column("user"),
    sa.column("approve", sa.Boolean()), sa.column("digest"), sa.column("at", sa.DateTime()),
    sa.column("note"),
)
OUTBOX = sa.table(
    "outbox", sa.column("id", sa.Integer()), sa.column("job_id", sa.Integer()), sa.column("step"),
    sa.column("kind"), sa.column("channel"), sa.column("text"), sa.column("thread_of_card", sa.Boolean()),
    sa.column("meta", sa.JSON()), sa.column("created_at", sa.DateTime()),
    sa.column("delivered_at", sa.DateTime()),
)
SLACK_MESSAGES = sa.table(
    "slack_messages", sa.column("id", sa.Integer()), sa.column("job_id", sa.Integer()), sa.column("step"),
    sa.column("kind"), sa.column("channel_id"), sa.column("ts"), sa.column("digest"),
    sa.column("created_at", sa.DateTime()),
)


def _alembic(db: Database, revision: str, *, down: bool = False) -> None:
    """What `migrate()` does, to any revision, either way."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


@dataclass(frozen=True)
class Written:
    job_id: int
    step_id: int
    current_vote: int
    old_vote: int
    request_message: int  # the undelivered approval in the outbox


def _vote(conn: sa.Connection, step_id: int, user: str, approve: bool, digest: str, at: datetime) -> int:
    return int(conn.execute(sa.insert(VOTES).values(
        step_id=step_id, user=user, approve=approve, digest=digest, at=at, note="",
    ).returning(VOTES.c.id)).scalar_one())


def _outbox(conn: sa.Connection, job_id: int, *, kind: str, text: str, meta: dict[str, Any] | None,
            at: datetime, delivered: bool = False) -> int:
    return int(conn.execute(sa.insert(OUTBOX).values(
        job_id=job_id, step="approve" if kind == "approval" else None, kind=kind, channel="#ops", text=text,
        thread_of_card=True, meta=meta, created_at=at, delivered_at=at if delivered else None,
    ).returning(OUTBOX.c.id)).scalar_one())


def _george_0001(db: Database) -> Written:
    """A run whose `build` succeeded and whose `approve` waits for two approvals, one in: the
    approvers were reminded, the request is posted (and asked again after a lost card, so its
    message is also in the outbox), and U2 approved an older definition of the step."""
    _alembic(db, "0001")
    with db.engine.begin() as conn:
        job_id = conn.execute(sa.insert(JOB_RUNS).values(
            name="deploy", template="tpl", status="Waiting", active=True, generation=2,
            digest=SPEC.digest, spec=SPEC.model_dump(mode="json"), file="manifests/deploy.yaml",
            revision="a" * 40, channel="#ops", created_at=T0, updated_at=T0 + timedelta(minutes=30),
            progress_at=T0 + timedelta(minutes=5), finished_at=None, conditions=[],
        ).returning(JOB_RUNS.c.id)).scalar_one()
        common = {"job_id": job_id, "reason": None, "agent_digest": "", "conditions": None}
        conn.execute(sa.insert(STEP_RUNS).values(
            name="build", position=0, status="Succeeded", message="ok", attempts=1, failures=0,
            digest=SPEC.step_digest("build"), started_at=T0, deadline_at=None,
            finished_at=T0 + timedelta(minutes=1), waits_for=None, **common,
        ))
        step_id = conn.execute(sa.insert(STEP_RUNS).values(
            name="approve", position=1, status="Waiting", message="reminded the approvers", attempts=1,
            failures=0, digest=STEP_DIGEST, started_at=T0 + timedelta(minutes=5),
            deadline_at=T0 + timedelta(minutes=20), finished_at=None, waits_for=WAITS_0001, **common,
        ).returning(STEP_RUNS.c.id)).scalar_one()
        old_vote = _vote(conn, step_id, "U2", True, OLD_DIGEST, T0 + timedelta(minutes=2))
        current_vote = _vote(conn, step_id, "U1", True, STEP_DIGEST, T0 + timedelta(minutes=10))
        _outbox(conn, job_id, kind="approval", text="ok?", meta={"digest": STEP_DIGEST, "wait": "ask"},
                at=T0 + timedelta(minutes=5), delivered=True)  # the first post
        _outbox(conn, job_id, kind="ping", text="<@U1> <@U2> still waiting for your answer on approve",
                meta=None, at=T0 + timedelta(minutes=20))
        message = _outbox(conn, job_id, kind="approval", text="ok?", meta={"digest": STEP_DIGEST},
                          at=T0 + timedelta(minutes=30))  # asked again: the card was lost
        conn.execute(sa.insert(SLACK_MESSAGES), [
            {"job_id": job_id, "step": None, "kind": "card", "channel_id": CHANNEL_ID, "ts": CARD_TS,
             "digest": "", "created_at": T0},
            {"job_id": job_id, "step": "approve", "kind": "approval", "channel_id": CHANNEL_ID,
             "ts": REQUEST_TS, "digest": STEP_DIGEST, "created_at": T0 + timedelta(minutes=5)},
        ])
    return Written(job_id, step_id, current_vote, old_vote, message)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = create(database_url)
    yield database
    database.close()


def _request_column(db: Database, request_id: str, column: str) -> Any:
    requests = sa.table("requests", sa.column("id"), sa.column(column, _tables.UtcDateTime()))
    with db.engine.connect() as conn:
        return conn.execute(sa.select(requests.c[column]).where(requests.c.id == request_id)).scalar_one()


def _vote_request(db: Database, vote_id: int) -> str | None:
    votes = sa.table("votes", sa.column("id"), sa.column("request_id"))
    with db.engine.connect() as conn:
        query = sa.select(votes.c.request_id).where(votes.c.id == vote_id)
        found: str | None = conn.execute(query).scalar_one()
    return found


def test_an_approval_in_progress_survives_the_upgrade_and_completes(db: Database) -> None:
    written = _george_0001(db)
    migrate(db)
    store = Store(db)

    [run] = store.load_runs()
    assert run.id == written.job_id and run.spec == SPEC and run.generation == 2
    assert run.step("build").status is StepStatus.SUCCEEDED  # type: ignore[union-attr]
    waiting = run.step("approve")
    assert waiting is not None and waiting.status is StepStatus.WAITING and waiting.digest == STEP_DIGEST
    waits = waiting.waits
    assert waits is not None and waits.request
    assert waits.reminded is True  # 0001's "pinged": the approvers are not reminded twice
    assert (waits.kind, waits.channel, waits.text, waits.approvers, waits.quorum) == (
        "ask", "#ops", "ok?", ("U1", "U2"), 2)

    request = store.request(waits.request)
    assert request is not None and request.closed is None
    assert (request.job_id, request.step_id, request.step, request.kind) == (
        run.id, waiting.id, "approve", "ask")
    assert (request.channel, request.text, request.approvers, request.quorum, request.digest) == (
        "#ops", "ok?", ("U1", "U2"), 2, STEP_DIGEST)
    assert request.votes == (Vote("U1", True),)  # U2's vote on the older definition stays behind
    assert _request_column(db, request.id, "opened_at") == waiting.started_at
    assert store.approvals([request.id]) == {request.id: ["U1"]}
    assert _vote_request(db, written.current_vote) == request.id
    assert _vote_request(db, written.old_vote) is None  # kept for the record, bound to nothing

    pending = store.pending_outbox()
    assert [(m.id, m.kind, m.request_id) for m in pending] == [
        (written.request_message - 1, "ping", None), (written.request_message, "approval", request.id)]
    assert pending[1].text == "ok?" and pending[1].step == "approve" and pending[1].thread_of_card

    posted = store.find_slack_message(CHANNEL_ID, REQUEST_TS)
    assert posted is not None and posted.kind == "approval" and posted.request_id == request.id
    assert store.request_message(request.id) == posted
    card = store.find_slack_message(CHANNEL_ID, CARD_TS)
    assert card is not None and card.kind == "card" and card.request_id is None
    [(opened, message, its_card)] = store.open_requests()
    assert (opened, message, its_card) == (request, posted, card)

    now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    again, _ = lifecycle.on_ballot(run, request, user="U1", approve=True, now=now)
    assert again.decision is lifecycle.Decision.ALREADY_COUNTED  # U1's vote did carry over
    verdict, effects = lifecycle.on_ballot(run, request, user="U2", approve=True, now=now)
    assert verdict.decision is lifecycle.Decision.APPROVED and verdict.approvals == ("U1", "U2")
    assert store.commit(run, effects, now)

    done = store.load_run(run.id).step("approve")
    assert done is not None and done.status is StepStatus.SUCCEEDED and done.waits is None
    closed = store.request(request.id)
    assert closed is not None and closed.closed is Closed.APPROVED
    assert closed.votes == (Vote("U1", True), Vote("U2", True))
    assert [m.kind for m in store.pending_outbox()] == ["ping"]  # the approved request is not posted


def test_what_an_older_definition_or_round_left_does_not_bind_to_the_request(db: Database) -> None:
    """In 0001 an undelivered request message whose `meta.digest` was not the step's was
    dropped when its turn came, and a waiting step counted only approvals (a rejection had
    ended an earlier round: the step was retried since). Neither may reach the new request:
    the old message would be posted as the current one, and the old rejection would hide the
    same person's current approval and refuse their next one as already counted."""
    written = _george_0001(db)
    with db.engine.begin() as conn:
        stale = _outbox(conn, written.job_id, kind="approval", text="ok (the old way)?",
                        meta={"digest": OLD_DIGEST}, at=T0 + timedelta(minutes=1))
        rejected = _vote(conn, written.step_id, "U2", False, STEP_DIGEST, T0 + timedelta(minutes=1))
        approved = _vote(conn, written.step_id, "U2", True, STEP_DIGEST, T0 + timedelta(minutes=12))
        twice = _vote(conn, written.step_id, "U1", True, STEP_DIGEST, T0 + timedelta(minutes=13))
    migrate(db)
    store = Store(db)

    [run] = store.load_runs()
    waits = run.step("approve").waits  # type: ignore[union-attr]
    assert waits is not None
    request = store.request(waits.request)
    assert request is not None
    assert request.votes == (Vote("U1", True), Vote("U2", True))  # as 0001 counted them
    assert [_vote_request(db, v) for v in (rejected, approved, twice)] == [None, request.id, None]
    bound = {m.id: m.request_id for m in store.pending_outbox() if m.kind == "approval"}
    assert bound == {stale: None, written.request_message: request.id}


def test_an_empty_database_downgrades_to_the_first_schema_and_upgrades_again(db: Database) -> None:
    migrate(db)
    _alembic(db, "0001", down=True)
    inspector = sa.inspect(db.engine)
    assert "requests" not in inspector.get_table_names()
    assert "request_id" not in {c["name"] for c in inspector.get_columns("votes")}
    assert "meta" in {c["name"] for c in inspector.get_columns("outbox")}
    assert "digest" in {c["name"] for c in inspector.get_columns("slack_messages")}
    migrate(db)
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
