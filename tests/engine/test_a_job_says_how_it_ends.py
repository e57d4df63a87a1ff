"""A job says in its card's thread when it fails, is blocked or stalls. A condition that no
longer holds is cleared, with its event: a job whose manifest was broken
(`InvalidSpec`) and is then fixed by a commit that also changes it loses the condition, so
its card stops saying the file is broken."""

from __future__ import annotations

from georgebot.engine.service import Engine
from georgebot.model.status import Reason
from georgebot.store import Store
from tests.engine.harness import FakeSource, job, step


async def test_a_fix_that_also_changes_the_job_clears_invalid_spec(
    engine: Engine, source: FakeSource, sqlite_store: Store
) -> None:
    source.commit(job("j", step("a", ask={})))  # waits: the run stays active
    await engine.settle()
    source.commit(invalid={"j": "unknown template `onboard-employe`"}, message="typo")
    await engine.settle()
    assert sqlite_store.load_runs(["j"])[0].condition(Reason.INVALID_SPEC) is not None

    source.commit(job("j", step("a", ask={}), step("b", needs=("a",))), message="fixed, and a step more")
    await engine.settle()
    run = sqlite_store.load_runs(["j"])[0]
    assert run.condition(Reason.INVALID_SPEC) is None
    assert "InvalidSpec=False" in [e.reason for e in sqlite_store.events("j")]


async def test_a_job_that_fails_or_stalls_says_so_in_its_thread_once_each(
    engine: Engine, source: FakeSource, runner, sqlite_store: Store, clock
) -> None:
    from datetime import timedelta

    from tests.engine.harness import fail

    runner.on("deploy", fail("exit 2: no space left"))
    source.commit(job("broken", step("deploy", retries=0)), job("slow", step("gate", ask={})))
    await engine.settle()
    clock.advance(timedelta(days=8))  # past the default deadline of 7 days
    await engine.settle()
    await engine.settle()
    said = [(m.text, m.thread_of_card) for m in sqlite_store.pending_outbox() if m.kind == "ended"]
    assert said == [
        (":x: *broken* failed: deploy failed: exit 2: no space left", True),
        (":hourglass: *broken* has made no progress for 7d: deploy failed: exit 2: no space left", True),
        (":hourglass: *slow* has made no progress for 7d: gate waits for approval by U01ALEX", True),
    ]
