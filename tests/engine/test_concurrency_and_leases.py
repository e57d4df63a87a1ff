"""How many agents run at once, and who holds a running step: the global cap on concurrent
steps, lease renewal while an agent lives, and leases released on a clean stop. Two
processes on one database are two `Engine`s with different owners, each on its own
connection to the same database (SQLite, and PostgreSQL when available)."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from georgebot.engine.ports import StepRecorder, StepResult, StepTask, SystemClock
from georgebot.engine.service import Engine, EngineSettings
from georgebot.model.status import JobStatus, StepStatus
from georgebot.store import StepState, Store
from tests.engine.at_rest import eventually
from tests.engine.harness import FakeSource, ScriptedRunner, agent, job, make_engine, step


@dataclass
class CountingRunner(ScriptedRunner):
    """A scripted runner that also counts the agents inside it right now, and the most ever."""

    live: int = 0
    peak: int = 0

    async def run(self, task: StepTask, recorder: StepRecorder) -> StepResult:
        self.live += 1
        self.peak = max(self.peak, self.live)
        try:
            return await super().run(task, recorder)
        finally:
            self.live -= 1


def state_of(store: Store, job_name: str, step_name: str) -> StepState:
    state = store.load_runs([job_name])[0].step(step_name)
    assert state is not None
    return state


async def test_no_more_steps_run_at_once_than_the_global_cap(
    sqlite_store: Store, source: FakeSource, clock, tmp_path: Path, engines: list[Engine]
) -> None:
    runner = CountingRunner()
    job_of = {f"s{i}": f"j{i}" for i in range(3)}
    gates = {name: runner.gates.setdefault(name, asyncio.Event()) for name in job_of}
    source.commit(*(job(j, step(s)) for s, j in job_of.items()), agents=(agent(max_steps=10),))
    engine = make_engine(sqlite_store, source, runner, clock, tmp_path, max_concurrent_steps=2)
    engines.append(engine)
    await engine.start()
    loop = asyncio.create_task(engine.run_forever(), name="engine-loop")
    try:
        engine.wake(sync=True)
        await eventually(lambda: runner.live >= 2, what="two agents running")
        for _ in range(3):  # more passes change nothing: the cap is reached
            await engine.reconcile_once()
        assert (engine.supervisor.count, runner.live, len(runner.calls)) == (2, 2, 2)
        started = [s for _, s, _ in runner.calls]
        [held] = set(gates) - set(started)
        assert state_of(sqlite_store, job_of[held], held).status is StepStatus.PENDING

        gates[started[0]].set()  # one agent finishes: its slot goes to the third step
        await eventually(lambda: held in [s for _, s, _ in runner.calls], what=f"{held} started")
        assert runner.live <= 2

        for gate in gates.values():
            gate.set()
        await eventually(
            lambda: all(r.status is JobStatus.SUCCEEDED for r in sqlite_store.load_runs()),
            what="every job succeeded",
        )
        assert runner.peak == 2
        assert len(runner.calls) == 3
    finally:
        loop.cancel()
        with suppress(asyncio.CancelledError):
            await loop


async def test_a_running_agent_keeps_its_lease_and_another_process_leaves_its_step_alone(
    store: Store,
    other_store: Store,
    source: FakeSource,
    runner: ScriptedRunner,
    tmp_path: Path,
    engines: list[Engine],
) -> None:
    lease = timedelta(seconds=0.6)  # renewed every 0.2 s while the agent lives
    real_time = SystemClock()
    gate = runner.gates["slow"] = asyncio.Event()
    source.commit(job("j", step("slow")))
    first = make_engine(store, source, runner, real_time, tmp_path / "first", lease=lease)
    others = ScriptedRunner()
    second = Engine(
        EngineSettings(home=tmp_path / "second", lease=lease),
        store=other_store,
        source=source,
        runner=others,
        clock=real_time,
        owner="second-process",
    )
    engines.extend([first, second])
    await first.start()
    await second.start()

    await first.reconcile_once()
    claimed = state_of(store, "j", "slow")
    assert claimed.lease_owner == first.owner and claimed.lease_expires_at is not None
    leases = [claimed.lease_expires_at]
    # The second process looks again and again, until a whole lease past the one the claim
    # took, while the first one's agent lives.
    while real_time.now() <= claimed.lease_expires_at + lease or len(leases) < 3:
        await second.reconcile_once()
        assert second.supervisor.count == 0, "the second process took a step whose agent lives"
        current = state_of(other_store, "j", "slow")
        assert (current.status, current.lease_owner) == (StepStatus.RUNNING, first.owner)
        assert current.lease_expires_at is not None and current.lease_expires_at >= leases[-1]
        if current.lease_expires_at > leases[-1]:
            leases.append(current.lease_expires_at)
        assert real_time.now() < claimed.lease_expires_at + 50 * lease, "the lease was never renewed"
        await asyncio.sleep(lease.total_seconds() / 10)
    assert first.supervisor.count == 1

    gate.set()
    await asyncio.wait_for(first.supervisor.idle.wait(), 30)
    done = state_of(other_store, "j", "slow")
    assert (done.status, done.attempts) == (StepStatus.SUCCEEDED, 1)  # the first one's outcome held
    assert others.calls == [] and runner.calls == [("j", "slow", 1)]
    assert not [e for e in store.events("j") if e.reason == "Recovered"]


async def test_a_clean_stop_releases_the_lease_and_the_next_start_runs_the_step_at_once(
    store: Store,
    other_store: Store,
    source: FakeSource,
    runner: ScriptedRunner,
    clock,
    tmp_path: Path,
    engines: list[Engine],
) -> None:
    gate = runner.gates["slow"] = asyncio.Event()
    source.commit(job("j", step("slow")))
    first = make_engine(store, source, runner, clock, tmp_path / "first")  # a 10 s lease
    await first.start()
    await first.reconcile_once()
    await eventually(lambda: runner.calls, what="the agent running")
    assert state_of(store, "j", "slow").lease_expires_at == clock.now() + timedelta(seconds=10)

    await first.close()

    stopped = state_of(store, "j", "slow")
    assert stopped.status is StepStatus.RUNNING
    assert stopped.lease_expires_at is not None and stopped.lease_expires_at <= clock.now()
    [interrupted] = [e for e in store.events("j") if e.reason == "Interrupted"]
    assert interrupted.step == "slow" and "attempt 1" in interrupted.message

    clock.advance(timedelta(seconds=1))  # a quick restart, long before the old lease would end
    gate.set()
    second = make_engine(other_store, source, runner, clock, tmp_path / "second")
    engines.append(second)
    await second.start()
    await second.settle()

    done = state_of(other_store, "j", "slow")
    assert (done.status, done.attempts) == (StepStatus.SUCCEEDED, 2)
    assert runner.calls == [("j", "slow", 1), ("j", "slow", 2)]
    reasons = [e.reason for e in other_store.events("j") if e.step == "slow"]
    assert reasons.index("Interrupted") < reasons.index("Recovered")


async def test_a_finished_step_frees_its_slot_for_the_next_step_of_its_job_without_a_pass(
    sqlite_store: Store, source: FakeSource, clock, tmp_path: Path, engines: list[Engine]
) -> None:
    runner = ScriptedRunner()
    runner.gates["a"] = asyncio.Event()
    source.commit(job("j", step("a"), step("b", needs=("a",))), job("k", step("c")))
    engine = make_engine(sqlite_store, source, runner, clock, tmp_path, max_concurrent_steps=1)
    engines.append(engine)
    await engine.start()
    await engine.reconcile_once()  # a takes the one slot; c waits for room
    passes = engine.passes
    runner.gates["a"].set()
    await eventually(lambda: len(runner.calls) == 2, what="a second step started")
    # b, whose need just succeeded, starts in a's slot at once: no pass, no wait for a's task
    # to end; c still waits for room.
    assert (runner.order("j"), runner.order("k"), engine.passes) == (["a", "b"], [], passes)
