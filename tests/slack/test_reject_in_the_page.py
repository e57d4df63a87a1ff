"""In the local Slack's page (headless Chromium), an approver clicks Reject on George's
request, types the reason in the modal and submits: the step fails with that reason and the
request says so in place, with no buttons left."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.devslack.test_page_in_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.engine.harness import job, step
from tests.slack.support import ALEX, OPS, SAM, George

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="no /usr/bin/chromium: install the system package (apt-get install chromium)",
)


async def test_an_approver_rejects_in_the_page_with_a_reason(george: George) -> None:
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=15_000)  # a cold Chromium on a busy 2-core machine is slow
    george.commit(job("j", step("gate", ask={"approvers": [ALEX, SAM], "message": "Order a laptop "
                                             "for Alice (£1,450)?"}), step("after", needs=("gate",))))
    request = await george.until(lambda: george.approval("j", "gate"))
    card = george.card("j")
    assert card is not None

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 760})
            page.set_default_timeout(15_000)
            await page.goto(f"{george.slack.url}/?as={SAM}&channel={OPS}&thread_ts={card.ts}")
            thread = page.get_by_test_id("thread")
            asked = thread.locator(f'[data-ts="{request.ts}"]')
            await expect(asked).to_contain_text("0 of 1 approval")

            await asked.get_by_test_id("button-george_reject").click()

            modal = page.get_by_test_id("modal")
            await expect(modal).to_be_visible()
            await expect(modal.locator(".modal-title")).to_have_text("Reject")
            await expect(modal).to_contain_text("You are rejecting gate of j")
            await modal.get_by_test_id("modal-submit").click()  # no reason yet: refused in place
            await expect(modal.get_by_test_id("modal-error")).to_contain_text("required")
            await modal.locator("textarea").fill("Alice already has one from her last team")
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "devslack-reject-modal.png"))
            await modal.get_by_test_id("modal-submit").click()

            await expect(modal).to_be_hidden()
            await expect(asked).to_contain_text("Rejected by @Sam")
            await expect(asked).to_contain_text("Alice already has one from her last team")
            await expect(asked.get_by_test_id("button-george_reject")).to_have_count(0)
            await page.screenshot(path=str(ARTIFACTS / "devslack-rejected.png"))
        finally:
            await browser.close()

    assert george.step_status("j", "gate") == "Failed"
    state = george.run("j").step("gate")
    assert state is not None
    assert state.message == f"rejected by <@{SAM}>: Alice already has one from her last team"
