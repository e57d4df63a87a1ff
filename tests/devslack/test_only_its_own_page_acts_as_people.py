"""The local Slack is for one person on one machine: it answers only its own address, only its
own page (which holds this start's token in a cookie) acts as people, and the Web API only
George (this start's bot token). Each test speaks raw HTTP, as another site or program would."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from georgebot.devslack import LocalSlack
from tests.devslack.support import ALEX, GEORGE_CHANNEL, as_the_page


async def fetch(slack: LocalSlack, method: str, path: str, *, token: str | None = None,
                headers: dict[str, str] | None = None, **kwargs: Any) -> tuple[int, str, Any]:
    """One request from a client with no cookie jar; `token` is sent as the page's cookie."""
    sent = dict(headers or {})
    if token is not None:
        sent["Cookie"] = f"{slack.guard.cookie_name}={token}"
    async with (aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http,
                http.request(method, f"{slack.url}{path}", headers=sent, **kwargs) as answer):
        return answer.status, await answer.text(), answer.headers


async def card(slack: LocalSlack) -> str:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    return str((await client.chat_postMessage(channel=GEORGE_CHANNEL, text="approve me"))["ts"])


def approve(ts: str) -> dict[str, str]:
    return {"user": ALEX, "channel": GEORGE_CHANNEL, "ts": ts, "name": "white_check_mark"}


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/local/session", "/local/api/state",
                                  "/api/auth.test", "/socket"])
async def test_a_request_addressed_to_another_host_is_refused(slack: LocalSlack, path: str) -> None:
    # DNS rebinding: a page on evil.example, whose name now points at 127.0.0.1, reads or acts.
    bearer = {"Authorization": f"Bearer {slack.bot_token}"}
    for host in (f"evil.example:{slack.port}", "127.0.0.1", f"127.0.0.1:{slack.port + 1}"):
        status, text, _ = await fetch(slack, "GET", path, token=slack.guard.token,
                                      headers={"Host": host, **bearer})
        assert status == 421, host
        assert "not a multi-user service" in text


async def test_its_own_address_by_any_loopback_name_is_answered(slack: LocalSlack) -> None:
    for host in (f"127.0.0.1:{slack.port}", f"localhost:{slack.port}", f"[::1]:{slack.port}"):
        status, _, _ = await fetch(slack, "GET", "/", headers={"Host": host})
        assert status == 200, host
        status, _, _ = await fetch(slack, "POST", "/api/auth.test", headers={
            "Host": host, "Authorization": f"Bearer {slack.bot_token}"})
        assert status == 200, host


async def test_a_request_from_another_origin_is_refused(slack: LocalSlack) -> None:
    ts = await card(slack)
    for origin in ("https://evil.example", f"http://127.0.0.1:{slack.port + 1}", "null"):
        status, text, headers = await fetch(
            slack, "POST", "/local/api/reactions", token=slack.guard.token,
            headers={"Origin": origin}, json=approve(ts))
        assert status == 403, origin
        assert "only from its own page" in text
        assert "Access-Control-Allow-Origin" not in headers
        status, _, _ = await fetch(slack, "POST", "/api/reactions.add", json={
            "channel": GEORGE_CHANNEL, "timestamp": ts, "name": "x"},
            headers={"Origin": origin, "Authorization": f"Bearer {slack.bot_token}"})
        assert status == 403, origin
    assert slack.messages(GEORGE_CHANNEL)[0].reactions == {}


