"""STYLE rule 11 with Slack connected: once every card, request and reminder is in the
local Slack, a further pass on the same commit makes no Web API call and writes no row
(not even a card's record or an outbox delivery). The headless half, on both databases and
with a running agent, is tests/engine/test_idempotent_pass.py."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from pathlib import Path

from tests.engine.at_rest import eventually, every_row, jobs_in_every_state, row_changes
from tests.slack.support import ALEX, George

SECOND = timedelta(seconds=1)


async def quiet(george: George) -> None:
    """The publisher owes Slack nothing, and Slack owes George nothing."""
    assert george.surface.publisher is not None
    george.surface.publisher.wake()  # look again, even if nobody announced a change
    async with asyncio.timeout(30):
        await george.surface.publisher.settled()
    await george.idle()


async def test_a_pass_on_the_same_commit_makes_no_slack_calls_and_writes_no_rows(
    george: George, clock, tmp_path: Path
) -> None:
    engine = george.engine
    await jobs_in_every_state(engine, george.source, george.runner, clock)
    await quiet(george)
    assert "Succeeded" in george.headline("done") and "Failed" in george.headline("fails")
    assert george.approval("asks", "gate") is not None and george.approval("quorum", "vote") is not None
    assert f"<@{ALEX}> still waiting for your answer on remind" in george.thread_text("reminded")
    seen = len(george.slack.calls)
    url = f"sqlite:///{tmp_path / 'george.db'}"  # the engine's database (sqlite_store)
    at_rest = every_row(url)
    assert at_rest["slack_messages"] and not george.store.pending_outbox()

    for sync in (True, True, False):
        clock.advance(SECOND)  # a needless write of "now" shows as a changed row
        await engine.reconcile_once(sync=sync)
    george.source.snapshot = dataclasses.replace(george.source.snapshot)  # the same commit, read again
    clock.advance(SECOND)
    passes = engine.passes
    engine.wake(sync=True)  # and a pass of the engine's own loop
    await eventually(lambda: engine.passes > passes, what="a pass of the loop")
    await engine.reconcile_once(sync=False)  # one more, which starts when the loop's has ended
    await quiet(george)

    assert george.slack.calls[seen:] == []
    assert row_changes(at_rest, every_row(url)) == {}
