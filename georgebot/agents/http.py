"""The `http` step: one request to a host the agent is granted, checked against `expect`.

`StepRunner` (dispatch.py) owns one `HttpRunner`, starts it (its single aiohttp session) and
closes it; it calls `run` once per attempt. aiohttp's errors are translated here: anything
that says "try later" (no connection, 429, 5xx) is a TemporaryError; an answer that is not
what the step expects fails the attempt with `UnexpectedResponse`. A request that cannot be
sent as written (a header or URL with a line break or another control character) fails it as
final, with `InvalidInput`. Every hop of a redirect needs a grant of its origin (scheme, host
and port), and credentials never follow a redirect to another origin. URLs in messages and
notes have their credentials redacted (`model/urls.py`).
"""

from __future__ import annotations

import asyncio
import json
import re
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
from georgebot.model.urls import is_credential_header, redact, redact_text, secrets_in

_REDIRECTS = {301, 302, 303, 307, 308}
INVALID_INPUT = "InvalidInput"
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # a header name (RFC 9110 token)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # a horizontal tab is allowed in a value
_URL_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HOST_CHARS = re.compile(r"^[A-Za-z0-9._~%:-]+$")  # the raw (IDNA-encoded) host, or IPv6
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
        _check_headers(check.headers)
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
            grants.require_origin(agent, url.scheme, _host(url), url.port)
            response = await self._send(method, url, headers, body, first=url is start)
            location = response.headers.get("Location")
            if response.status not in _REDIRECTS or keep_3xx or location is None:
                return response
            target = _parse_url(
                _joined(url, location),
                f"redirect from {_shown(url)}",
                Reason.UNEXPECTED_RESPONSE,
                final=False,
            )
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method, body = ("HEAD" if method == "HEAD" else "GET"), None
            if _origin(target) != _origin(url):
                _drop_credentials(headers)
            url = target
        raise errors.PermanentError(
            f"{check.method} {_shown(start)}: more than {self._max_redirects} redirects",
            reason=Reason.UNEXPECTED_RESPONSE,
        )

    async def _send(
        self, method: str, url: URL, headers: CIMultiDict[str], body: Any, *, first: bool
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
            if first:
                raise errors.PermanentError(
                    f"{method} {_shown(url)}: invalid URL", reason=INVALID_INPUT, final=True
                ) from e
            raise errors.PermanentError(
                f"{method} {_shown(url)}: the redirect leads to an invalid URL",
                reason=Reason.UNEXPECTED_RESPONSE,
            ) from e
        except aiohttp.ClientError as e:
            # No connection, a reset, a connect timeout, a broken body: the service may be
            # back later, and this attempt says nothing about the step itself.
            said = redact_text(str(e), secrets_in(str(url))) or type(e).__name__
            raise errors.TemporaryError(f"{method} {_shown(url)}: {said}", reason="Unreachable") from e
        except (ValueError, UnicodeError) as e:
            # What the checks before sending let through and the client still refuses to send
            # (aiohttp raises ValueError for a line break in a header): the input is at fault.
            raise errors.PermanentError(
                f"{method} {_shown(url)}: the request cannot be sent as written: "
                f"{redact_text(str(e), secrets_in(str(url)))}",
                reason=INVALID_INPUT,
                final=True,
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


def _joined(url: URL, location: str) -> str:
    """A redirect's Location against the URL that answered; the Location itself when it is
    not a URL (`_parse_url` then says so)."""
    try:
        return str(url.join(URL(location)))
    except (TypeError, ValueError):
        return location


def _host(url: URL) -> str:
    return (url.host or "").lower().rstrip(".")


def _origin(url: URL) -> tuple[str, str, int | None]:
    return url.scheme, _host(url), url.port


def _drop_credentials(headers: CIMultiDict[str]) -> None:
    """Before a redirect to another origin: `Authorization`, `Cookie`, `Proxy-Authorization`,
    and any header named like a credential (`X-Api-Key`, `Private-Token`, `X-Auth-Token`)."""
    for name in [n for n in headers if is_credential_header(n)]:
        headers.popall(name, None)


def _check_headers(headers: dict[str, str]) -> None:
    """A header that cannot be sent as written fails the attempt as final: retrying would send
    the same. The value is never quoted (it may be a credential)."""
    for name, value in headers.items():
        if not _TOKEN.match(name):
            raise errors.PermanentError(
                f"header name {json.dumps(name)} cannot be sent: a name is letters, digits and "
                "!#$%&'*+-.^_`|~, without spaces, line breaks or other control characters",
                reason=INVALID_INPUT,
                final=True,
            )
        if _CONTROL.search(value):
            raise errors.PermanentError(
                f"header {name} cannot be sent: its value holds a line break (CR or LF) or "
                "another control character; a header value is one line of text",
                reason=INVALID_INPUT,
                final=True,
            )


def _shown(url: URL | str) -> str:
    """The URL for messages and context, its credentials (`user:token@`, `?token=`) masked."""
    return redact(str(url))


def _parse_url(
    text: str, what: str = "url", reason: str = INVALID_INPUT, *, final: bool = True
) -> URL:
    """The step's URL (a bad one is the input's fault: final) or a redirect's target."""
    if _URL_CONTROL.search(text):
        raise errors.PermanentError(
            f"{what}: {json.dumps(redact(text))} holds a line break or another control "
            "character; a URL cannot (encode it, e.g. with the `urlencode` filter)",
            reason=reason,
            final=final,
        )
    try:
        url = URL(text)
    except (TypeError, ValueError) as e:
        raise errors.PermanentError(
            f"{what}: {json.dumps(redact(text))} is not a URL: {redact_text(str(e), secrets_in(text))}",
            reason=reason,
            final=final,
        ) from e
    if url.scheme not in ("http", "https") or not url.host:
        raise errors.PermanentError(
            f"{what}: {json.dumps(redact(text))} is not an http(s) URL with a host",
            reason=reason,
            final=final,
        )
    if not _HOST_CHARS.match(url.raw_host or ""):
        raise errors.PermanentError(
            f"{what}: {json.dumps(redact(text))} has an invalid host {json.dumps(url.host)}",
            reason=reason,
            final=final,
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

