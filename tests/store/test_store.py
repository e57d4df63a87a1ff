"""The store on SQLite and PostgreSQL alike: runs, claims, the event log, migrations."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from georgebot.engine import lifecycle
from georgebot.engine.execution import Outcome
from georgebot.engine.ports import ApprovalRequest, Wait
from georgebot.model.approvals import Closed
from georgebot.model.status import JobStatus, StepStatus
from georgebot.store import Effects, RunState, StepState, Store, open_database
from georgebot.store.views import status_view
from tests.engine.harness import job, step


def test_schema_is_created_and_reopening_upgrades_nothing(database_url: str) -> None:
    first = open_database(database_url)
    Store(first).create_run(
        job("j", step("a")),
        file="f.yaml",
        revision="abc",
        actor="git:abc",
        at=__import__("datetime").datetime(2026, 1, 1, tzinfo=__import__("datetime").UTC),
    )
    first.close()
    again = open_database(database_url)
    assert [r.name for r in Store(again).load_runs()] == ["j"]
    again.close()


def test_a_new_run_has_pending_steps_and_a_creation_event(store: Store, clock) -> None:
    run = store.create_run(
        job("j", step("a"), step("b", needs=("a",))),
        file="m/j.yaml",
        revision="abc123",
        actor="git:abc123",
        at=clock.now(),
    )
    assert [(s.name, s.status) for s in run.steps] == [("a", StepStatus.PENDING), ("b", StepStatus.PENDING)]
    assert run.created_at == clock.now()  # times come back aware, in UTC
    [event] = store.events("j")
    assert (event.actor, event.to_status, event.reason) == ("git:abc123", "Pending", "Created")


LEASE = timedelta(seconds=10)


def claim(store: Store, run: RunState, state: StepState, owner: str, now: datetime, **kw: Any) -> bool:
    effects = lifecycle.claim(run, state, owner=owner, now=now, lease=LEASE, **kw)
    if not store.commit(run, effects, now):
        return False
    store.follow(run, effects, now)
    return True


def test_only_one_owner_can_claim_a_step(store: Store, clock) -> None:
    store.create_run(job("j", step("a")), file="", revision="r", actor="git:r", at=clock.now())
    one, two = store.load_active()[0], store.load_active()[0]
    assert claim(store, one, one.steps[0], "one", clock.now())
    assert not claim(store, two, two.steps[0], "two", clock.now())
    stale, also = store.load_active()[0], store.load_active()[0]
    later = clock.now() + timedelta(seconds=11)  # the lease expired: a recovery may claim it
    assert claim(store, stale, stale.steps[0], "two", later, recovered=True)
    again = store.load_active()[0]
    assert (again.steps[0].attempts, again.steps[0].lease_owner) == (2, "two")
    assert not claim(store, also, also.steps[0], "three", later, recovered=True)  # one recovery only


def test_an_outcome_under_a_lost_lease_changes_nothing(store: Store, clock) -> None:
    run = store.create_run(job("j", step("a")), file="", revision="r", actor="git:r", at=clock.now())
    assert claim(store, run, run.steps[0], "one", clock.now())
    effects = lifecycle.on_outcome(run, run.steps[0], Outcome(StepStatus.SUCCEEDED), now=clock.now(),
                                   owner="two", request_id="r1", agent_digest="")
    assert not store.commit(run, effects, clock.now())
    assert store.load_active()[0].steps[0].status is StepStatus.RUNNING


def test_a_transition_commits_with_all_its_effects_or_none(store: Store, clock) -> None:
    run = store.create_run(job("j", step("a"), step("b")), file="", revision="r", actor="git:r",
                           at=clock.now())
    assert claim(store, run, run.steps[0], "me", clock.now())
    ask = Wait(ApprovalRequest("j", "a", "#ops", "ok?", ("U1",), 1))
    waiting = lifecycle.on_outcome(run, run.steps[0], Outcome(StepStatus.WAITING, result=ask),
                                   now=clock.now(), owner="me", request_id="req-1", agent_digest="")
    stale_b = replace(run.steps[1], status=StepStatus.RUNNING)  # a guard that no longer holds
    broken = waiting + Effects(moves=(lifecycle.claim(run, stale_b, owner="me", now=clock.now(),
                                                      lease=LEASE).moves[0],))
    assert not store.commit(run, broken, clock.now())
    assert store.request("req-1") is None and store.pending_outbox() == []
    assert store.load_active()[0].steps[0].status is StepStatus.RUNNING

    assert store.commit(run, waiting, clock.now())  # the wait, its request and its message together
    assert store.load_active()[0].steps[0].status is StepStatus.WAITING
    assert store.request("req-1") is not None
    assert [(m.kind, m.request_id) for m in store.pending_outbox()] == [("approval", "req-1")]


def test_a_vote_counts_once_per_person_and_request(store: Store, clock) -> None:
    run = store.create_run(job("j", step("a")), file="", revision="r", actor="git:r", at=clock.now())
    assert claim(store, run, run.steps[0], "me", clock.now())
    ask = Wait(ApprovalRequest("j", "a", "#ops", "ok?", ("U1", "U2"), 2))
    waiting = lifecycle.on_outcome(run, run.steps[0], Outcome(StepStatus.WAITING, result=ask),
                                   now=clock.now(), owner="me", request_id="req-1", agent_digest="")
    assert store.commit(run, waiting, clock.now())
    request = store.request("req-1")
    assert request is not None
    fresh = store.load_active()[0]
    _, first = lifecycle.on_ballot(fresh, request, user="U1", approve=True, now=clock.now())
    _, twice = lifecycle.on_ballot(fresh, request, user="U1", approve=True, now=clock.now())
    assert store.commit(fresh, first, clock.now())
    assert not store.commit(fresh, twice, clock.now())  # read before the first landed: refused
    assert store.approvals(["req-1"]) == {"req-1": ["U1"]}


def test_closing_a_request_takes_its_unsent_message_off_the_outbox(store: Store, clock) -> None:
    run = store.create_run(job("j", step("a")), file="", revision="r", actor="git:r", at=clock.now())
    assert claim(store, run, run.steps[0], "me", clock.now())
    ask = Wait(ApprovalRequest("j", "a", "#ops", "ok?", ("U1",), 1))
    waiting = lifecycle.on_outcome(run, run.steps[0], Outcome(StepStatus.WAITING, result=ask),
                                   now=clock.now(), owner="me", request_id="req-1", agent_digest="")
    assert store.commit(run, waiting, clock.now())
    store.follow(run, waiting, clock.now())
    cancelled = lifecycle.on_cancel(run, actor="git:x", message="removed", now=clock.now())
    assert store.commit(run, cancelled, clock.now())
    assert store.pending_outbox() == []
    request = store.request("req-1")
    assert request is not None and request.closed is Closed.CANCELLED


def test_every_transition_is_in_the_event_log(store: Store, clock) -> None:
    run = store.create_run(job("j", step("a")), file="", revision="r", actor="git:r", at=clock.now())
    assert claim(store, run, run.steps[0], "me", clock.now())
    done = lifecycle.on_outcome(run, run.steps[0], Outcome(StepStatus.SUCCEEDED, message="done"),
                                now=clock.now(), owner="me", request_id="r1", agent_digest="")
    assert store.commit(run, done, clock.now())
    store.follow(run, done, clock.now())
    refreshed = lifecycle.on_refresh(run, clock.now(), default_deadline=timedelta(days=7))
    assert store.commit(run, refreshed, clock.now())
    log = [(e.step, e.actor, e.from_status, e.to_status) for e in store.events("j")]
    assert log == [
        (None, "git:r", None, "Pending"),
        ("a", "engine", "Pending", "Running"),
        ("a", "agent:a", "Running", "Succeeded"),
        (None, "engine", "Pending", "Succeeded"),
    ]
    assert store.load_active() == []
    assert store.load_runs(["j"])[0].status is JobStatus.SUCCEEDED


def test_status_view_reads_revision_errors_agents_and_jobs(store: Store, clock) -> None:
    store.record_revision(
        "abc",
        "add jobs",
        [{"file": "m/x.yaml", "line": 3, "column": 1, "kind": "Job", "name": "x", "message": "bad"}],
        {
            "ops": {
                "apiVersion": "george/v1",
                "kind": "AgentSpec",
                "metadata": {"name": "ops"},
                "spec": {"capabilities": [{"shell": {"commands": ["tools/a"]}}]},
            }
        },
        clock.now(),
    )
    store.create_run(job("j", step("a")), file="", revision="abc", actor="git:abc", at=clock.now())
    view = status_view(store).to_json()
    assert view["revision"]["sha"] == "abc"
    assert view["manifest_errors"][0]["line"] == 3
    assert view["agents"] == [
        {"name": "ops", "capabilities": {"shell": ["tools/a"]}, "running": 0, "model": None}
    ]
    assert view["jobs"][0]["steps"][0] | {"usage": None} == {
        "name": "a",
        "form": "run",
        "replica": None,
        "status": "Pending",
        "reason": None,
        "message": "",
        "attempts": 0,
        "agent": "ops",
        "needs": [],
        "next_attempt_at": None,
        "usage": None,
    }


def test_status_says_which_george_runs_each_step(store: Store, clock) -> None:
    run = store.create_run(job("j", step("a"), step("b", needs=["a"])), file="", revision="r",
                           actor="git:r", at=clock.now())
    assert run is not None
    assert claim(store, run, run.steps[0], "george-one", clock.now())

    [shown] = status_view(store, "j").to_json()["jobs"]

    assert {s["name"]: s["replica"] for s in shown["steps"]} == {"a": "george-one", "b": None}
