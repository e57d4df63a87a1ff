"""A Slack event is handled once by all the Georges sharing a database, however often Slack
delivers it and to whichever George: a repeat is acknowledged and dropped, because the first
delivery is recorded in the database (SQLite, and PostgreSQL when available). Each George is
an engine with its own connection and a Slack surface connected to the local Slack, which
deals envelopes out to the connected Georges in turn, as Slack does."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from datetime import timedelta
from pathlib import Path

import pytest

from georgebot.devslack import LocalSlack, Message
from georgebot.engine.ports import Clock
from georgebot.engine.service import Engine, EngineSettings
from georgebot.slack.transport import SlackSurface
from georgebot.store import Store
from tests.engine.at_rest import eventually
from tests.engine.harness import FakeSource, ScriptedRunner, job, step
from tests.slack.conftest import FAST, socket_settings
from tests.slack.support import PAT, George

APP = "georgebot.slack.app"


@asynccontextmanager
async def connected(slack: LocalSlack, store: Store, source: FakeSource, clock: Clock, home: Path,
                    name: str) -> AsyncIterator[George]:
    """One George: its engine on `store`, its loop running, its Slack surface connected."""
    runner = ScriptedRunner()
    engine = Engine(EngineSettings(home=home / name, lease=timedelta(seconds=10)), store=store,
                    source=source, runner=runner, clock=clock, owner=name)
    surface = SlackSurface(socket_settings(slack), engine, publisher_settings=FAST)
    await engine.start()
    loop = asyncio.create_task(engine.run_forever(), name=f"engine-loop:{name}")
    try:
        await surface.start()
        george = George(slack, engine, store, source, runner, surface)
        yield george
        async with asyncio.timeout(10):
            await george.idle()
    finally:
        await surface.close()
        loop.cancel()
        with suppress(asyncio.CancelledError):
            await loop
        await engine.close()


@pytest.fixture
async def georges(slack: LocalSlack, store: Store, other_store: Store, source: FakeSource, clock: Clock,
                  tmp_path: Path) -> AsyncIterator[list[George]]:
    """Two Georges on one database and one workspace. The first leads (it posts the cards);
    the second only hears what Slack deals it."""
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(connected(slack, store, source, clock, tmp_path, "first"))
        await slack.wait_for(lambda: slack.connections == 1)
        first.engine.wake(sync=True)
        await eventually(lambda: first.engine.leading and first.surface.leading, what="leading")
        second = await stack.enter_async_context(
            connected(slack, other_store, source, clock, tmp_path, "second"))
        await slack.wait_for(lambda: slack.connections == 2)
        yield [first, second]


@pytest.fixture
async def george(slack: LocalSlack, store: Store, source: FakeSource, clock: Clock,
                 tmp_path: Path) -> AsyncIterator[George]:
    async with connected(slack, store, source, clock, tmp_path, "only") as only:
        await slack.wait_for(lambda: slack.connections == 1)
        yield only


async def a_card_to_reply_to(george: George) -> int:
    george.commit(job("j", step("gate", ask={})))
    await george.until(lambda: george.approval("j", "gate"))
    return george.run("j").id


def envelope_of(slack: LocalSlack, message: Message) -> dict[str, object]:
    """The payload Slack delivered for a posted message (what it sends again on a retry)."""
    return next(e["payload"] for e in slack.hub.envelopes
                if e["payload"].get("event", {}).get("ts") == message.ts)


def context_of(george: George, run_id: int) -> list[tuple[str | None, str]]:
    return [(c.author, c.text) for c in george.store.context(run_id) if c.role == "user"]


async def test_an_event_dealt_to_two_georges_is_handled_by_one(
        georges: list[George], slack: LocalSlack, caplog: pytest.LogCaptureFixture) -> None:
    first = georges[0]  # it posted the card; the second hears only what Slack deals it
    run_id = await a_card_to_reply_to(first)

    with caplog.at_level(logging.INFO, logger=APP):
        reply = await first.reply(PAT, "j", "the laptop is a 14-inch one")  # dealt to one George
        again = slack.hub.deliver("events_api", envelope_of(slack, reply))  # Slack's retry: the other
        for george in georges:
            await george.idle()

    assert again.acked
    assert context_of(first, run_id) == [(PAT, "the laptop is a 14-inch one")]
    assert [r.message for r in caplog.records if "delivered again" in r.message] == [
        f"event {envelope_of(slack, reply)['event_id']} delivered again; acknowledged and dropped"]


async def test_an_event_delivered_twice_to_one_george_is_handled_once(
        george: George, slack: LocalSlack) -> None:
    run_id = await a_card_to_reply_to(george)

    reply = await george.reply(PAT, "j", "use the spare desk")
    await george.idle()
    again = slack.hub.deliver("events_api", envelope_of(slack, reply))
    await george.idle()

    assert again.acked
    assert context_of(george, run_id) == [(PAT, "use the spare desk")]
