"""Georges sharing one database share the work instead of each doing all of it: one leads the
Git sync (the others follow the revision it records and run steps), an agent's
`maxConcurrentSteps` counts every George's steps, and on PostgreSQL a change one George makes
starts the next step at once on another that has room. Each George is an `Engine` with its
own connection, as a process would have (SQLite, and PostgreSQL when available)."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from georgebot.engine import lifecycle
from georgebot.engine.ports import SystemClock
from georgebot.engine.service import Engine, EngineSettings
from georgebot.model.status import StepStatus
from georgebot.store import Claim, Store, open_database
from georgebot.store.notices import Notices
from tests.conftest import FakeClock
from tests.engine.at_rest import eventually
from tests.engine.harness import FakeSource, ScriptedRunner, agent, decide, job, step

LEASE = timedelta(seconds=10)


def status_of(store: Store, job_name: str, step_name: str) -> StepStatus | None:
    runs = store.load_runs([job_name])
    state = runs[0].step(step_name) if runs else None
    return state.status if state else None


def george(store: Store, source: FakeSource, runner: ScriptedRunner, clock, home: Path, name: str,
           **settings: object) -> Engine:
    return Engine(EngineSettings(home=home / name, lease=LEASE, **settings),  # type: ignore[arg-type]
                  store=store, source=source, runner=runner, clock=clock, owner=name)


async def test_one_george_leads_the_git_sync_and_another_takes_over_when_its_lease_lapses(
    store: Store, other_store: Store, source: FakeSource, clock, tmp_path: Path, engines: list[Engine]
) -> None:
    runner = ScriptedRunner()
    first = george(store, source, runner, clock, tmp_path, "first")
    second = george(other_store, source, runner, clock, tmp_path, "second")
    engines.extend([first, second])
    await first.start()
    await second.start()
    source.commit(job("a", step("x")))
    await first.reconcile_once()
    await second.reconcile_once()  # follows: fetches the revision the first one recorded
    assert (first.leading, second.leading) == (True, False)
    assert [r.name for r in store.load_runs()] == ["a"]

    source.commit(job("a", step("x")), job("b", step("x")), message="add b")
    syncs = source.syncs
    for _ in range(3):
        await second.reconcile_once()
    assert not second.leading
    assert [r.name for r in store.load_runs()] == ["a"], "a follower applied a revision"
    assert source.syncs == syncs, "a follower fetched Git though the leader recorded nothing new"

    clock.advance(LEASE)  # the first George is gone (killed): its lease lapses
    await second.reconcile_once()
    assert second.leading
    assert [r.name for r in store.load_runs()] == ["a", "b"]


async def test_a_follower_runs_steps_with_the_revision_the_leader_recorded(
    store: Store, other_store: Store, source: FakeSource, clock, tmp_path: Path, engines: list[Engine]
) -> None:
    runner, others = ScriptedRunner(), ScriptedRunner()
    first = george(store, source, runner, clock, tmp_path, "first", max_concurrent_steps=0)
    second = george(other_store, source, others, clock, tmp_path, "second")
    engines.extend([first, second])
    await first.start()
    await second.start()
    source.commit(job("a", step("x")))
    await first.reconcile_once()  # leads, creates the run, has no room to run it
    await second.settle()
    assert (runner.calls, others.calls) == ([], [("a", "x", 1)])
    assert status_of(store, "a", "x") is StepStatus.SUCCEEDED


async def test_an_agents_cap_counts_the_steps_of_every_george(
    store: Store, other_store: Store, source: FakeSource, clock, tmp_path: Path, engines: list[Engine]
) -> None:
    runner = ScriptedRunner()
    runner.gates["x"] = asyncio.Event()  # every agent stays in its step
    source.commit(*(job(f"j{i}", step("x")) for i in range(5)), agents=(agent(max_steps=2),))
    first = george(store, source, runner, clock, tmp_path, "first")
    second = george(other_store, source, runner, clock, tmp_path, "second")
    engines.extend([first, second])
    await first.start()
    await second.start()
    try:
        await first.reconcile_once()
        await second.reconcile_once()
        await first.reconcile_once()
        running = [r.name for r in store.load_runs() if r.steps[0].status is StepStatus.RUNNING]
        assert (first.supervisor.count, second.supervisor.count, len(running)) == (2, 0, 2)
    finally:
        runner.gates["x"].set()


async def test_a_george_that_stops_cleanly_hands_the_lead_on_at_once(
    store: Store, other_store: Store, source: FakeSource, clock, tmp_path: Path
) -> None:
    runner = ScriptedRunner()
    first = george(store, source, runner, clock, tmp_path, "first")
    second = george(other_store, source, runner, clock, tmp_path, "second")
    await first.start()
    await second.start()
    try:
        await first.reconcile_once()
        await first.close()
        await second.reconcile_once()  # no lease to wait out
        assert second.leading
    finally:
        await second.close()


@pytest.mark.postgres
async def test_a_decision_one_george_takes_starts_the_next_step_at_once_on_another(
    postgres_url: str, source: FakeSource, tmp_path: Path, engines: list[Engine],
) -> None:
    """PostgreSQL's NOTIFY; on SQLite the next full pass finds the change."""
    databases = [open_database(postgres_url) for _ in range(2)]
    store, other_store = (Store(db) for db in databases)
    real_time = SystemClock()
    runner = ScriptedRunner()
    source.commit(job("j", step("ok", ask={}), step("go", needs=("ok",))))
    worker = george(store, source, runner, real_time, tmp_path, "worker")
    front = george(other_store, source, runner, real_time, tmp_path, "front", max_concurrent_steps=0)
    engines.extend([worker, front])
    loop = asyncio.get_running_loop()
    notices = Notices(postgres_url, lambda payload: loop.call_soon_threadsafe(worker.heard, payload))
    notices.start()
    await worker.start()
    await front.start()
    passes = asyncio.create_task(worker.run_forever(), name="worker-loop")
    try:
        assert await asyncio.to_thread(notices.listening, 10)
        worker.wake(sync=True)
        await eventually(lambda: status_of(store, "j", "ok") is StepStatus.WAITING,
                         what="the approval asked for")
        await decide(front, "j", "ok", user="U01ALEX", approve=True)  # the front has no room

        # No safety-net pass runs here: only the front's announcement can wake the worker.
        await eventually(lambda: ("j", "go", 1) in runner.calls, what="go started on the worker",
                         within=10)
    finally:
        passes.cancel()
        with suppress(asyncio.CancelledError):
            await passes
        await asyncio.to_thread(notices.close)
        for engine in (worker, front):
            await engine.close()
        engines.clear()
        for db in databases:
            db.close()


