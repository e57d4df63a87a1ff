"""What the tests of idempotent passes and leases share: a poll for what no event announces,
jobs brought to every state a pass must leave as it is, and every row of the database, to
show that something wrote none."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import sqlalchemy as sa

from georgebot import errors
from georgebot.engine.ports import ApprovalRequest, StepResult, StepTask, Wait
from georgebot.engine.service import Engine
from georgebot.model.rendered import RenderedJob
from tests.engine.harness import FakeSource, ScriptedRunner, decide, fail, job, step

T = TypeVar("T")
Rows = dict[str, list[tuple[Any, ...]]]


async def eventually(predicate: Callable[[], T], *, what: str, within: float = 30.0) -> T:
    """Polls `predicate` until it holds, for what no event announces (an agent started, a pass
    of the engine's loop). The deadline only ever fails a test, never passes one."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not (value := predicate()):
        if loop.time() > deadline:
            raise AssertionError(f"still not {what} after {within}s")
        await asyncio.sleep(0.01)
    return value


def _asks_which_team(task: StepTask) -> StepResult:
    return Wait(
        ApprovalRequest(
            task.job.name, task.step.name, task.channel, "Which team?", ("U01ALEX",), 1, kind="question"
        )
    )


GIT_ISSUES: dict[str, Any] = {
    "invalid": {"later": "spec.steps[0].ask: approvers is required"},
    "broken_files": frozenset({"manifests/typo.yaml"}),
}
"""What is wrong in Git at the last commit of `jobs_in_every_state`; commit it again with
any further commit, so those two jobs stay as they are."""


async def jobs_in_every_state(
    engine: Engine, source: FakeSource, runner: ScriptedRunner, clock: Any
) -> tuple[RenderedJob, ...]:
    """Brings jobs to every state a pass must leave as it is, through three commits and
    eight days: succeeded, cancelled (removed from Git), waiting on an approval (one vote of a
    quorum of two counted), on a question, and reminded, failed, blocked on a capability and
    on a missing agent, retrying later, stalled, and kept while its manifest is invalid or its
    file does not parse. Returns the jobs of the last commit (commit them with `GIT_ISSUES`)."""
    runner.on("broken", fail())
    runner.on("create", errors.CapabilityMissing("shell: tools/create"))
    runner.on("think", _asks_which_team)
    runner.on("flaky", fail())
    lasting = (
        job("done", step("build")),
        job("asks", step("gate", ask={})),
        job("quorum", step("vote", ask={"approvers": ["U01ALEX", "U01SAM"], "quorum": 2})),
        job("question", step("think", instructions="Welcome them", done_when="posted")),
        job("fails", step("broken", retries=0)),
        job("blocked", step("create")),
        job("orphan", step("lost", agent="nobody")),
    )
    source.commit(
        *lasting,
        job("removed", step("short", ask={})),
        job("later", step("hold", ask={})),
        job("typo", step("wait", ask={})),
        message="first",
    )
    await engine.settle()
    await decide(engine, "quorum", "vote", user="U01ALEX", approve=True)
    clock.advance(timedelta(days=8))  # everything unfinished is Stalled
    await engine.settle()
    reminded = job("reminded", step("remind", ask={}, timeout="1h"))
    source.commit(*lasting, reminded, **GIT_ISSUES, message="second")
    await engine.settle()
    clock.advance(timedelta(hours=1))  # the approvers of `remind` are reminded
    await engine.settle()
    final = (*lasting, reminded, job("retrying", step("flaky", retries=2, backoff="5m")))
    source.commit(*final, **GIT_ISSUES, message="third")
    await engine.settle()
    return final


def every_row(url: str) -> Rows:
    """Every row of every table in the database at `url`, by table, in primary key order. Of
    a lease, who holds what: its holder renews it as time passes, whatever a pass does."""
    engine = sa.create_engine(url)
    try:
        tables = sa.MetaData()
        tables.reflect(bind=engine)
        with engine.connect() as conn:
            return {
                name: [tuple(r) for r in conn.execute(
                    sa.select(*([t.c.name, t.c.holder] if name == "leases" else [t]))
                    .order_by(*t.primary_key.columns))]
                for name, t in tables.tables.items()
            }
    finally:
        engine.dispose()


def row_changes(before: Rows, after: Rows) -> dict[str, dict[str, list[tuple[Any, ...]]]]:
    """By table, the rows only `after` has (new or changed) and the rows only `before` had."""
    out: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name, []), after.get(name, [])
        if old != new:
            out[name] = {"now": [r for r in new if r not in old], "was": [r for r in old if r not in new]}
    return out
