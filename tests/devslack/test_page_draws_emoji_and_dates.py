"""The page in headless Chromium draws what George sends as Slack does: every standard emoji
shortcode (skin tones too) and `<!date^…>` tokens as dates in the reader's time zone."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from georgebot.config import Settings
from georgebot.devslack import LocalSlack
from tests.devslack.support import ALEX, GEORGE_CHANNEL
from tests.devslack.test_page_in_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, pytestmark

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

__all__ = ["pytestmark"]  # skipped without Chromium, as the page's other browser tests

SLACK_ADAPTER = Path(__file__).resolve().parents[2] / "georgebot" / "slack"
STAMP = 1700000000  # 2023-11-14 22:13:20 UTC
CARD: list[dict[str, Any]] = [
    {"type": "header", "text": {"type": "plain_text", "text": ":rocket: release-42 · Waiting"}},
    {"type": "section", "text": {"type": "mrkdwn", "text": (
        ":raising_hand: *sign-off* — waiting for <@U01ALEX> since "
        f"<!date^{STAMP}^{{date_short}} at {{time}}|2023-11-14 22:13 UTC>\n"
        ":wave::skin-tone-4: :raising_hand::skin-tone-2: :sauropod: :hourglass_flowing_sand: "
        ":white_check_mark:"
    )}},
    {"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"started <!date^{STAMP}^{{date_long}}|2023-11-14>"},
    ]},
]


async def open_as(browser: Browser, slack: LocalSlack, user: str) -> Page:
    """The page in a UTC, en-US browser, as `user`, in #george."""
    context = await browser.new_context(timezone_id="UTC", locale="en-US",
                                        viewport={"width": 1100, "height": 560})
    page = await context.new_page()
    page.set_default_timeout(15_000)
    await page.goto(f"{slack.url}/?as={user}&channel={GEORGE_CHANNEL}")
    return page


async def test_the_page_draws_emoji_with_skin_tones_and_dates_in_the_readers_time_zone(
        slack: LocalSlack, client: AsyncWebClient) -> None:
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=15_000)  # a cold Chromium on a busy 2-core machine is slow
    posted = await client.chat_postMessage(channel=GEORGE_CHANNEL, text="release-42", blocks=CARD)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await open_as(browser, slack, ALEX)
            card = page.locator(f'[data-ts="{posted["ts"]}"]')

            await expect(card.locator(".block-header")).to_have_text("🚀 release-42 · Waiting")
            section = card.locator(".block-section")
            await expect(section).to_contain_text("🙋 sign-off — waiting for @Alex Kim since "
                                                  "Nov 14, 2023 at 10:13 PM")
            await expect(section).to_contain_text("👋🏽 🙋🏻 🦕 ⏳ ✅")
            await expect(card.locator(".block-context")).to_contain_text(
                "started Tuesday, November 14th, 2023")
            assert ":" not in (await section.inner_text()).replace("10:13", "")
            assert "@2023" not in await card.inner_text()
            await expect(card.locator("time.slack-date").first).to_have_attribute(
                "title", "2023-11-14 22:13 UTC")
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "devslack-emoji-and-dates.png"))
        finally:
            await browser.close()


async def test_every_emoji_george_sends_is_in_the_pages_table(slack: LocalSlack) -> None:
    settings = Settings()
    used = {*settings.approve_reactions, *settings.reject_reactions}
    for source in SLACK_ADAPTER.glob("*.py"):
        used |= set(re.findall(r'[":]:([a-z][a-z0-9_+-]*):', source.read_text()))
    async with aiohttp.ClientSession() as http, http.get(f"{slack.url}/local/emoji.json") as answer:
        table = await answer.json()

    assert {"white_check_mark", "x", "hourglass_flowing_sand", "warning"} <= used
    assert sorted(used - set(table["emoji"])) == []
    assert table["emoji"]["raising_hand"] == "🙋" and "raising_hand" in table["toned"]
    assert len(table["emoji"]) > 2000  # any standard shortcode, not only George's
