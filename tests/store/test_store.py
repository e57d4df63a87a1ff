"""The store on SQLite and PostgreSQL alike: runs, claims, the event log, migrations."""

from __future__ import annotations

from datetime import timedelta

from georgebot.model.status import JobStatus, StepStatus
from georgebot.store import StepUpdate, Store, open_database
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


def test_only_one_owner_can_claim_a_step(store: Store, clock) -> None:
    run = store.create_run(job("j", step("a")), file="", revision="r", actor="git:r", at=clock.now())
    a, b = store.load_active()[0].steps[0], store.load_active()[0].steps[0]
    until = clock.now() + timedelta(seconds=10)
    assert store.claim(a, owner="one", until=until, at=clock.now(), deadline=None, run=run)
    assert not store.claim(b, owner="two", until=until, at=clock.now(), deadline=None, run=run)
    stale = store.load_active()[0].steps[0]
    assert not store.claim(stale, owner="two", until=until, at=clock.now(), deadline=None, run=run)
    later = clock.now() + timedelta(seconds=11)
    assert store.claim(
        stale,
        owner="two",
        until=later + timedelta(seconds=10),
        at=later,
        deadline=None,
        run=run,
        recovered=True,
    )
    assert store.load_active()[0].steps[0].attempts == 2


def test_a_transition_under_a_lost_lease_changes_nothing(store: Store, clock) -> None:
    run = store.create_run(job("j", step("a")), file="", revision="r", actor="git:r", at=clock.now())
    state = run.steps[0]
    assert store.claim(state, owner="one", until=clock.now(), at=clock.now(), deadline=None, run=run)
    moved = store.transition(
        run, state, StepUpdate(StepStatus.SUCCEEDED, actor="agent:a"), clock.now(), owner="two"
    )
    assert not moved
    assert store.load_active()[0].steps[0].status is StepStatus.RUNNING


def test_every_transition_is_in_the_event_log(store: Store, clock) -> None:
    run = store.create_run(job("j", step("a")), file="", revision="r", actor="git:r", at=clock.now())
    state = run.steps[0]
    store.claim(state, owner="me", until=clock.now(), at=clock.now(), deadline=None, run=run)
    store.transition(
        run, state, StepUpdate(StepStatus.SUCCEEDED, message="done", actor="agent:a"), clock.now(), owner="me"
    )
    store.set_job_status(run, JobStatus.SUCCEEDED, actor="engine", message="", at=clock.now(), active=False)
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
        "status": "Pending",
        "reason": None,
        "message": "",
        "attempts": 0,
        "agent": "ops",
        "needs": [],
        "next_attempt_at": None,
        "usage": None,
    }
