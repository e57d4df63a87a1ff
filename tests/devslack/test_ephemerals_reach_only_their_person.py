"""An ephemeral message (and an App Home) is only for its person, as in Slack: the page asks
for the state as the person it acts as, gets no one else's, and shows it to no one else."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from georgebot.devslack import LocalSlack
from tests.devslack.support import ALEX, GEORGE_CHANNEL, PAT, as_the_page
from tests.devslack.test_page_draws_emoji_and_dates import open_as
from tests.devslack.test_page_in_browser import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture
async def http(slack: LocalSlack) -> AsyncIterator[aiohttp.ClientSession]:
    async with as_the_page(slack) as session:
        yield session


async def state_as(http: aiohttp.ClientSession, user: str) -> dict[str, object]:
    async with http.get("/local/api/state", params={"as": user}) as response:
        assert response.status == 200
        state: dict[str, object] = await response.json()
        return state


async def test_the_state_a_person_gets_holds_only_their_own_ephemerals_and_home(
        http: aiohttp.ClientSession, client: AsyncWebClient) -> None:
    await client.chat_postEphemeral(channel=GEORGE_CHANNEL, user=PAT, text="only for Pat")
    await client.views_publish(user_id=PAT, view={"type": "home", "blocks": []})

    assert (await state_as(http, ALEX))["ephemerals"] == {}
    assert (await state_as(http, ALEX))["home"] == {}
    assert (await state_as(http, ""))["ephemerals"] == {}  # nobody chosen yet: nobody's
    pats = await state_as(http, PAT)
    assert [e["text"] for e in pats["ephemerals"][PAT]] == ["only for Pat"]  # type: ignore[index]
    assert list(pats["home"]) == [PAT]  # type: ignore[call-overload]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")
async def test_the_page_shows_an_ephemeral_only_to_its_person(
        slack: LocalSlack, client: AsyncWebClient) -> None:
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=15_000)
    await client.chat_postMessage(channel=GEORGE_CHANNEL, text="the card")
    await client.chat_postEphemeral(channel=GEORGE_CHANNEL, user=PAT, text=":lock: only for Pat")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await open_as(browser, slack, ALEX)
            await expect(page.get_by_test_id("message")).to_contain_text("the card")
            await expect(page.get_by_test_id("ephemeral")).to_have_count(0)
            assert await page.evaluate("Object.keys(ui.state.ephemerals)") == []

            await page.get_by_test_id("user-switcher").select_option(PAT)
            await expect(page.get_by_test_id("ephemeral")).to_contain_text("🔒 only for Pat")
            await expect(page.get_by_test_id("ephemeral")).to_contain_text("Only visible to you")

            await page.get_by_test_id("user-switcher").select_option(ALEX)
            await expect(page.get_by_test_id("ephemeral")).to_have_count(0)
            assert await page.evaluate("Object.keys(ui.state.ephemerals)") == []
        finally:
            await browser.close()
