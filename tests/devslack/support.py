"""Names of the demo workspace, the bolt app wrapper and the page's HTTP client the local
Slack's tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from georgebot.devslack import LocalSlack

ALEX, SAM, PAT, LEE = "U01ALEX", "U01SAM", "U01PAT", "U01LEE"
GEORGE_CHANNEL, ONBOARDING, GENERAL = "C0GEORGE", "C0ONBOARD", "C0GENERAL"


@dataclass
class Bolt:
    app: AsyncApp
    handler: AsyncSocketModeHandler

    async def connect(self, slack: LocalSlack) -> None:
        await self.handler.connect_async()
        await slack.wait_for(lambda: slack.connections == 1)


@asynccontextmanager
async def as_the_page(slack: LocalSlack) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client that loads the page first, as a browser does, and so holds its token
    (the cookie; `unsafe=True` lets aiohttp keep a cookie from an IP address)."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base_url=slack.url, cookie_jar=jar) as session:
        async with session.get("/") as page:
            assert page.status == 200
        yield session
