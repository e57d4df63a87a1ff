"""Fixtures for the Slack tests: the local Slack, an engine on a fake Git source with a
scripted runner (tests/engine/harness.py), and George's Slack surface connected to the local
Slack over Socket Mode, with the engine's loop running so a wake acts at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import suppress

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from georgebot.config import Settings
from georgebot.devslack import LocalSlack
from georgebot.engine.service import Engine
from georgebot.slack.publisher import PublisherSettings
from georgebot.slack.transport import SlackSurface
from georgebot.store import Store
from tests.engine.harness import FakeSource, ScriptedRunner
from tests.slack.support import SEED, George

FAST = PublisherSettings(min_interval=0.0, updates_per_minute=100_000, burst=100_000,
                         outbox_poll=0.05, retry_delay=0.05, connection_delay=0.05)


log = logging.getLogger(__name__)


@pytest.fixture
async def slack() -> AsyncIterator[LocalSlack]:
    async with LocalSlack(port=0, seed=SEED, ack_timeout=2.0) as running:
        yield running


@pytest.fixture
async def client(slack: LocalSlack) -> AsyncIterator[AsyncWebClient]:
    """A plain Web API client (no retry handlers: the publisher's own patience is tested)."""
    async with aiohttp.ClientSession() as session:
        yield AsyncWebClient(token=slack.bot_token, base_url=slack.api_url, session=session)


def socket_settings(slack: LocalSlack) -> Settings:
    return Settings(slack_bot_token=slack.bot_token, slack_app_token=slack.app_token,
                    slack_api_url=slack.api_url)


@pytest.fixture
async def george(slack: LocalSlack, engine: Engine, sqlite_store: Store, source: FakeSource,
                 runner: ScriptedRunner) -> AsyncIterator[George]:
    surface = SlackSurface(socket_settings(slack), engine, publisher_settings=FAST)
    await surface.start()
    await slack.wait_for(lambda: slack.connections == 1)
    loop = asyncio.create_task(engine.run_forever(), name="engine-loop")
    connected = George(slack, engine, sqlite_store, source, runner, surface)
    try:
        yield connected
        try:  # what the test set going finishes; what hangs is cancelled by the close below
            async with asyncio.timeout(10):
                await connected.idle()
        except TimeoutError:
            log.warning("the Slack surface was still handling events 10 s after the test")
    finally:
        await connected.surface.close()  # the test may have started another
        await surface.close()
        loop.cancel()
        with suppress(asyncio.CancelledError):
            await loop
