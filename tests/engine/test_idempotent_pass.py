"""STYLE rule 11, the rows half: once jobs are at rest, a pass on the same commit writes no
row to any table, whichever way the pass comes (the loop, a re-read of the same commit, the
first pass of another process). The Slack half is tests/slack/test_idempotent_pass.py."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from pathlib import Path

from georgebot.engine.service import Engine
from georgebot.model.status import JobStatus, StepStatus
from georgebot.store import Store
from tests.engine.at_rest import GIT_ISSUES, eventually, every_row, jobs_in_every_state, row_changes
from tests.engine.harness import FakeSource, ScriptedRunner, job, make_engine, step

SECOND = timedelta(seconds=1)
TABLES = {
    "job_runs",
    "step_runs",
    "events",
    "outbox",
    "context",
    "votes",
    "slack_messages",
    "usage",
    "revisions",
}


async def test_a_pass_on_the_same_commit_writes_no_rows(
    store: Store,
    other_store: Store,
    database_url: str,
    source: FakeSource,
    runner: ScriptedRunner,
    clock,
    tmp_path: Path,
    engines: list[Engine],
) -> None:
    # An hour's lease: the renewer (every lease/3 of real time) stays out of the way.
    engine = make_engine(store, source, runner, clock, tmp_path / "home", lease=timedelta(hours=1))
    engines.append(engine)
    await engine.start()
    jobs = await jobs_in_every_state(engine, source, runner, clock)
    gate = runner.gates["slow"] = asyncio.Event()  # and one step whose agent is running
    source.commit(*jobs, job("busy", step("slow")), **GIT_ISSUES, message="busy")
    await engine.reconcile_once()
    await eventually(lambda: ("busy", "slow", 1) in runner.calls, what="the busy agent running")

    at_rest = every_row(database_url)
    assert set(at_rest) >= TABLES
    assert {r.status for r in store.load_runs()} == set(JobStatus) - {JobStatus.PENDING}
    assert {s.status for r in store.load_runs() for s in r.steps} == set(StepStatus) - {StepStatus.PENDING}
    assert all(at_rest[t] for t in TABLES - {"slack_messages", "usage"})

    for sync in (True, True, True, False):
        clock.advance(SECOND)  # a needless write of "now" shows as a changed row
        await engine.reconcile_once(sync=sync)
    assert row_changes(at_rest, every_row(database_url)) == {}

    source.snapshot = dataclasses.replace(source.snapshot)  # the same commit, read again
    clock.advance(SECOND)
    await engine.reconcile_once()
    assert row_changes(at_rest, every_row(database_url)) == {}

    other = make_engine(other_store, source, runner, clock, tmp_path / "other", lease=timedelta(hours=1))
    engines.append(other)  # another process starts on the same commit
    await other.start()
    for _ in range(2):
        clock.advance(SECOND)
        await other.reconcile_once()
    assert other.supervisor.count == 0
    assert row_changes(at_rest, every_row(database_url)) == {}

    gate.set()
    await engine.settle()
    assert store.load_runs(["busy"])[0].status is JobStatus.SUCCEEDED
