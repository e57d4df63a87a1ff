"""HTTP mode through George's own server, as a platform (the Procfile) runs it: Slack's
signed requests to `/slack/events` on PORT are answered; unsigned or forged ones are refused."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import suppress
from pathlib import Path

import aiohttp
import pytest
from slack_sdk.signature import SignatureVerifier

from georgebot.config import Settings
from georgebot.devslack import LocalSlack
from georgebot.runtime import run_bot
from tests.e2e.conftest import MakeRepo
from tests.e2e.running import free_port

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
JOB = """\
apiVersion: george/v1
kind: TaskTemplate
metadata: {name: nothing}
spec:
  steps: [{name: wait, ask: {message: "Ready?", approvers: [U01ALEX]}}]
---
apiVersion: george/v1
kind: Job
metadata: {name: http-job}
spec: {template: nothing}
"""


@pytest.fixture
async def george(make_repo: MakeRepo, tmp_path: Path) -> AsyncIterator[tuple[str, LocalSlack]]:
    repo = make_repo({"manifests/job.yaml": JOB})
    async with LocalSlack(port=0) as slack:
        port = free_port()
        settings = Settings(repo=str(repo), database_url=f"sqlite:///{tmp_path / 'george.db'}",
                            home=tmp_path / "home", port=port, slack_bot_token=slack.bot_token,
                            slack_signing_secret=SECRET, slack_api_url=slack.api_url)
        stop = asyncio.Event()
        ready = asyncio.Event()
        bot = asyncio.create_task(run_bot(settings, announce=lambda _: ready.set(), stop=stop))
        await asyncio.wait_for(ready.wait(), 30)
        try:
            yield f"http://127.0.0.1:{port}", slack
        finally:
            stop.set()
            with suppress(asyncio.CancelledError):
                await asyncio.wait_for(bot, 30)


def signed(body: str, secret: str = SECRET) -> dict[str, str]:
    stamp = str(int(time.time()))
    return {"X-Slack-Request-Timestamp": stamp, "Content-Type": "application/json",
            "X-Slack-Signature": SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)}


async def test_signed_events_are_answered_and_forged_ones_refused(george: tuple[str, LocalSlack]) -> None:
    url, slack = george
    channel = "C0GEORGE"
    body = json.dumps({
        "type": "event_callback", "event_id": "Ev0001", "team_id": "T0LOCAL", "api_app_id": "A0GEORGE",
        "event": {"type": "app_mention", "user": "U01PAT", "text": "<@U0GEORGE> status",
                  "channel": channel, "ts": "1795550000.000100", "event_ts": "1795550000.000100"},
    })
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 30
        while True:  # ready once the first sync has been applied, a moment after the start
            async with http.get(f"{url}/healthz") as health:
                said = await health.json() if health.status == 200 else {}
                if said.get("ok") is True:
                    assert said["sync"]["ok"] is True and said["sync"]["error"] is None, said
                    assert said["sync"]["age_s"] >= 0 and said["sandbox"]["kind"], said
                    break
            assert time.monotonic() < deadline, "George never became ready"
            await asyncio.sleep(0.05)
        async with http.post(f"{url}/slack/events", data=body, headers=signed(body, "wrong")) as forged:
            assert forged.status == 401
        async with http.post(f"{url}/slack/events", data=body) as unsigned:
            assert unsigned.status == 401
        async with http.post(f"{url}/slack/events", data=body, headers=signed(body)) as answer:
            assert answer.status == 200
    reply = await slack.wait_for(lambda: [m for m in slack.replies(channel, "1795550000.000100")
                                          if "http-job" in (m.text or "") + json.dumps(m.blocks or [])])
    assert reply


async def test_the_requests_that_once_got_500_get_401_and_write_no_traceback(
        george: tuple[str, LocalSlack], caplog: pytest.LogCaptureFixture) -> None:
    url, _ = george
    stamp = str(int(time.time()))
    requests = [
        ("{not json", {"Content-Type": "application/json"}),
        ("[1, 2, 3]", {"Content-Type": "application/json"}),
        ("{}", {"Content-Type": "application/json", "X-Slack-Request-Timestamp": "not-a-number",
                "X-Slack-Signature": "v0=" + "0" * 64}),
        ("[1]", {**signed("[1]", "a-guess"), "X-Slack-Request-Timestamp": stamp}),
    ]
    async with aiohttp.ClientSession() as http:
        for body, headers in requests:
            async with http.post(f"{url}/slack/events", data=body, headers=headers) as answer:
                assert answer.status == 401, body
    assert not [r for r in caplog.records if r.exc_info or r.name == "aiohttp.server"]
    assert len([r for r in caplog.records if r.name == "georgebot.slack.gate"]) == 1
