"""HTTP mode refuses, before parsing, every request to `/slack/events` that Slack did not sign,
whatever its body; a signed body bolt cannot read is a 400; none of them writes a traceback,
and a flood of them writes a line per interval with a count, not a line each. Driven through
George's route over real HTTP (aiohttp's test server), with the local Slack as Slack."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from georgebot.config import Settings
from georgebot.devslack import LocalSlack
from georgebot.engine.service import Engine
from georgebot.slack import EVENTS_PATH, SlackSurface
from georgebot.slack.gate import MAX_BODY
from georgebot.store import Store
from tests.slack.conftest import FAST
from tests.slack.support import ALEX, ManualTicker

SECRET = "a-signing-secret"
GATE = "georgebot.slack.gate"
HOME = json.dumps({"type": "event_callback", "event_id": "EvHOME", "team_id": "T0LOCAL",
                   "event": {"type": "app_home_opened", "user": ALEX, "channel": "D01ALEX", "tab": "home"}})


@dataclass
class Endpoint:
    url: str
    http: aiohttp.ClientSession
    surface: SlackSurface
    slack: LocalSlack
    ticker: ManualTicker

    async def post(self, body: str | bytes | AsyncIterator[bytes],
                   headers: dict[str, str]) -> tuple[int, str]:
        if isinstance(body, str | bytes):
            raw = body.encode() if isinstance(body, str) else body
            data: object = io.BytesIO(raw) if len(raw) > 65536 else raw  # aiohttp warns of large bytes
        else:
            data = body
        async with self.http.post(f"{self.url}{EVENTS_PATH}", data=data, headers=headers) as answer:
            return answer.status, await answer.text()


@pytest.fixture
async def endpoint(slack: LocalSlack, engine: Engine, sqlite_store: Store) -> AsyncIterator[Endpoint]:
    """George's route on a server set up as `runtime.py` sets up its own (no access log, and
    handlers not cancelled when a client goes away, unlike aiohttp's test server)."""
    ticker = ManualTicker()
    settings = Settings(slack_bot_token=slack.bot_token, slack_signing_secret=SECRET,
                        slack_api_url=slack.api_url)
    surface = SlackSurface(settings, engine, publisher_settings=FAST, ticker=ticker)
    await surface.start()
    app = web.Application()
    app.add_routes(surface.web_routes())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as http:
            yield Endpoint(f"http://127.0.0.1:{port}", http, surface, slack, ticker)
        assert surface.listeners is not None
        await surface.listeners.idle()
    finally:
        await runner.cleanup()
        await surface.close()


def signed(body: str | bytes, *, secret: str = SECRET, stamp: str | None = None,
           content_type: str = "application/json") -> dict[str, str]:
    stamp = stamp or str(int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    assert signature is not None
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature, "Content-Type": content_type}


