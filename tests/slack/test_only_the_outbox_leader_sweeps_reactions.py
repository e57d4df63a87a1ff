"""Georges sharing a workspace read its reactions once, not once each: the reaction sweep asks
Slack (`reactions.get`) only while its George leads the workspace's outbox, and soon after
it takes the lead, and on any George soon after a reaction reached it on a message it does not
know yet. Against the local Slack, on a ticker the test moves by hand."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from georgebot.devslack import LocalSlack
from georgebot.engine.lifecycle import Verdict
from georgebot.engine.service import Engine
from georgebot.slack.directory import Directory
from georgebot.slack.publisher import CardPublisher
from georgebot.slack.sweep import ReactionSweep
from georgebot.store import Store
from tests.engine.harness import FakeSource, job, step
from tests.slack.conftest import FAST
from tests.slack.support import ALEX, ManualTicker

INTERVAL, SOON = 120.0, 3.0


@pytest.fixture
async def publisher(engine: Engine, client: AsyncWebClient) -> AsyncIterator[CardPublisher]:
    posting = CardPublisher(engine, client, settings=FAST)
    await posting.start()
    yield posting
    await posting.close()


def reads(slack: LocalSlack) -> int:
    return [c.method for c in slack.calls].count("reactions.get")


async def test_the_sweep_asks_slack_only_while_its_george_leads_the_outbox(
        engine: Engine, publisher: CardPublisher, client: AsyncWebClient, slack: LocalSlack,
        source: FakeSource, sqlite_store: Store) -> None:
    source.commit(job("j", step("gate", ask={}), step("deploy", needs=("gate",))))
    await engine.settle()
    await publisher.settled()
    run = sqlite_store.load_runs(["j"])[0]
    request = sqlite_store.slack_message(run.id, "approval", "gate")
    assert request is not None
    message = slack.state.message(request.channel_id, request.ts)
    assert message is not None
    slack.state.add_reaction(message, "white_check_mark", ALEX)  # its event never arrived

    leading, told = False, []

    async def tell(verdict: Verdict, channel: str, root: str) -> None:
        told.append(verdict.decision)

    ticker = ManualTicker()
    sweep = ReactionSweep(engine, client, directory=Directory(client), tell=tell,
                          approve=("white_check_mark",), reject=("x",), interval=INTERVAL, soon=SOON,
                          ticker=ticker, leading=lambda: leading)
    sweep.start()
    try:
        assert await ticker.parked() == ticker.now() + SOON  # at start: not leading, looks again soon
        assert (reads(slack), sweep.sweeps, told) == (0, 0, [])

        leading = True  # it takes the lead (the leader stopped)
        ticker.advance(SOON)
        assert await ticker.parked() == ticker.now() + INTERVAL  # swept; the next one in an interval
        assert (reads(slack), sweep.sweeps, len(told)) == (1, 1, 1)

        leading = False  # another George leads now
        ticker.advance(INTERVAL)
        assert await ticker.parked() == ticker.now() + SOON
        assert (reads(slack), sweep.sweeps) == (1, 1)

        sweep.soon()  # a reaction on a message it does not know reached this George: it looks
        ticker.advance(SOON)
        await ticker.parked()
        assert sweep.sweeps == 2  # (the request it counted earlier is closed: nothing to read)
    finally:
        await sweep.close()
