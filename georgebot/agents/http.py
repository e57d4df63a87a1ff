"""The `http` step: one request to a host the agent is granted, checked against `expect`.

`StepRunner` (dispatch.py) owns one `HttpRunner`, starts it (its single aiohttp session) and
closes it; it calls `run` once per attempt. aiohttp's errors are translated here: anything
that says "try later" (no connection, 429, 5xx) is a TemporaryError; an answer that is not
what the step expects fails the attempt with `UnexpectedResponse`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from georgebot import errors
from georgebot.agents import expect, grants
from georgebot.config import format_duration
from georgebot.engine.ports import Clock, Done, StepRecorder, StepTask, SystemClock, seconds
from georgebot.model.specs import AgentSpec, HttpCheck
from georgebot.model.status import Reason

_REDIRECTS = {301, 302, 303, 307, 308}
_CREDENTIALS = ("Authorization", "Cookie", "Proxy-Authorization")
_PREVIEW_CHARS = 500
MAX_RETRY_AFTER = timedelta(hours=1)  # a server asking for longer is not taken at its word


@dataclass(frozen=True)
class _Response:
    method: str
    url: URL
    status: int
    reason: str
    headers: CIMultiDictProxy[str]
    body: bytes
    truncated: bool

    @property
    def line(self) -> str:
        return f"{self.status} {self.reason}".strip()

    def preview(self) -> str:
        text = self.body.decode("utf-8", errors="replace").strip()
        if len(text) > _PREVIEW_CHARS or self.truncated:
            return text[:_PREVIEW_CHARS] + " …"
        return text


class HttpRunner:
    """Runs `http` steps through one session: no cookies kept between steps, no proxy or
    other settings taken from the environment, redirects followed only to granted hosts."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        max_body_bytes: int = 1024 * 1024,
        connect_timeout: float = 10.0,
        max_redirects: int = 5,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self._clock = clock or SystemClock()
        self._max_body = max_body_bytes
        self._connect_timeout = connect_timeout
        self._max_redirects = max_redirects
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=self._resolver),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                headers={"User-Agent": "georgebot"},
            )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def run(self, task: StepTask, recorder: StepRecorder) -> Done:
        check = task.step.http
        if check is None:
            raise errors.PermanentError(f"step {task.step.name} is not an `http` step")
        agent = grants.require_agent(task)
        url = _parse_url(check.url)
        timeout = task.step.effective_timeout
        try:
            async with asyncio.timeout(seconds(timeout)):
                response = await self._fetch(agent, check, url)
        except TimeoutError as e:
            limit = format_duration(timeout) if timeout is not None else "its timeout"
            raise errors.PermanentError(
                f"{check.method} {_shown(url)} did not finish within {limit}",
                reason=Reason.TIMED_OUT,
            ) from e
        await recorder.note("output", f"{response.method} {_shown(response.url)} → "
                            f"{response.line}\n{response.preview()}".strip())
        return self._judge(check, response)

    async def _fetch(self, agent: AgentSpec, check: HttpCheck, url: URL) -> _Response:
        start = url
        method, body = check.method, check.body
        headers = CIMultiDict(check.headers)
        keep_3xx = check.expect.status in _REDIRECTS
        for _ in range(self._max_redirects + 1):
            _require_host(agent, url)
            response = await self._send(method, url, headers, body)
            location = response.headers.get("Location")
            if response.status not in _REDIRECTS or keep_3xx or location is None:
                return response
            target = _parse_url(
                str(url.join(URL(location))),
                f"redirect from {_shown(url)}",
                Reason.UNEXPECTED_RESPONSE,
            )
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method, body = ("HEAD" if method == "HEAD" else "GET"), None
            if target.host != url.host:
                for name in _CREDENTIALS:
                    headers.popall(name, None)
            url = target
        raise errors.PermanentError(
            f"{check.method} {_shown(start)}: more than {self._max_redirects} redirects",
            reason=Reason.UNEXPECTED_RESPONSE,
        )

    async def _send(
        self, method: str, url: URL, headers: CIMultiDict[str], body: Any
    ) -> _Response:
        if self._session is None:
            raise RuntimeError("HttpRunner.start() was not called")
        try:
            async with self._session.request(
                method,
                url,
                headers=headers,
                json=body,
                allow_redirects=False,  # _fetch follows them, checking each host
                timeout=aiohttp.ClientTimeout(total=None, connect=self._connect_timeout),
            ) as resp:
                data, truncated = await _read_capped(resp.content, self._max_body)
                reason = resp.reason or ""
                return _Response(method, url, resp.status, reason, resp.headers, data, truncated)
        except aiohttp.InvalidURL as e:
            raise errors.PermanentError(
                f"{method} {_shown(url)}: invalid URL", reason="InvalidUrl"
            ) from e
        except aiohttp.ClientError as e:
            # No connection, a reset, a connect timeout, a broken body: the service may be
            # back later, and this attempt says nothing about the step itself.
            raise errors.TemporaryError(
                f"{method} {_shown(url)}: {str(e) or type(e).__name__}", reason="Unreachable"
            ) from e

    def _judge(self, check: HttpCheck, response: _Response) -> Done:
        where = f"{response.method} {_shown(response.url)}"
        wanted = check.expect.status
        status_ok = response.status == wanted if wanted else 200 <= response.status < 300
        if not status_ok:
            if response.status == 429 or response.status >= 500:
                raise errors.TemporaryError(
                    f"{where} answered {response.line}",
                    delay=retry_after(response.headers.get("Retry-After"), self._clock.now()),
                    reason="RateLimited" if response.status == 429 else "ServerError",
                )
            raise errors.PermanentError(
                f"{where}: expected status {wanted or '2xx'}, got {response.line}"
                + (f": {response.preview()}" if response.body else ""),
                reason=Reason.UNEXPECTED_RESPONSE,
            )
        fields = check.expect.json_fields
        if fields:
            document = _decode(where, response)
            if wrong := expect.mismatches(document, fields):
                raise errors.PermanentError(
                    f"{where}: response JSON does not match: {expect.summary(wrong)}",
                    reason=Reason.UNEXPECTED_RESPONSE,
                )
        return Done(message=f"{where} answered {response.line}", output=response.preview())


