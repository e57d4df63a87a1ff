"""`http` steps against a local aiohttp server; every host name resolves to 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer

from georgebot import errors
from georgebot.agents.http import HttpRunner

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
USER = {"active": True, "count": 1, "user": {"name": "Alice Smith", "emails": [{"address": "a@x"}]}}


class FixedClock:
    def now(self) -> datetime:
        return NOW


class Loopback(AbstractResolver):
    """Resolves every name to 127.0.0.1, so host grants can be tested with real names."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [{"hostname": host, "host": "127.0.0.1", "port": port,
                 "family": socket.AF_INET, "proto": 0, "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        pass


class Service:
    """The local server: a few routes, and how often each was hit."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.release = asyncio.Event()
        self.app = web.Application(middlewares=[self._count])
        self.app.router.add_get("/users/alice", self._user)
        self.app.router.add_get("/status/{code}", self._status)
        self.app.router.add_post("/echo", self._echo)
        self.app.router.add_get("/redirect", self._redirect)
        self.app.router.add_get("/big", self._big)
        self.app.router.add_get("/text", self._text)
        self.app.router.add_get("/hang", self._hang)
        self.server = TestServer(self.app)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.server.port}{path}"

    def origin(self, host: str = "127.0.0.1") -> str:
        """The grant of `host` on this server's port (a grant without a port allows 80 only)."""
        return f"{host}:{self.server.port}"

    @web.middleware
    async def _count(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        response: web.StreamResponse = await handler(request)
        return response

    async def _user(self, request: web.Request) -> web.Response:
        return web.json_response(USER)

    async def _big(self, request: web.Request) -> web.Response:
        return web.Response(body=b"x" * (2 * 1024 * 1024))

    async def _text(self, request: web.Request) -> web.Response:
        return web.Response(text="hello, not json")

    async def _status(self, request: web.Request) -> web.Response:
        headers = {"Retry-After": request.query["retry"]} if "retry" in request.query else {}
        return web.Response(status=int(request.match_info["code"]), text="nope", headers=headers)

    async def _echo(self, request: web.Request) -> web.Response:
        return web.json_response({
            "method": request.method,
            "team": request.headers.get("X-Team"),
            "body": await request.json(),
        })

    async def _redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def _hang(self, request: web.Request) -> web.Response:
        await self.release.wait()
        return web.Response(text="late")


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    service = Service()
    await service.server.start_server()
    try:
        yield service
    finally:
        service.release.set()
        await service.server.close()


@pytest.fixture
async def runner() -> AsyncIterator[HttpRunner]:
    runner = HttpRunner(clock=FixedClock(), resolver=Loopback())
    await runner.start()
    try:
        yield runner
    finally:
        await runner.close()


def http(*hosts: str) -> dict[str, object]:
    return {"http": {"hosts": list(hosts)}}


def local(service: Service) -> dict[str, object]:
    return http(service.origin())


def step(url: str, **fields: Any) -> dict[str, Any]:
    return {"name": "directory-up", "http": {"url": url, **fields}}


async def test_host_not_granted_is_capability_missing_and_nothing_is_sent(
    service, runner, make_task, grant, notes
):
    task = make_task(step(service.url("/users/alice", "api.corp.test")),
                     agent=grant(http("api.example.internal")))

    with pytest.raises(errors.CapabilityMissing) as blocked:
        await runner.run(task, notes)

    assert blocked.value.capability == f"http: {service.origin('api.corp.test')}"
    assert f'- http: {{hosts: ["{service.origin("api.corp.test")}"]}}' in str(blocked.value)
    assert service.hits == {}


async def test_wildcard_grant_allows_subdomains_only(service, runner, make_task, grant, notes):
    agent = grant(http(f"*.corp.test:{service.server.port}"))

    done = await runner.run(make_task(step(service.url("/users/alice", "api.corp.test")),
                                      agent=agent), notes)
    with pytest.raises(errors.CapabilityMissing):
        await runner.run(make_task(step(service.url("/users/alice", "corp.test")),
                                   agent=agent), notes)

    assert done.message.endswith("answered 200 OK")
    assert service.hits == {"/users/alice": 1}


async def test_expected_status_and_json_fields_pass(service, runner, make_task, grant, notes):
    expect = {"status": 200, "json": {
        "active": True, "count": 1.0, "user.name": "Alice Smith", "user.emails.0.address": "a@x",
    }}
    task = make_task(step(service.url("/users/alice"), expect=expect), agent=grant(local(service)))

    done = await runner.run(task, notes)

    assert done.message == f"GET {service.url('/users/alice')} answered 200 OK"
    [(role, text)] = notes.entries
    assert role == "output"
    assert text.startswith(f"GET {service.url('/users/alice')} → 200 OK\n{{")


async def test_json_mismatch_fails_showing_expected_and_got(
    service, runner, make_task, grant, notes
):
    expect = {"json": {"active": False, "count": True, "user.title": "CFO", "user.emails.3": "?"}}
    task = make_task(step(service.url("/users/alice"), expect=expect), agent=grant(local(service)))

    with pytest.raises(errors.PermanentError) as failed:
        await runner.run(task, notes)

    assert failed.value.reason == "UnexpectedResponse"
    assert str(failed.value) == (
        f"GET {service.url('/users/alice')}: response JSON does not match: "
        "`active`: expected false, got true; `count`: expected true, got 1; "
        '`user.title`: expected "CFO", missing; `user.emails.3`: expected "?", missing'
    )


async def test_unexpected_client_error_status_fails_with_the_answer(
    service, runner, make_task, grant, notes
):
    task = make_task(step(service.url("/status/404")), agent=grant(local(service)))

    with pytest.raises(errors.PermanentError) as failed:
        await runner.run(task, notes)

    assert not isinstance(failed.value, errors.TemporaryError)
    assert failed.value.reason == "UnexpectedResponse"
    assert str(failed.value).endswith("expected status 2xx, got 404 Not Found: nope")


async def test_a_success_other_than_the_expected_status_fails(
    service, runner, make_task, grant, notes
):
    task = make_task(step(service.url("/status/201"), expect={"status": 200}),
                     agent=grant(local(service)))

    with pytest.raises(errors.PermanentError, match="expected status 200, got 201 Created"):
        await runner.run(task, notes)


async def test_without_expectations_any_2xx_passes(service, runner, make_task, grant, notes):
    task = make_task(step(service.url("/status/204")), agent=grant(local(service)))

    done = await runner.run(task, notes)

    assert done.message.endswith("answered 204 No Content")


async def test_service_unavailable_is_temporary(service, runner, make_task, grant, notes):
    task = make_task(step(service.url("/status/503")), agent=grant(local(service)))

    with pytest.raises(errors.TemporaryError) as later:
        await runner.run(task, notes)

    assert later.value.delay is None
    assert "503 Service Unavailable" in str(later.value)


@pytest.mark.parametrize(("retry_after", "delay"), [
    ("7", timedelta(seconds=7)),
    ("Tue, 01 Dec 2026 09:02:00 GMT", timedelta(minutes=2)),
    ("86400", timedelta(hours=1)),
    ("soon", None),
])
async def test_too_many_requests_waits_as_retry_after_says(
    retry_after, delay, service, runner, make_task, grant, notes
):
    task = make_task(step(service.url(f"/status/429?retry={retry_after}")),
                     agent=grant(local(service)))

    with pytest.raises(errors.TemporaryError) as later:
        await runner.run(task, notes)

    assert later.value.delay == delay


async def test_connection_refused_is_temporary(runner, make_task, grant, notes):
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        task = make_task(step(f"http://127.0.0.1:{port}/healthz"), agent=grant(http(f"127.0.0.1:{port}")))

        with pytest.raises(errors.TemporaryError) as later:
            await runner.run(task, notes)

    assert isinstance(later.value.__cause__, OSError)


async def test_request_carries_method_headers_and_json_body(
    service, runner, make_task, grant, notes
):
    task = make_task(step(
        service.url("/echo"), method="POST", headers={"X-Team": "payments"},
        json={"name": "Alice Smith", "tags": [1, 2]},
        expect={"json": {"method": "POST", "team": "payments", "body.name": "Alice Smith",
                         "body.tags": [1, 2]}},
    ), agent=grant(local(service)))

    await runner.run(task, notes)


async def test_redirect_to_a_granted_host_is_followed(service, runner, make_task, grant, notes):
    target = service.url("/users/alice", "api.corp.test")
    task = make_task(step(service.url(f"/redirect?to={target}"), expect={"json": {"active": True}}),
                     agent=grant(http(service.origin(), service.origin("api.corp.test"))))

    done = await runner.run(task, notes)

    assert done.message == f"GET {target} answered 200 OK"


async def test_credentials_in_the_url_stay_out_of_messages_and_context(
    service, runner, make_task, grant, notes
):
    url = service.url("/users/alice", "bob:hunter2@127.0.0.1")
    task = make_task(step(url, expect={"json": {"active": False}}), agent=grant(local(service)))

    with pytest.raises(errors.PermanentError) as failed:
        await runner.run(task, notes)

    assert "hunter2" not in str(failed.value)
    assert "hunter2" not in notes.entries[0][1]


async def test_redirect_to_another_host_is_capability_missing(
    service, runner, make_task, grant, notes
):
    target = service.url("/users/alice", "elsewhere.test")
    task = make_task(step(service.url(f"/redirect?to={target}")), agent=grant(local(service)))

    with pytest.raises(errors.CapabilityMissing) as blocked:
        await runner.run(task, notes)

    assert blocked.value.capability == f"http: {service.origin('elsewhere.test')}"
    assert "/users/alice" not in service.hits


async def test_oversized_body_is_cut_and_its_json_not_checked(
    service, runner, make_task, grant, notes
):
    task = make_task(step(service.url("/big"), expect={"json": {"a": 1}}),
                     agent=grant(local(service)))

    with pytest.raises(errors.PermanentError, match="response is over 1048576 bytes"):
        await runner.run(task, notes)

    [(_, text)] = notes.entries
    assert len(text) < 1000


async def test_body_that_is_not_json_fails_when_json_is_expected(
    service, runner, make_task, grant, notes
):
    task = make_task(step(service.url("/text"), expect={"json": {"a": 1}}),
                     agent=grant(local(service)))

    with pytest.raises(errors.PermanentError, match="response is not JSON: hello, not json"):
        await runner.run(task, notes)


async def test_a_server_slower_than_the_step_timeout_fails_the_attempt(
    service, runner, make_task, grant, notes
):
    task = make_task({**step(service.url("/hang")), "timeout": "1s"}, agent=grant(local(service)))

    with pytest.raises(errors.PermanentError) as failed:
        await runner.run(task, notes)

    assert failed.value.reason == "TimedOut"
