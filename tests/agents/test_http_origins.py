"""Host grants name ports, credentials stay with their origin across redirects, and a request
that cannot be sent as written fails as final with `InvalidInput`: `http` steps through the
real HttpRunner against two local aiohttp servers on two ports of 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer
from pydantic import ValidationError

from georgebot import errors
from georgebot.agents.http import HttpRunner
from georgebot.engine.execution import run_step_once
from georgebot.model.specs import AgentSpec, StepForm, split_grant, url_grant
from georgebot.model.status import StepStatus

SECRET_HEADERS = {
    "Authorization": "Bearer s3cr3t-token",
    "Cookie": "session=s3cr3t-cookie",
    "Proxy-Authorization": "Basic s3cr3t-proxy",
    "X-Api-Key": "s3cr3t-key",
}


class Loopback(AbstractResolver):
    """Every name is 127.0.0.1, so grants can be tested with real names and ports."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [{"hostname": host, "host": "127.0.0.1", "port": port,
                 "family": socket.AF_INET, "proto": 0, "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        pass


class Server:
    """One port: `/redirect?to=URL` answers 302, `/echo` answers with the headers it got."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        app = web.Application()
        app.router.add_get("/redirect", self._redirect)
        app.router.add_get("/echo", self._echo)
        self.server = TestServer(app)

    @property
    def port(self) -> int:
        port = self.server.port
        assert port is not None
        return port

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def grant(self, host: str = "127.0.0.1") -> str:
        return f"{host}:{self.port}"

    async def _redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def _echo(self, request: web.Request) -> web.Response:
        self.seen.append(dict(request.headers))
        return web.json_response({"ok": True})


@pytest.fixture
async def servers() -> AsyncIterator[tuple[Server, Server]]:
    a, b = Server(), Server()
    await a.server.start_server()
    await b.server.start_server()
    try:
        yield a, b
    finally:
        await a.server.close()
        await b.server.close()


@pytest.fixture
async def runner() -> AsyncIterator[HttpRunner]:
    runner = HttpRunner(resolver=Loopback())
    await runner.start()
    try:
        yield runner
    finally:
        await runner.close()


def hosts(*granted: str) -> dict[str, Any]:
    return {"http": {"hosts": list(granted)}}


def step(url: str, **fields: Any) -> dict[str, Any]:
    return {"name": "directory-up", "http": {"url": url, **fields}}


async def test_a_redirect_to_another_port_arrives_without_credentials(
    servers, runner, make_task, grant, notes
):
    a, b = servers
    headers = {**SECRET_HEADERS, "X-Team": "payments"}
    task = make_task(step(a.url(f"/redirect?to={b.url('/echo')}"), headers=headers),
                     agent=grant(hosts(a.grant(), b.grant())))

    done = await runner.run(task, notes)

    assert done.message == f"GET {b.url('/echo')} answered 200 OK"
    [got] = b.seen
    assert not {"Authorization", "Cookie", "Proxy-Authorization", "X-Api-Key"} & set(got)
    assert got["X-Team"] == "payments"


async def test_a_redirect_to_another_host_on_the_same_port_drops_credentials(
    servers, runner, make_task, grant, notes
):
    a, _ = servers
    target = a.url("/echo", "api.corp.test")
    task = make_task(step(a.url(f"/redirect?to={target}"), headers=SECRET_HEADERS),
                     agent=grant(hosts(a.grant(), a.grant("api.corp.test"))))

    await runner.run(task, notes)

    [got] = a.seen
    assert "Authorization" not in got and "Cookie" not in got


async def test_a_same_origin_redirect_keeps_credentials(servers, runner, make_task, grant, notes):
    a, _ = servers
    task = make_task(step(a.url(f"/redirect?to={a.url('/echo')}"), headers=SECRET_HEADERS),
                     agent=grant(hosts(a.grant())))

    await runner.run(task, notes)

    [got] = a.seen
    assert {k: got[k] for k in SECRET_HEADERS} == SECRET_HEADERS


async def test_a_grant_without_a_port_refuses_another_port_naming_the_grant_to_add(
    servers, runner, make_task, grant, notes
):
    a, _ = servers
    task = make_task(step(a.url("/echo")), agent=grant(hosts("127.0.0.1")))

    with pytest.raises(errors.CapabilityMissing) as blocked:
        await runner.run(task, notes)

    assert blocked.value.capability == f"http: 127.0.0.1:{a.port}"
    assert f'add `- http: {{hosts: ["127.0.0.1:{a.port}"]}}`' in str(blocked.value)
    assert "a grant without a port allows only the default port of http, 80" in str(blocked.value)
    assert a.seen == []


async def test_a_grant_naming_the_port_allows_it(servers, runner, make_task, grant, notes):
    a, _ = servers
    task = make_task(step(a.url("/echo")), agent=grant(hosts(f"127.0.0.1:{a.port}")))

    done = await runner.run(task, notes)

    assert done.message.endswith("answered 200 OK")
    assert len(a.seen) == 1


async def test_a_grant_of_one_port_refuses_another(servers, runner, make_task, grant, notes):
    a, b = servers
    task = make_task(step(b.url("/echo")), agent=grant(hosts(a.grant())))

    with pytest.raises(errors.CapabilityMissing) as blocked:
        await runner.run(task, notes)

    assert blocked.value.capability == f"http: 127.0.0.1:{b.port}"
    assert b.seen == []


async def test_a_wildcard_grant_with_a_port_allows_that_port_of_subdomains_only(
    servers, runner, make_task, grant, notes
):
    a, b = servers
    agent = grant(hosts(f"*.corp.test:{a.port}"))

    done = await runner.run(make_task(step(a.url("/echo", "api.corp.test")), agent=agent), notes)
    with pytest.raises(errors.CapabilityMissing) as other_port:
        await runner.run(make_task(step(b.url("/echo", "api.corp.test")), agent=agent), notes)
    with pytest.raises(errors.CapabilityMissing):
        await runner.run(make_task(step(a.url("/echo", "corp.test")), agent=agent), notes)

    assert done.message.endswith("answered 200 OK")
    assert other_port.value.capability == f"http: api.corp.test:{b.port}"
    assert (len(a.seen), b.seen) == (1, [])


async def test_every_redirect_hop_needs_the_grant_of_its_port(servers, runner, make_task, grant, notes):
    a, b = servers
    task = make_task(step(a.url(f"/redirect?to={b.url('/echo')}")), agent=grant(hosts(a.grant())))

    with pytest.raises(errors.CapabilityMissing) as blocked:
        await runner.run(task, notes)

    assert blocked.value.capability == f"http: 127.0.0.1:{b.port}"
    assert b.seen == []


@pytest.mark.parametrize(("headers", "said"), [
    ({"X-Team": "payments\r\nX-Injected: 1"}, "header X-Team cannot be sent: its value holds a line break"),
    ({"X-Team": "pay\nments"}, "header X-Team cannot be sent"),
    ({"X-Team": "pay\x00ments"}, "another control character"),
    ({"X-Team\r\nX-Injected": "1"}, 'header name "X-Team\\r\\nX-Injected" cannot be sent'),
    ({"X Team": "1"}, 'header name "X Team" cannot be sent'),
])
async def test_a_header_that_cannot_be_sent_fails_the_attempt_as_final_invalid_input(
    headers, said, servers, runner, make_task, grant, notes
):
    a, _ = servers
    task = make_task(step(a.url("/echo"), headers=headers), agent=grant(hosts(a.grant())))

    outcome = await run_step_once(runner, task, notes)

    assert task.step.form is StepForm.HTTP
    assert (outcome.status, outcome.reason, outcome.final) == (StepStatus.FAILED, "InvalidInput", True)
    assert said in outcome.message
    assert a.seen == []


async def test_a_header_value_is_never_quoted_in_the_failure(servers, runner, make_task, grant, notes):
    a, _ = servers
    task = make_task(step(a.url("/echo"), headers={"Authorization": "Bearer s3cr3t\r\n"}),
                     agent=grant(hosts(a.grant())))

    with pytest.raises(errors.PermanentError) as failed:
        await runner.run(task, notes)

    assert "s3cr3t" not in str(failed.value)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:{port}/echo\r\nX-Injected: 1",
    "http://exa mple.test:{port}/echo",
    "http://127.0.0.1:99999/echo",
    "ftp://127.0.0.1:{port}/echo",
    "not a url",
])
async def test_an_invalid_url_fails_the_attempt_as_final_invalid_input(
    url, servers, runner, make_task, grant, notes
):
    a, _ = servers
    task = make_task(step(url.format(port=a.port)), agent=grant(hosts(a.grant())))

    outcome = await run_step_once(runner, task, notes)

    assert (outcome.status, outcome.reason, outcome.final) == (StepStatus.FAILED, "InvalidInput", True)
    assert a.seen == []


async def test_a_failed_request_names_its_url_without_credentials(runner, make_task, grant, notes):
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        url = f"http://bob:s3cr3t@127.0.0.1:{port}/healthz?access_token=s3cr3t2&user=alice"
        task = make_task(step(url), agent=grant(hosts(f"127.0.0.1:{port}")))

        with pytest.raises(errors.TemporaryError) as later:
            await runner.run(task, notes)

    assert str(later.value).startswith(
        f"GET http://***@127.0.0.1:{port}/healthz?access_token=***&user=alice: "
    )
    assert "s3cr3t" not in str(later.value)


@pytest.mark.parametrize(("entry", "parsed"), [
    ("127.0.0.1", ("127.0.0.1", None)),
    ("127.0.0.1:8080", ("127.0.0.1", 8080)),
    ("API.Example.Internal:8443", ("api.example.internal", 8443)),
    ("*.corp.example:443", ("*.corp.example", 443)),
    ("[::1]:8080", ("::1", 8080)),
    ("::1", ("::1", None)),
])
def test_a_host_grant_may_name_a_port(entry, parsed):
    assert split_grant(entry) == parsed


@pytest.mark.parametrize("entry", [
    "https://api.example.internal", "api.example.internal/x", "api.example.internal:0",
    "api.example.internal:http", "*", "a b", "[::1", "user@api.example.internal",
])
def test_a_host_grant_that_is_not_a_host_is_a_manifest_error(entry):
    with pytest.raises(ValidationError, match="is not a host grant"):
        agent(entry)


@pytest.mark.parametrize(("granted", "url", "allowed"), [
    ("127.0.0.1", "http://127.0.0.1/healthz", True),
    ("127.0.0.1", "http://127.0.0.1:80/healthz", True),
    ("127.0.0.1", "https://127.0.0.1/healthz", True),
    ("127.0.0.1", "http://127.0.0.1:8080/healthz", False),  # George's own server
    ("127.0.0.1", "http://127.0.0.1:3000/api/", False),  # the local Slack
    ("127.0.0.1", "http://127.0.0.1:443/", False),  # 443 is https's default, not http's
    ("127.0.0.1:8080", "http://127.0.0.1:8080/healthz", True),
    ("127.0.0.1:8080", "https://127.0.0.1:8080/healthz", True),
    ("127.0.0.1:8080", "http://127.0.0.1/healthz", False),
    ("*.corp.example:443", "https://api.corp.example/", True),
    ("*.corp.example:443", "http://api.corp.example/", False),
    ("*.corp.example", "https://corp.example/", False),
    ("[::1]:8080", "http://[::1]:8080/", True),
    ("api.example.internal", "ftp://api.example.internal/", False),
])
def test_a_grant_without_a_port_allows_the_schemes_default_port_only(granted, url, allowed):
    assert agent(granted).spec.allows_url(url) is allowed


def test_a_host_only_question_counts_any_port_for_early_warnings():
    assert agent("127.0.0.1:8080").spec.allows_host("127.0.0.1")
    assert not agent("127.0.0.1:8080").spec.allows_host("127.0.0.1", 3000, "http")


@pytest.mark.parametrize(("url", "grant_text"), [
    ("http://127.0.0.1:8080/healthz", "127.0.0.1:8080"),
    ("https://api.example.internal/users", "api.example.internal"),
    ("https://api.example.internal:443/users", "api.example.internal"),
    ("http://api.example.internal:443/users", "api.example.internal:443"),
    ("http://[::1]:8080/", "[::1]:8080"),
    ("not a url", None),
])
def test_the_grant_to_add_for_a_url(url, grant_text):
    assert url_grant(url) == grant_text


def agent(*granted: str) -> AgentSpec:
    return AgentSpec.model_validate({
        "apiVersion": "george/v1", "kind": "AgentSpec", "metadata": {"name": "it-helper"},
        "spec": {"capabilities": [hosts(*granted)]},
    })
