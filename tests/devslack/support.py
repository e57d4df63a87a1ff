"""Names of the demo workspace and the bolt app wrapper the local Slack's tests share."""

from __future__ import annotations

from dataclasses import dataclass

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
