"""Socket Mode delivery is at-least-once, as Slack's: unacknowledged events come back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from georgebot.devslack import LocalSlack
from tests.devslack.support import ALEX, GEORGE_CHANNEL


@pytest.fixture
async def quick_slack() -> AsyncIterator[LocalSlack]:
    async with LocalSlack(port=0, ack_timeout=0.05) as running:
        yield running


async def _connect(slack: LocalSlack, seen: list[SocketModeRequest], *, ack_from: int) -> (
    SocketModeClient
):
    """A raw SDK Socket Mode client that acks only deliveries with retry_attempt >= ack_from."""
    client = SocketModeClient(
        app_token=slack.app_token, web_client=AsyncWebClient(base_url=slack.api_url)
    )

    async def listen(client: SocketModeClient, request: SocketModeRequest) -> None:
        seen.append(request)
        if (request.retry_attempt or 0) >= ack_from:
            await client.send_socket_mode_response(
                SocketModeResponse(envelope_id=request.envelope_id)
            )

    client.socket_mode_request_listeners.append(listen)  # type: ignore[arg-type]
    await client.connect()
    await slack.wait_for(lambda: slack.connections == 1)
    return client


async def test_an_unacknowledged_event_is_redelivered_with_retry_attempt_1(
    slack: LocalSlack,
) -> None:
    seen: list[SocketModeRequest] = []
    slack.ack_timeout = 0.2
    client = await _connect(slack, seen, ack_from=1)
    try:
        await slack.post_as(ALEX, GEORGE_CHANNEL, "hello")
        await slack.wait_for(lambda: len(seen) == 2 and not slack.hub.pending())
    finally:
        await client.close()

    first, second = seen
    assert (first.type, first.retry_attempt, first.retry_reason) == ("events_api", 0, "")
    assert (second.retry_attempt, second.retry_reason) == (1, "timeout")
    assert second.envelope_id != first.envelope_id
    assert second.payload["event_id"] == first.payload["event_id"]
    assert second.payload["event"]["text"] == "hello"


async def test_slack_gives_up_after_three_retries(quick_slack: LocalSlack) -> None:
    seen: list[SocketModeRequest] = []
    client = await _connect(quick_slack, seen, ack_from=99)
    try:
        await quick_slack.post_as(ALEX, GEORGE_CHANNEL, "anyone?")
        await quick_slack.wait_for(lambda: quick_slack.hub.undelivered)
    finally:
        await client.close()

    assert [r.retry_attempt for r in seen] == [0, 1, 2, 3]
    assert len({r.payload["event_id"] for r in seen}) == 1


async def test_events_wait_while_no_app_is_connected(slack: LocalSlack) -> None:
    await slack.post_as(ALEX, GEORGE_CHANNEL, "said while George was away")
    assert slack.snapshot()["app"] == {"connections": 0, "pending_envelopes": 1}

    seen: list[SocketModeRequest] = []
    client = await _connect(slack, seen, ack_from=0)
    try:
        await slack.wait_for(lambda: seen and not slack.hub.pending())
    finally:
        await client.close()
    assert seen[0].payload["event"]["text"] == "said while George was away"


async def test_a_slash_command_without_a_connected_app_fails_at_once(slack: LocalSlack) -> None:
    await slack.post_as(ALEX, GEORGE_CHANNEL, "/george status")

    ephemeral = slack.last_ephemeral(ALEX)
    assert ephemeral is not None and ephemeral.sender == "slackbot"
    assert ephemeral.text == '/george failed with the error "dispatch_failed"'
    assert slack.hub.pending() == []
