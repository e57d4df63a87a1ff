"""A job's card goes to the channel its manifest names. Connected to the local Slack, George
creates a channel that does not exist yet (as a developer's own manifests name their own
channels); with a real Slack it creates nothing and says which channel is missing and that
George must be invited there."""

from __future__ import annotations

import logging

import pytest

from georgebot.slack.transport import SlackSurface
from tests.engine.harness import job, step
from tests.slack.conftest import FAST, socket_settings
from tests.slack.support import ALEX, George, cards, text_of


async def local(george: George) -> George:
    """The same George, told it talks to the local Slack (as runtime.py does without tokens)."""
    await george.surface.close()
    george.surface = SlackSurface(socket_settings(george.slack), george.engine,
                                  publisher_settings=FAST, local=True)
    await george.surface.start()
    return george


async def test_in_the_local_slack_a_channel_a_manifest_names_is_created_and_gets_the_card(
        george: George) -> None:
    george = await local(george)
    george.commit(job("j", step("build"), step("gate", ask={"channel": "#payroll-approvals"},
                                                 needs=("build",)), channel="#payroll"))

    card = await george.until(lambda: george.card("j"))
    request = await george.until(lambda: george.approval("j", "gate"))

    channels = {c["name"]: c for c in george.slack.snapshot()["channels"]}
    assert card.channel == channels["payroll"]["id"]
    assert request.channel == channels["payroll-approvals"]["id"]
    assert "ok to gate?" in text_of(request)
    assert ALEX in channels["payroll"]["members"]  # the page's people can react there
    assert [c.ts for c in cards(george.slack, "payroll")] == [card.ts]


async def test_with_a_real_slack_a_missing_channel_is_named_with_what_to_do(
        george: George, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "georgebot.slack")
    george.commit(job("j", step("build"), channel="#payroll"))

    await george.until(lambda: "no public channel named #payroll" in caplog.text)

    assert "invite George there (/invite @George)" in caplog.text
    assert "payroll" not in {c["name"] for c in george.slack.snapshot()["channels"]}
    assert george.card("j") is None
    assert not [c for c in george.slack.api.calls if c.method == "conversations.create"]
