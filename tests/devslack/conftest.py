"""Fixtures for the local Slack's own tests: a running emulator, an SDK client, a bolt app.

The bolt app is the real `AsyncApp` behind the real `AsyncSocketModeHandler`, connected with
`connect_async()` on the test's loop; tests register their listeners on `bolt.app` first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from georgebot.devslack import LocalSlack
from tests.devslack.support import Bolt


@pytest.fixture
async def slack() -> AsyncIterator[LocalSlack]:
    async with LocalSlack(port=0, ack_timeout=2.0) as running:
        yield running


@pytest.fixture
def client(slack: LocalSlack) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)


@pytest.fixture
async def bolt(slack: LocalSlack) -> AsyncIterator[Bolt]:
    web = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    app = AsyncApp(client=web)
    handler = AsyncSocketModeHandler(app, slack.app_token)
    yield Bolt(app, handler)
    # Let the SDK finish what it is handling, so none of its tasks outlives the test.
    await slack.wait_for(lambda: not slack.hub.pending())
    await handler.close_async()
    await slack.wait_for(lambda: slack.connections == 0)
