"""The page in headless Chromium: an approver sees George's card, clicks ✅, state records it."""

from __future__ import annotations

from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from georgebot.devslack import LocalSlack
from tests.devslack.support import ALEX, GEORGE_CHANNEL

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="no /usr/bin/chromium: install the system package (apt-get install chromium)",
)


def card(status: str) -> list[dict[str, object]]:
    return [
        {"type": "header", "text": {"type": "plain_text", "text": f"onboard-alice · {status}"}},
        {"type": "context", "elements": [
            {"type": "mrkdwn", "text": "template *onboard-employee* · started by <@U01SAM>"},
        ]},
        {"type": "divider"},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": ":white_check_mark: *create-account*\nSucceeded"},
            {"type": "mrkdwn", "text": ":hourglass_flowing_sand: *laptop-ordered*\n"
                                       "Waiting for <!subteam^S0ITTEAM>"},
        ]},
        {"type": "section", "text": {
            "type": "mrkdwn", "text": "React :white_check_mark: to approve, :x: to reject.",
        }},
    ]


async def test_an_approver_approves_a_card_with_a_click(
    slack: LocalSlack, client: AsyncWebClient
) -> None:
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=15_000)  # a cold Chromium on a busy 2-core machine is slow

    posted = await client.chat_postMessage(
        channel=GEORGE_CHANNEL, text="onboard-alice is waiting", blocks=card("Waiting")
    )
    await client.chat_postMessage(
        channel=GEORGE_CHANNEL, text="Asked <!subteam^S0ITTEAM> about the laptop",
        thread_ts=posted["ts"],
    )

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 760})
            page.set_default_timeout(15_000)
            await page.goto(f"{slack.url}/?as={ALEX}&channel={GEORGE_CHANNEL}")
            message = page.locator(f'[data-ts="{posted["ts"]}"][data-channel="{GEORGE_CHANNEL}"]')
            await expect(message.locator(".block-header")).to_have_text(
                "onboard-alice · Waiting"
            )
            await expect(message.locator(".fields")).to_contain_text("Waiting for @it-team")

            await message.get_by_test_id("react-white_check_mark").click()
            await slack.wait_for(
                lambda: slack.messages(GEORGE_CHANNEL)[0].reactions == {"white_check_mark": [ALEX]}
            )
            await expect(message.get_by_test_id("reaction-white_check_mark")).to_contain_text("1")

            # George edits the card: the page follows live, without a reload.
            await client.chat_update(
                channel=GEORGE_CHANNEL, ts=posted["ts"], text="done", blocks=card("Succeeded")
            )
            await expect(message.locator(".block-header")).to_have_text(
                "onboard-alice · Succeeded"
            )
            await message.get_by_test_id("open-thread").click()
            await expect(page.get_by_test_id("thread")).to_contain_text("about the laptop")

            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "devslack-page.png"))
        finally:
            await browser.close()


async def test_an_open_page_keeps_working_when_the_local_slack_restarts(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=15_000)
    state_file = tmp_path / "local-slack.json"
    first = LocalSlack(port=0, state_file=state_file)
    await first.start()
    port = first.port
    try:
        client = AsyncWebClient(token=first.bot_token, base_url=first.api_url)
        posted = await client.chat_postMessage(channel=GEORGE_CHANNEL, text="approve me")
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
            )
            try:
                page = await browser.new_page()
                page.set_default_timeout(15_000)
                await page.goto(f"{first.url}/?as={ALEX}&channel={GEORGE_CHANNEL}")
                message = page.locator(f'[data-ts="{posted["ts"]}"]')
                await expect(message).to_contain_text("approve me")

                # George restarts: a new page token; the page still holds the old one.
                await first.close()
                async with LocalSlack(port=port, state_file=state_file) as second:
                    assert second.guard.token != first.guard.token
                    await message.get_by_test_id("react-white_check_mark").click()
                    await second.wait_for(
                        lambda: second.messages(GEORGE_CHANNEL)[0].reactions
                        == {"white_check_mark": [ALEX]}
                    )
                    await expect(message.get_by_test_id("reaction-white_check_mark")).to_contain_text(
                        "1"
                    )
            finally:
                await browser.close()
    finally:
        await first.close()