@dataclass
@dataclass
class SlowPassClock(FakeClock):
    """Every reading moves the clock on 6 s, as a pass under heavy load takes time between
    one claim and the next."""

    def now(self) -> datetime:
        at = self.at
        self.advance(timedelta(seconds=6))
        return at


async def test_a_lease_runs_from_its_claim_not_from_the_start_of_a_long_pass(
    store: Store, source: FakeSource, tmp_path: Path, engines: list[Engine]
) -> None:
    runner, clock = ScriptedRunner(), SlowPassClock()
    runner.gates["x"] = asyncio.Event()  # every agent lives on
    source.commit(*(job(f"j{i}", step("x")) for i in range(4)), agents=(agent(max_steps=10),))
    first = george(store, source, runner, clock, tmp_path, "first")
    engines.append(first)
    await first.start()
    try:
        await first.reconcile_once()  # claims all four while the clock runs on
        claims = sorted((s.started_at, s.lease_expires_at) for r in store.load_runs() for s in r.steps)
        assert first.supervisor.count == 4
        assert all(at is not None and lease == at + LEASE for at, lease in claims)
        # Otherwise a pass longer than a lease hands out leases already run out, and another
        # George takes the step from its living agent.
        assert len({at for at, _ in claims}) > 1, claims
    finally:
        runner.gates["x"].set()


async def test_a_step_whose_george_died_runs_again_when_its_lease_lapses_without_a_safety_net_pass(
    store: Store, source: FakeSource, tmp_path: Path, engines: list[Engine]
) -> None:
    real_time, lease = SystemClock(), timedelta(seconds=0.5)
    source.commit(job("j", step("x")))
    runner = ScriptedRunner()
    survivor = Engine(EngineSettings(home=tmp_path / "survivor", lease=lease), store=store, source=source,
                      runner=runner, clock=real_time, owner="survivor")
    engines.append(survivor)
    await survivor.start()
    await survivor.git.apply(source.snapshot, real_time.now())  # the run exists; nobody claimed x
    [run] = store.load_active()
    claimed = lifecycle.claim(run, run.steps[0], owner="dead", now=real_time.now(), lease=lease)
    assert store.claim(run, claimed, real_time.now()) is Claim.CLAIMED  # a George that then died
    passes = asyncio.create_task(survivor.run_forever(), name="survivor-loop")
    try:
        survivor.wake(sync=True)  # its one pass sees x leased by another; nothing else wakes it
        await eventually(lambda: ("j", "x", 2) in runner.calls, what="x recovered", within=10)
    finally:
        passes.cancel()
        with suppress(asyncio.CancelledError):
            await passes
