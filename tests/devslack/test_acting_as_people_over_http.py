"""The `/local/api/` interface: the whole state as JSON, and acting as people, over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from georgebot.devslack import LocalSlack, Message
from georgebot.errors import ConfigError
from tests.devslack.support import ALEX, GEORGE_CHANNEL, PAT, SAM, as_the_page


@pytest.fixture
async def http(slack: LocalSlack) -> AsyncIterator[aiohttp.ClientSession]:
    async with as_the_page(slack) as session:
        yield session


async def call(http: aiohttp.ClientSession, path: str, body: dict[str, Any] | None = None) -> (
    tuple[int, dict[str, Any]]
):
    if body is None:
        async with http.get(path) as response:
            return response.status, await response.json()
    async with http.post(path, json=body) as response:
        return response.status, await response.json()


async def test_the_state_holds_the_seeded_workspace(http: aiohttp.ClientSession) -> None:
    status, state = await call(http, "/local/api/state")
    assert status == 200
    assert state["team"] == {"id": "T0LOCAL", "name": "George Local", "domain": "george-local"}
    assert state["bot"] == {"user_id": "U0GEORGE", "bot_id": "B0GEORGE", "app_id": "A0GEORGE",
                            "name": "george", "real_name": "George"}
    assert [(u["id"], u["real_name"], u["note"]) for u in state["users"]] == [
        ("U0GEORGE", "George", ""), (ALEX, "Alex Kim", "approver"), (SAM, "Sam Lee", "approver"),
        (PAT, "Pat Doe", ""), ("U01LEE", "Lee Park", ""),
    ]
    assert state["usergroups"] == [
        {"id": "S0ITTEAM", "handle": "it-team", "name": "IT team", "users": [ALEX]}
    ]
    channels = {c["name"]: c for c in state["channels"]}
    assert list(channels) == ["george", "onboarding", "it", "security", "general"]
    assert "U0GEORGE" in channels["george"]["members"]
    assert "U0GEORGE" not in channels["onboarding"]["members"]
    assert all(ALEX in c["members"] for c in channels.values())
    assert state["ephemerals"] == {} and state["home"] == {}
    assert state["app"] == {"connections": 0, "pending_envelopes": 0}


async def test_messages_threads_and_reactions_show_in_state(
    http: aiohttp.ClientSession, slack: LocalSlack
) -> None:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    card = await client.chat_postMessage(channel=GEORGE_CHANNEL, text="card", blocks=[
        {"type": "header", "text": {"type": "plain_text", "text": "onboard-alice"}},
    ])

    status, posted = await call(http, "/local/api/messages", {
        "user": SAM, "channel": "#george", "text": "looks fine @alex, see #general",
        "thread_ts": card["ts"],
    })
    assert status == 200 and posted["ok"]
    assert posted["message"]["text"] == "looks fine <@U01ALEX>, see <#C0GENERAL|general>"
    status, _ = await call(http, "/local/api/reactions", {
        "user": ALEX, "channel": GEORGE_CHANNEL, "ts": card["ts"], "name": "white_check_mark",
    })
    assert status == 200
    await call(http, "/local/api/reactions", {
        "user": PAT, "channel": GEORGE_CHANNEL, "ts": card["ts"], "name": "eyes",
    })
    await call(http, "/local/api/reactions", {
        "user": PAT, "channel": GEORGE_CHANNEL, "ts": card["ts"], "name": "eyes", "remove": True,
    })

    _, state = await call(http, "/local/api/state")
    [message] = next(c for c in state["channels"] if c["id"] == GEORGE_CHANNEL)["messages"]
    assert message["ts"] == card["ts"] and message["bot_id"] == "B0GEORGE"
    assert message["blocks"][0]["type"] == "header"
    assert message["reactions"] == [{"name": "white_check_mark", "users": [ALEX], "count": 1}]
    assert message["reply_count"] == 1
    assert [r["user"] for r in message["replies"]] == [SAM]


async def test_a_slash_command_typed_in_the_composer_is_not_a_message(
    http: aiohttp.ClientSession, slack: LocalSlack
) -> None:
    status, answer = await call(http, "/local/api/messages", {
        "user": PAT, "channel": GEORGE_CHANNEL, "text": "/george status",
    })
    assert status == 200
    assert answer == {"ok": True, "command": "/george", "text": "status", "delivered": False}
    status, answer = await call(http, "/local/api/messages", {
        "user": PAT, "channel": GEORGE_CHANNEL, "text": "/deploy now",
    })
    _, state = await call(http, "/local/api/state")
    assert next(c for c in state["channels"] if c["id"] == GEORGE_CHANNEL)["messages"] == []
    notices = [e["text"] for e in state["ephemerals"][PAT]]
    assert notices[0] == '/george failed with the error "dispatch_failed"'
    assert notices[1].startswith("`/deploy` is not a valid command.")


async def test_bad_requests_say_what_is_wrong(http: aiohttp.ClientSession) -> None:
    assert await call(http, "/local/api/messages", {
        "user": "U0NOBODY", "channel": GEORGE_CHANNEL, "text": "hi",
    }) == (400, {"ok": False, "error": "user_not_found"})
    assert await call(http, "/local/api/messages", {"user": ALEX, "channel": GEORGE_CHANNEL}) == (
        400, {"ok": False, "error": "missing_text"}
    )
    assert await call(http, "/local/api/reactions", {
        "user": ALEX, "channel": GEORGE_CHANNEL, "ts": "1.000001", "name": "x",
    }) == (400, {"ok": False, "error": "message_not_found"})


async def test_faults_over_http(http: aiohttp.ClientSession, slack: LocalSlack) -> None:
    status, answer = await call(http, "/local/api/faults", {
        "rate_limit": {"method": "auth.test", "calls": 1, "retry_after": 3}, "disconnect": True,
    })
    assert (status, answer) == (200, {"ok": True, "disconnected": 0})
    async with http.post("/api/auth.test", headers={
        "Authorization": f"Bearer {slack.bot_token}",
    }) as response:
        assert response.status == 429 and response.headers["Retry-After"] == "3"
    _, calls = await call(http, "/local/api/calls")
    assert calls["calls"][-1]["method"] == "auth.test" and calls["calls"][-1]["status"] == 429


async def test_state_survives_a_restart_with_a_state_file(tmp_path: Path) -> None:
    path = tmp_path / "slack.json"
    async with LocalSlack(port=0, state_file=path) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        card = await client.chat_postMessage(channel=GEORGE_CHANNEL, text="card")
        await slack.react(ALEX, GEORGE_CHANNEL, card["ts"], "white_check_mark")
        await client.conversations_join(channel="C0ONBOARD")

    async with LocalSlack(port=0, state_file=path) as again:
        [message, *_] = again.messages(GEORGE_CHANNEL)
        assert (message.ts, message.text) == (card["ts"], "card")
        assert message.reactions == {"white_check_mark": [ALEX]}
        assert "U0GEORGE" in again.state.channels["C0ONBOARD"].members
        later = await again.post_as(ALEX, GEORGE_CHANNEL, "after the restart")
        assert isinstance(later, Message) and float(later.ts) > float(card["ts"])


async def test_an_unreadable_state_file_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "slack.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="delete it to start from the demo workspace"):
        await LocalSlack(port=0, state_file=path).start()
