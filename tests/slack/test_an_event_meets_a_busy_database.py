"""An event whose delivery cannot be recorded is handled anyway (at least once; what it does
is guarded where it counts): while another process holds SQLite's write lock, Slack is
acknowledged in time rather than when the lock is gone, and a database that refuses the
record is said once in the log, not once an event. The app is built as `SlackSurface` builds
it, on the engine's SQLite database, and is handed payloads as Socket Mode hands them."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from georgebot.devslack import LocalSlack
from georgebot.engine.service import Engine
from georgebot.slack.app import RECORD_WITHIN, build_app
from georgebot.slack.directory import Directory
from georgebot.slack.listeners import Listeners
from georgebot.store import Store, open_database
from tests.engine.harness import FakeSource, ScriptedRunner, make_engine
from tests.engine.test_a_busy_database_loses_nothing import Lock
from tests.slack.conftest import socket_settings
from tests.slack.support import ALEX, SAM, ManualTicker

APP = "georgebot.slack.app"


def home_opened(user: str, event_id: str) -> AsyncBoltRequest:
    body = {"type": "event_callback", "event_id": event_id, "team_id": "T0LOCAL", "api_app_id": "A0GEORGE",
            "event": {"type": "app_home_opened", "user": user, "channel": f"D{user}", "tab": "home"}}
    return AsyncBoltRequest(body=json.dumps(body), mode="socket_mode")


class Heard:
    """George's app for `engine`, with the listeners it hands work to."""

    def __init__(self, engine: Engine, slack: LocalSlack, client: AsyncWebClient,
                 ticker: ManualTicker) -> None:
        self.listeners = Listeners(socket_settings(slack), engine, client, directory=Directory(client))
        self.app: AsyncApp = build_app(self.listeners, client, ticker=ticker)

    async def dispatch(self, request: AsyncBoltRequest) -> int:
        answer = await self.app.async_dispatch(request)
        return answer.status


@pytest.fixture
def ticker() -> ManualTicker:
    return ManualTicker()


@pytest.fixture
async def heard(engine: Engine, slack: LocalSlack, client: AsyncWebClient,
                ticker: ManualTicker) -> AsyncIterator[Heard]:
    app = Heard(engine, slack, client, ticker)
    yield app
    await app.listeners.close()


def home_publishes(slack: LocalSlack) -> int:
    return len([c for c in slack.calls if c.method == "views.publish" and c.status == 200])


async def test_an_event_is_acknowledged_in_time_while_another_process_holds_the_lock(
        heard: Heard, slack: LocalSlack, ticker: ManualTicker, tmp_path: Path) -> None:
    lock = Lock(tmp_path / "george.db")  # the engine's database; its writes wait up to 5 s
    try:
        answer = asyncio.create_task(heard.dispatch(home_opened(ALEX, "EvHOME1")))
        assert await ticker.parked() == ticker.now() + RECORD_WITHIN  # no longer for the record
        ticker.advance(RECORD_WITHIN)
        async with asyncio.timeout(1):
            assert await answer == 200
        assert slack.home_view(ALEX) is None  # handled after the lock: its read waits its turn
    finally:
        lock.release()
    await heard.listeners.idle()
    assert slack.home_view(ALEX) is not None


@pytest.fixture
def impatient(tmp_path: Path) -> Iterator[Store]:
    """A database that gives up on another writer's lock at once."""
    db = open_database(f"sqlite:///{tmp_path / 'impatient.db'}", busy_ms=50)
    yield Store(db)
    db.close()


async def test_events_are_handled_while_the_database_refuses_their_record_and_that_is_said_once(
        impatient: Store, slack: LocalSlack, client: AsyncWebClient, clock: object, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine(impatient, FakeSource(), ScriptedRunner(), clock, tmp_path / "home")
    await engine.start()
    heard = Heard(engine, slack, client, ManualTicker())
    try:
        with caplog.at_level(logging.DEBUG, logger=APP):
            lock = Lock(tmp_path / "impatient.db")
            try:
                assert await heard.dispatch(home_opened(ALEX, "EvHOME1")) == 200
                assert await heard.dispatch(home_opened(SAM, "EvHOME2")) == 200
                await heard.listeners.idle()
            finally:
                lock.release()
            unchecked = [r for r in caplog.records if "could not record Slack event" in r.message]
            assert [r.levelno for r in unchecked] == [logging.INFO]
            assert "EvHOME1" in unchecked[0].message and "not writable" in unchecked[0].message
            assert slack.home_view(ALEX) is not None and slack.home_view(SAM) is not None

            published = home_publishes(slack)
            assert await heard.dispatch(home_opened(ALEX, "EvHOME1")) == 200  # never recorded: handled
            assert await heard.dispatch(home_opened(ALEX, "EvHOME1")) == 200  # recorded now: dropped
            await heard.listeners.idle()
            assert home_publishes(slack) == published + 1
            assert any("records Slack events again" in r.message for r in caplog.records)
    finally:
        await heard.listeners.close()
        await engine.close()
