"""`EventsGate`: what a request to `/slack/events` must pass, in HTTP mode, before bolt sees it.

It must carry Slack's two signature headers, fit in `MAX_BODY` and be signed with the signing
secret (slack-sdk's `SignatureVerifier`: the v0 HMAC of timestamp and raw body, the timestamp
within 5 minutes). Only then is its body parsed, into the `AsyncBoltRequest` bolt dispatches.
Anything else is answered 401, 413 or 400 with no traceback and counted by the gate's
`RefusalLog`, so a flood of forged requests writes a line a minute. `SlackSurface` owns the gate.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import Counter
from collections.abc import Sequence

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

from georgebot import errors
from georgebot.slack import messages
from georgebot.slack.pacing import MonotonicTicker, Ticker

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
"""Slack's payloads are a few kilobytes; a body larger than this is refused unread (413)."""
REPORT_SECONDS = 60.0
SIGNATURE = "X-Slack-Signature"
TIMESTAMP = "X-Slack-Request-Timestamp"


class Refusal(enum.Enum):
    """Why a request was refused: its HTTP status, and the words for the log and the answer."""

    UNSIGNED = (401, messages.REFUSED_UNSIGNED)
    FORGED = (401, messages.REFUSED_FORGED)
    TOO_LARGE = (413, messages.refused_too_large(MAX_BODY))
    CUT_SHORT = (400, messages.REFUSED_CUT_SHORT)
    UNREADABLE = (400, messages.REFUSED_UNREADABLE)

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason


class RefusalLog:
    """Says in the log that requests were refused without repeating itself: the first refusal
    after a quiet spell at once, then one line per `every` seconds with how many followed, and
    why. Its reporter task ends when a spell passes with none; `close()` reports what is left."""

    def __init__(self, path: str, *, every: float = REPORT_SECONDS, ticker: Ticker | None = None) -> None:
        self.path = path
        self.every = every
        self._ticker = ticker or MonotonicTicker()
        self._pending: Counter[str] = Counter()
        self._since: float | None = None  # when the current interval began; None when quiet
        self._wake = asyncio.Event()
        self._closed = False
        self._reporter: asyncio.Task[None] | None = None

    def note(self, refusal: Refusal, remote: str | None) -> None:
        now = self._ticker.now()
        if self._since is not None and now >= self._since + self.every:
            self._report(now)
        if self._since is None:
            self._since = now
            log.warning("%s", messages.request_refused(self.path, remote, refusal.status, refusal.reason,
                                                       self.every))
            self._start_reporter()
        else:
            self._pending[refusal.reason] += 1

    def _report(self, now: float) -> None:
        if self._pending and self._since is not None:
            log.warning("%s", messages.requests_refused(self.path, dict(self._pending), now - self._since))
            self._pending.clear()
            self._since = now
        else:
            self._since = None

    def _start_reporter(self) -> None:
        if self._closed or (self._reporter is not None and not self._reporter.done()):
            return
        self._reporter = asyncio.get_running_loop().create_task(self._run(), name="slack-refusals-report")

    async def _run(self) -> None:
        while self._since is not None and not self._closed:
            self._wake.clear()
            await self._ticker.wait(self._wake, self._since + self.every - self._ticker.now())
            now = self._ticker.now()
            if not self._closed and self._since is not None and now >= self._since + self.every:
                self._report(now)

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        reporter, self._reporter = self._reporter, None
        if reporter is not None:
            await reporter
        self._report(self._ticker.now())
        self._since = None


class EventsGate:
    def __init__(self, signing_secret: str, *, path: str, ticker: Ticker | None = None,
                 report_every: float = REPORT_SECONDS) -> None:
        try:
            self._verifier = SignatureVerifier(signing_secret)
        except ValueError as e:
            raise errors.ConfigError(
                "SLACK_SIGNING_SECRET is blank: set it to the signing secret on the Basic "
                "Information page of George's Slack app") from e
        self.refusals = RefusalLog(path, every=report_every, ticker=ticker)

    async def admit(self, request: web.Request) -> AsyncBoltRequest | web.Response:
        """The request for bolt when Slack signed it, else the answer that refuses it."""
        if SIGNATURE not in request.headers or TIMESTAMP not in request.headers:
            return self._refuse(Refusal.UNSIGNED, request)
        body = await self._read(request)
        if isinstance(body, Refusal):
            return self._refuse(body, request)
        if not self._signed(body, request.headers[TIMESTAMP], request.headers[SIGNATURE]):
            return self._refuse(Refusal.FORGED, request)
        headers: dict[str, str | Sequence[str]] = {k: request.headers.getall(k) for k in request.headers}
        try:
            admitted = AsyncBoltRequest(body=body.decode(), query=request.query_string, headers=headers)
        except Exception:
            # Bolt parses the body here (JSON, or a form with a JSON `payload`) and reads ids
            # out of it, assuming Slack's shapes; what Slack never sends fails in many ways,
            # up to a RecursionError. It was signed, so it is refused, not a crash.
            return self._refuse(Refusal.UNREADABLE, request)
        if not isinstance(admitted.body, dict):
            return self._refuse(Refusal.UNREADABLE, request)
        return admitted

    async def _read(self, request: web.Request) -> bytes | Refusal:
        if request.content_length is not None and request.content_length > MAX_BODY:
            return Refusal.TOO_LARGE
        body = bytearray()
        try:
            async for chunk in request.content.iter_any():
                body += chunk
                if len(body) > MAX_BODY:
                    return Refusal.TOO_LARGE
        except (ConnectionError, HttpProcessingError):
            return Refusal.CUT_SHORT  # the sender went away, or broke the chunked encoding
        return bytes(body)

    def _signed(self, body: bytes, timestamp: str, signature: str) -> bool:
        try:
            return self._verifier.is_valid(body=body, timestamp=timestamp, signature=signature)
        except (ValueError, TypeError, OverflowError):
            # slack-sdk raises where it cannot compare: a timestamp that is no integer
            # (ValueError) or too large for a float (OverflowError), a body that is not UTF-8
            # (UnicodeDecodeError), a signature that is not ASCII (TypeError). None is signed.
            return False

    @staticmethod
    def unhandled(error: Exception) -> web.Response:
        """The answer when bolt fails on an admitted payload's shape outside its own error
        handling (the handler builds its arguments from the body too, and fails the same way).
        Logged as `build_app`'s handler logs what it catches: one line for each, as only a
        sender with the signing secret gets here."""
        log.warning("%s", messages.payload_failed(f"{type(error).__name__}: {error}"))
        log.debug("bolt could not handle a signed payload", exc_info=error)
        return web.json_response({"error": Refusal.UNREADABLE.reason}, status=Refusal.UNREADABLE.status)

    def _refuse(self, refusal: Refusal, request: web.Request) -> web.Response:
        self.refusals.note(refusal, request.remote)
        return web.json_response({"error": refusal.reason}, status=refusal.status)

    async def close(self) -> None:
        await self.refusals.close()