def retry_after(value: str | None, now: datetime) -> timedelta | None:
    """Retry-After as seconds or an HTTP date; None when absent or unreadable."""
    if not value or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        delay = timedelta(seconds=int(value))
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        delay = (when if when.tzinfo else when.replace(tzinfo=UTC)) - now
    return min(max(delay, timedelta(0)), MAX_RETRY_AFTER)


def _require_host(agent: AgentSpec, url: URL) -> None:
    host = (url.host or "").rstrip(".")
    if not agent.spec.allows_host(host):
        raise grants.missing(agent, "http", host, "call")


def _shown(url: URL) -> str:
    """The URL for messages and context, without any user or password it carries."""
    return str(url.with_user(None))


def _parse_url(text: str, what: str = "url", reason: str = "InvalidUrl") -> URL:
    try:
        url = URL(text)
    except (TypeError, ValueError) as e:
        raise errors.PermanentError(f"{what}: {text!r} is not a URL", reason=reason) from e
    if url.scheme not in ("http", "https") or not url.host:
        raise errors.PermanentError(
            f"{what}: {text!r} is not an http(s) URL with a host", reason=reason
        )
    return url


def _decode(where: str, response: _Response) -> Any:
    if response.truncated:
        raise errors.PermanentError(
            f"{where}: response is over {len(response.body)} bytes; its JSON cannot be checked",
            reason=Reason.UNEXPECTED_RESPONSE,
        )
    try:
        return json.loads(response.body)
    except ValueError as e:
        raise errors.PermanentError(
            f"{where}: response is not JSON: {response.preview() or '(empty)'}",
            reason=Reason.UNEXPECTED_RESPONSE,
        ) from e


async def _read_capped(content: aiohttp.StreamReader, limit: int) -> tuple[bytes, bool]:
    """At most `limit` bytes of the body; the rest is never read (the connection is dropped)."""
    body = bytearray()
    async for chunk in content.iter_chunked(64 * 1024):
        room = limit - len(body)
        if len(chunk) > room:
            body += chunk[:room]
            return bytes(body), True
        body += chunk
    return bytes(body), False

