"""Between full passes (every `full_pass_every`), a pass looks only at the runs that moved, fell
due or wait for room, so its cost does not grow with the number of active jobs. What falls
due of itself still starts on time: a retry's backoff ending, the lease of a George that died
running out."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from georgebot.engine import lifecycle
from georgebot.engine.ports import Done
from georgebot.engine.service import Engine, EngineSettings
from georgebot.model.status import StepStatus
from georgebot.store import Claim, Store
from tests.conftest import FakeClock
from tests.engine.harness import FakeSource, ScriptedRunner, fail, job, step


def george(store: Store, source: FakeSource, runner: ScriptedRunner, clock: FakeClock, home: Path) -> Engine:
    settings = EngineSettings(home=home, lease=timedelta(seconds=3), full_pass_every=timedelta(minutes=5))
    return Engine(settings, store=store, source=source, runner=runner, clock=clock, owner="george")


async def test_a_retry_starts_when_its_backoff_ends_between_full_passes(
    sqlite_store: Store, source: FakeSource, clock: FakeClock, tmp_path: Path, engines: list[Engine]
) -> None:
    source.commit(job("quiet", step("a")), job("flaky", step("b", retries=2, backoff="2s")))
    runner = ScriptedRunner()
    runner.on("b", fail(), Done("ok"))
    engine = george(sqlite_store, source, runner, clock, tmp_path)
    engines.append(engine)
    await engine.start()
    await engine.settle()
    assert sqlite_store.load_runs(["flaky"])[0].steps[0].status is StepStatus.RETRYING
    clock.advance(timedelta(seconds=2))  # due now; the next full pass is minutes away
    await engine.settle()
    assert runner.calls.count(("flaky", "b", 2)) == 1


async def test_a_step_whose_george_died_is_recovered_when_its_lease_ends_between_full_passes(
    sqlite_store: Store, source: FakeSource, clock: FakeClock, tmp_path: Path, engines: list[Engine]
) -> None:
    source.commit(job("j", step("x")))
    runner = ScriptedRunner()
    engine = george(sqlite_store, source, runner, clock, tmp_path)
    engines.append(engine)
    await engine.start()
    await engine.git.apply(source.snapshot, clock.now())  # the run exists; nobody claimed x
    [run] = sqlite_store.load_active()
    claimed = lifecycle.claim(run, run.steps[0], owner="dead", now=clock.now(), lease=timedelta(seconds=3))
    assert sqlite_store.claim(run, claimed, clock.now()) is Claim.CLAIMED  # a George that then died
    for _ in range(3):  # it sees x leased by another, and then nothing moves
        await engine.reconcile_once(sync=False)
    assert runner.calls == []
    clock.advance(timedelta(seconds=3))
    await engine.settle()
    assert runner.calls == [("j", "x", 2)]
