"""How George connects: which settings choose Socket Mode or HTTP mode, signed HTTP requests,
the app manifest against the listeners the app really has, and readiness."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

from georgebot import errors
from georgebot.config import Settings
from georgebot.devslack import LocalSlack
from georgebot.engine.service import Engine
from georgebot.slack import EVENTS_PATH, SlackSurface, slack_app_manifest
from georgebot.slack.manifest import SUBSCRIPTIONS
from georgebot.store import Store
from tests.engine.harness import job, step
from tests.slack.conftest import FAST
from tests.slack.support import ALEX, OPS, George

SECRET = "a-signing-secret"


def test_a_bot_token_alone_says_what_else_to_set(engine: Engine, sqlite_store: Store) -> None:
    with pytest.raises(errors.ConfigError) as caught:
        SlackSurface(Settings(slack_bot_token="xoxb-1"), engine)
    assert "SLACK_APP_TOKEN" in str(caught.value) and "SLACK_SIGNING_SECRET" in str(caught.value)


async def test_a_refused_bot_token_is_a_configuration_error(
        slack: LocalSlack, engine: Engine, sqlite_store: Store) -> None:
    surface = SlackSurface(Settings(slack_bot_token="not-a-token", slack_app_token=slack.app_token,
                                    slack_api_url=slack.api_url), engine)
    with pytest.raises(errors.ConfigError, match="Slack refused SLACK_BOT_TOKEN"):
        await surface.start()
    assert not surface.ready


async def test_socket_mode_is_ready_once_connected_and_not_after_close(george: George) -> None:
    assert george.surface.mode == "socket" and george.surface.ready
    assert george.surface.web_routes() == []


@pytest.fixture
async def http(slack: LocalSlack, engine: Engine, sqlite_store: Store) -> AsyncIterator[TestClient]:
    settings = Settings(slack_bot_token=slack.bot_token, slack_signing_secret=SECRET,
                        slack_api_url=slack.api_url)
    surface = SlackSurface(settings, engine, publisher_settings=FAST)
    await surface.start()
    app = web.Application()
    app.add_routes(surface.web_routes())
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        assert surface.mode == "http" and surface.ready
        yield client
        assert surface.listeners is not None
        await surface.listeners.idle()
    finally:
        await client.close()
        await surface.close()


def signed(body: str, *, secret: str = SECRET, age: int = 0,
           content_type: str = "application/json") -> dict[str, str]:
    stamp = str(int(time.time()) - age)
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    assert signature is not None
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature,
            "Content-Type": content_type}


def event(type_: str, **fields: object) -> str:
    return json.dumps({"type": "event_callback", "event_id": f"Ev{type_}", "team_id": "T0LOCAL",
                       "api_app_id": "A0GEORGE", "event": {"type": type_, **fields}})


async def test_http_mode_accepts_a_signed_event_and_acts_on_it(
        http: TestClient, slack: LocalSlack) -> None:
    body = event("app_home_opened", user=ALEX, channel="D01ALEX", tab="home")

    answer = await http.post(EVENTS_PATH, data=body, headers=signed(body))

    assert answer.status == 200
    await slack.wait_for(lambda: slack.home_view(ALEX))


async def test_http_mode_answers_a_signed_slash_command(http: TestClient, slack: LocalSlack) -> None:
    command = await slack.slash(ALEX, OPS, "/george help")  # no Socket Mode: not delivered
    body = urlencode({**command.payload, "text": "help"})

    answer = await http.post(EVENTS_PATH, data=body, headers=signed(
        body, content_type="application/x-www-form-urlencoded"))

    assert answer.status == 200
    await slack.wait_for(lambda: any("/george status JOB" in (e.text or "") or e.blocks
                                     for e in slack.ephemerals(ALEX) if e.sender == "app"))


@pytest.mark.parametrize("headers", [
    pytest.param(lambda body: signed(body, secret="another-secret"), id="wrong secret"),
    pytest.param(lambda body: signed(body, age=600), id="too old"),
    pytest.param(lambda body: {"Content-Type": "application/json"}, id="unsigned"),
])
async def test_http_mode_rejects_a_badly_signed_request(http: TestClient, slack: LocalSlack,
                                                        headers) -> None:
    body = event("app_home_opened", user=ALEX, channel="D01ALEX", tab="home")

    answer = await http.post(EVENTS_PATH, data=body, headers=headers(body))

    assert answer.status == 401
    assert slack.home_view(ALEX) is None


async def test_every_subscribed_event_and_the_command_have_a_listener(george: George) -> None:
    app = george.surface.app
    assert app is not None
    manifest = slack_app_manifest()
    subscribed = manifest["settings"]["event_subscriptions"]["bot_events"]
    types = {name: type_ for type_, name in SUBSCRIPTIONS.items()}
    samples = {
        "app_mention": {"user": ALEX, "text": "<@U0GEORGE> help", "channel": OPS, "ts": "1.1"},
        "reaction_added": {"user": ALEX, "reaction": "eyes",
                           "item": {"type": "message", "channel": OPS, "ts": "1.1"}},
        "reaction_removed": {"user": ALEX, "reaction": "x",
                             "item": {"type": "message", "channel": OPS, "ts": "1.1"}},
        "message": {"user": ALEX, "text": "hi", "channel": OPS, "ts": "1.2"},
        "app_home_opened": {"user": ALEX, "channel": "D01ALEX", "tab": "messages"},
    }
    for name in subscribed:
        type_ = types.get(name, name)
        body = json.loads(event(type_, **samples[type_]))
        answer = await app.async_dispatch(AsyncBoltRequest(body=body, mode="socket_mode"))
        assert answer.status == 200, name
    [command] = manifest["features"]["slash_commands"]
    body = {"command": command["command"], "text": "help", "user_id": ALEX, "channel_id": OPS,
            "response_url": f"{george.slack.url}/nowhere"}
    answer = await app.async_dispatch(AsyncBoltRequest(body=body, mode="socket_mode"))
    assert answer.status == 200
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert set(manifest["oauth_config"]["scopes"]["bot"]) >= {"chat:write", "commands"}
    await george.surface.listeners.idle()


async def test_the_manifest_for_http_mode_points_slack_at_the_events_route() -> None:
    manifest = slack_app_manifest(request_url="https://george.example/slack/events")
    assert manifest["settings"]["socket_mode_enabled"] is False
    assert manifest["settings"]["event_subscriptions"]["request_url"].endswith(EVENTS_PATH)
    assert manifest["features"]["slash_commands"][0]["url"].endswith(EVENTS_PATH)


async def test_a_fifty_step_job_card_is_accepted_by_slack(george: George) -> None:
    george.commit(job("big", step("s00"),
                      *(step(f"s{i:02}", needs=(f"s{i - 1:02}",)) for i in range(1, 50))))
    await george.until(lambda: "big — Succeeded" in george.card_text("big"))
    assert ":white_check_mark: 50 steps succeeded" in george.card_text("big")
    assert not [c for c in george.slack.calls if c.status != 200]