async def test_a_browser_request_from_another_site_is_refused_but_a_link_to_the_page_works(
    slack: LocalSlack,
) -> None:
    # Same-site is another port on this machine: still not the local Slack's own page.
    for site in ("cross-site", "same-site"):
        fetched = {"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "script"}
        status, _, _ = await fetch(slack, "GET", "/local/api/state", token=slack.guard.token,
                                   headers=fetched)
        assert status == 403, site
        framed = {"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe"}
        assert (await fetch(slack, "GET", "/", headers=framed))[0] == 403
        followed = {"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
        status, _, headers = await fetch(slack, "GET", "/", headers=followed)
        assert status == 200 and headers["X-Frame-Options"] == "DENY"
        assert headers["Content-Security-Policy"] == "frame-ancestors 'none'"


async def test_a_form_post_to_the_page_api_is_refused(slack: LocalSlack) -> None:
    ts = await card(slack)
    for body in ({"data": approve(ts)},
                 {"data": '{"user": "U01ALEX"}', "headers": {"Content-Type": "text/plain"}}):
        status, text, _ = await fetch(slack, "POST", "/local/api/reactions",
                                      token=slack.guard.token, **body)  # type: ignore[arg-type]
        assert (status, text) == (415, '{"ok": false, "error": "json_required"}')
    assert slack.messages(GEORGE_CHANNEL)[0].reactions == {}


@pytest.mark.parametrize(("token", "error"), [(None, "not_authed"), ("guessed", "invalid_auth")])
async def test_the_page_api_needs_the_page_token(
    slack: LocalSlack, token: str | None, error: str
) -> None:
    ts = await card(slack)
    for method, path, body in (("POST", "/local/api/reactions", approve(ts)),
                               ("POST", "/local/api/faults", {"disconnect": True}),
                               ("GET", "/local/api/state", None), ("GET", "/local/live", None)):
        status, text, _ = await fetch(slack, method, path, token=token, json=body)
        assert (status, text) == (401, f'{{"ok": false, "error": "{error}"}}'), path
    assert slack.messages(GEORGE_CHANNEL)[0].reactions == {}


async def test_the_page_gets_its_token_as_a_cookie_no_script_can_read(slack: LocalSlack) -> None:
    status, page, headers = await fetch(slack, "GET", "/")
    assert status == 200 and slack.guard.token not in page
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"{slack.guard.cookie_name}={slack.guard.token};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    status, _, headers = await fetch(slack, "GET", "/local/session")
    assert status == 204 and slack.guard.token in headers["Set-Cookie"]
    # No CORS: a preflight from another origin is refused, and none says "allowed".
    for origin in ("https://evil.example", slack.url):
        status, _, headers = await fetch(slack, "OPTIONS", "/local/api/reactions", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"})
        assert status >= 400 and "Access-Control-Allow-Origin" not in headers
    async with LocalSlack(port=0) as another_start:
        assert another_start.guard.token != slack.guard.token
        assert another_start.bot_token != slack.bot_token


async def test_with_the_token_from_its_own_page_a_person_acts(slack: LocalSlack) -> None:
    ts = await card(slack)
    as_chrome_sends_it = {"Origin": slack.url, "Sec-Fetch-Site": "same-origin",
                          "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}
    async with as_the_page(slack) as page:
        async with page.post("/local/api/reactions", json=approve(ts),
                             headers=as_chrome_sends_it) as answer:
            assert (answer.status, await answer.json()) == (200, {"ok": True, "changed": True})
        async with page.get("/local/api/state") as answer:
            assert answer.status == 200
        async with page.ws_connect("/local/live", origin=slack.url) as live:
            assert (await live.receive_json())["type"] == "changed"
    assert slack.messages(GEORGE_CHANNEL)[0].reactions == {"white_check_mark": [ALEX]}


async def test_the_live_channel_refuses_another_origin(slack: LocalSlack) -> None:
    async with as_the_page(slack) as page:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await page.ws_connect("/local/live", origin="https://evil.example")
        assert refused.value.status == 403


async def test_the_web_api_takes_only_this_starts_bot_token(slack: LocalSlack) -> None:
    for guess in ("xoxb-devslack-george", "xoxb-" + slack.bot_token[5:-1]):
        client = AsyncWebClient(token=guess, base_url=slack.api_url)
        with pytest.raises(SlackApiError) as raised:
            await client.chat_postMessage(channel=GEORGE_CHANNEL, text="as George")
        assert raised.value.response["error"] == "invalid_auth"
    # The page token is no bot token, nor the other way round.
    client = AsyncWebClient(token=slack.guard.token, base_url=slack.api_url)
    with pytest.raises(SlackApiError):
        await client.auth_test()
    status, _, _ = await fetch(slack, "GET", "/local/api/state", token=slack.bot_token)
    assert status == 401
    assert slack.messages(GEORGE_CHANNEL) == []