def now() -> str:
    return str(int(time.time()))


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every record that would print a traceback, or that aiohttp wrote for a failed handler."""
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records
            if (r.exc_info and r.levelno >= logging.INFO) or r.name == "aiohttp.server"
            or "Traceback" in r.getMessage()]


def refusal_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == GATE and r.levelno >= logging.INFO]


JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
DEEP = "[" * 100_000  # json.loads would raise RecursionError on it

Shape = Callable[[], tuple[str | bytes, dict[str, str]]]
UNSIGNED: dict[str, Shape] = {
    "empty body, no headers": lambda: ("", {}),
    "malformed JSON": lambda: ("{not json", JSON),
    "a JSON array": lambda: ("[1, 2, 3]", JSON),
    "a JSON string": lambda: ('"event_callback"', JSON),
    "nested past the parser's depth": lambda: (DEEP, JSON),
    "form-encoded": lambda: ("payload=%7B%22type%22%3A%22block_actions%22%7D", FORM),
    "a valid event, unsigned": lambda: (HOME, JSON),
    "no timestamp header": lambda: (HOME, {**JSON, "X-Slack-Signature": signed(HOME)["X-Slack-Signature"]}),
    "no signature header": lambda: (HOME, {**JSON, "X-Slack-Request-Timestamp": now()}),
    "a timestamp that is not a number": lambda: (HOME, signed(HOME, stamp="yesterday")),
    "an empty timestamp": lambda: (HOME, {**signed(HOME), "X-Slack-Request-Timestamp": ""}),
    "a timestamp with a fraction": lambda: (HOME, signed(HOME, stamp=f"{now()}.5")),
    "a timestamp too large for a float": lambda: (HOME, signed(HOME, stamp="9" * 400)),
    "a timestamp of 5000 digits": lambda: (HOME, signed(HOME, stamp="9" * 5000)),
    "a stale timestamp": lambda: (HOME, signed(HOME, stamp=str(int(time.time()) - 400))),
    "a timestamp from the future": lambda: (HOME, signed(HOME, stamp=str(int(time.time()) + 400))),
    "the wrong secret": lambda: (HOME, signed(HOME, secret="another-secret")),
    "signed for another body": lambda: (HOME, signed(HOME.replace("home", "messages"))),
    "a signature that is not ASCII": lambda: (HOME, {**signed(HOME), "X-Slack-Signature": "v0=é" + "0" * 62}),
    "an empty signature": lambda: (HOME, {**signed(HOME), "X-Slack-Signature": ""}),
    "a body that is not UTF-8": lambda: (b"\xff\xfe{}", {**signed("{}"), "Content-Type": "application/json"}),
    "malformed JSON with a forged signature": lambda: ("{not json", signed("{not json", secret="guess")),
    "an array with a forged signature": lambda: ("[1]", signed("[1]", secret="guess")),
}


@pytest.mark.parametrize("shape", UNSIGNED.values(), ids=UNSIGNED.keys())
async def test_a_request_slack_did_not_sign_is_refused_401_without_a_traceback(
        endpoint: Endpoint, caplog: pytest.LogCaptureFixture, shape: Shape) -> None:
    caplog.set_level(logging.DEBUG)
    body, headers = shape()

    status, text = await endpoint.post(body, headers)

    assert status == 401, text
    assert "error" in json.loads(text)
    assert tracebacks(caplog) == []
    assert len(refusal_lines(caplog)) == 1
    assert endpoint.slack.home_view(ALEX) is None


async def test_a_body_over_the_limit_is_refused_413_unread(endpoint: Endpoint,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    big = b"x" * (MAX_BODY + 1)

    declared = await endpoint.post(big, signed(big))

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(MAX_BODY // 65536 + 1):
            yield b"y" * 65536
    streamed = await endpoint.post(chunks(), {"X-Slack-Request-Timestamp": now(),
                                              "X-Slack-Signature": "v0=00"})
    unsigned = await endpoint.post(big, JSON)

    assert declared[0] == 413 and "1 MiB" in declared[1]
    assert streamed[0] == 413
    assert unsigned[0] == 401  # no signature headers: refused before anything is read
    assert tracebacks(caplog) == []


async def test_a_body_at_the_limit_is_read_and_checked(endpoint: Endpoint) -> None:
    body = json.dumps({"type": "event_callback", "padding": "x" * (MAX_BODY - 100)})
    body += " " * (MAX_BODY - len(body))

    assert await endpoint.post(body, signed(body, secret="guess")) == (401, json.dumps(
        {"error": "signature or timestamp not valid"}))


SIGNED_BUT_UNREADABLE = {
    "malformed JSON": "{not json",
    "a JSON array": "[1, 2, 3]",
    "a JSON number": "5",
    "nested past the parser's depth": DEEP,
    "a form whose payload is not JSON": "payload=%7Bnope",
    "an event that is a string": json.dumps({"type": "event_callback", "event": "x"}),
    "actions that are a number": json.dumps({"type": "block_actions", "actions": 5}),
    "a team that is a number": json.dumps({"team": 5}),
}


@pytest.mark.parametrize("body", SIGNED_BUT_UNREADABLE.values(), ids=SIGNED_BUT_UNREADABLE.keys())
async def test_a_signed_body_that_is_no_slack_payload_is_a_400_logged_as_one_line(
        endpoint: Endpoint, caplog: pytest.LogCaptureFixture, body: str) -> None:
    caplog.set_level(logging.INFO)
    content_type = "application/x-www-form-urlencoded" if body.startswith("payload") else "application/json"

    status, _ = await endpoint.post(body, signed(body, content_type=content_type))

    assert status == 400
    assert tracebacks(caplog) == []
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("georgebot")]
    assert len(lines) == 1 and "\n" not in lines[0].getMessage()


async def test_a_thousand_bad_requests_write_a_handful_of_lines_that_count_them(
        endpoint: Endpoint, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    shapes = list(UNSIGNED.values())

    async def send(i: int) -> int:
        body, headers = shapes[i % len(shapes)]()
        return (await endpoint.post(body, headers))[0]

    statuses = [s for start in range(0, 1000, 50) for s in await asyncio.gather(
        *(send(i) for i in range(start, start + 50)))]
    assert statuses == [401] * 1000
    [first] = refusal_lines(caplog)
    assert first.startswith("refused a request to /slack/events from 127.0.0.1 (401: ")
    assert "logged every 60 s" in first

    endpoint.ticker.advance(60)
    await wait_for(lambda: len(refusal_lines(caplog)) == 2)
    summary = refusal_lines(caplog)[1]
    assert summary.startswith("refused 999 more requests to /slack/events in the last 60 s (")
    assert sum(int(part.split()[0]) for part in summary.split("(", 1)[1].rstrip(")").split(", ")) == 999

    endpoint.ticker.advance(60)  # a quiet minute: the next refusal is news again, logged at once
    await endpoint.post(HOME, JSON)
    await endpoint.post(HOME, JSON)
    await endpoint.surface.close()  # what is counted and not yet logged is logged at the close

    lines = refusal_lines(caplog)
    assert len(lines) == 4
    assert lines[2].startswith("refused a request to /slack/events")
    assert lines[3].startswith("refused 1 more request to /slack/events in the last 1 s")
    assert tracebacks(caplog) == []


async def test_a_request_cut_short_writes_no_traceback(endpoint: Endpoint,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    host, port = endpoint.url.removeprefix("http://").split(":")
    head = (f"POST {EVENTS_PATH} HTTP/1.1\r\nHost: george\r\nContent-Type: application/json\r\n"
            f"X-Slack-Request-Timestamp: {now()}\r\nX-Slack-Signature: v0=00\r\nExpect: 100-continue\r\n")
    cut_short = (("Content-Length: 1000", '{"type": '), ("Transfer-Encoding: chunked", '5\r\n{"typ'))
    for framing, partial in cut_short:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"{head}{framing}\r\n\r\n".encode())
        assert b"100 Continue" in await reader.readuntil(b"\r\n\r\n")  # George reads the body now
        writer.write(partial.encode())
        await writer.drain()
        writer.close()
        await writer.wait_closed()
    await wait_for(lambda: len(refusal_lines(caplog)) >= 1)
    await endpoint.surface.close()  # logs the second, counted

    assert tracebacks(caplog) == []
    assert any("body cut short" in line for line in refusal_lines(caplog))


async def test_a_signed_event_still_reaches_george(endpoint: Endpoint,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    status, _ = await endpoint.post(HOME, signed(HOME))

    assert status == 200
    await endpoint.slack.wait_for(lambda: endpoint.slack.home_view(ALEX))
    assert refusal_lines(caplog) == []


def test_a_blank_signing_secret_is_a_configuration_error(engine: Engine, sqlite_store: Store) -> None:
    from georgebot import errors

    with pytest.raises(errors.ConfigError, match="SLACK_SIGNING_SECRET"):
        SlackSurface(Settings(slack_bot_token="xoxb-1", slack_signing_secret="   "), engine)


async def wait_for(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Until `predicate()` holds, checked again whenever the gate logs."""
    logged = asyncio.Event()

    class Tell(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            logged.set()

    tell = Tell()
    logging.getLogger(GATE).addHandler(tell)
    try:
        async with asyncio.timeout(within):
            while not predicate():
                logged.clear()
                await logged.wait()
    finally:
        logging.getLogger(GATE).removeHandler(tell)
