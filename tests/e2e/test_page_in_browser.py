"""The whole path in a browser: `georgebot run` with nothing configured, the local Slack's
page in headless Chromium, an approver's click on ✅, and the card turning Succeeded."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import git
from tests.e2e.running import RunningGeorge, channel, message_with, start_george

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="no /usr/bin/chromium: install Debian's chromium package to run it"),
]

SIGN_OFF = """\
apiVersion: george/v1
kind: TaskTemplate
metadata: {name: sign-off}
spec:
  channel: "#onboarding"
  steps:
    - name: it-agrees
      ask: {channel: "#it", message: "Is the desk ready for Lee?", approvers: [U01ALEX]}
---
apiVersion: george/v1
kind: Job
metadata: {name: desk-for-lee}
spec: {template: sign-off}
"""


@pytest.fixture
def george(tmp_path: Path) -> Iterator[RunningGeorge]:
    source = tmp_path / "source"
    subprocess.run([sys.executable, "-m", "georgebot", "init", str(source)], check=True,
                   capture_output=True)
    (source / "manifests" / "sign-off.yaml").write_text(SIGN_OFF)
    git(source, "add", ".")
    git(source, "commit", "-qm", "a job that needs IT's sign-off")
    running = start_george(source, tmp_path / "home")
    try:
        yield running
    finally:
        assert running.stop() == 0


async def test_an_approver_clicks_and_the_card_turns_succeeded(george: RunningGeorge) -> None:
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=15_000)  # a cold Chromium on a busy 2-core machine is slow

    request = george.until(lambda s: message_with(s, "#it", "Is the desk ready for Lee?"))
    it = channel(george.state(), "#it")["id"]
    onboarding = channel(george.state(), "#onboarding")["id"]
    card = george.until(lambda s: message_with(s, "#onboarding", "desk-for-lee"))

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(15_000)
            await page.goto(f"{george.slack_url}/?as=U01ALEX&channel={onboarding}")
            shown = page.locator(f'[data-ts="{card["ts"]}"][data-channel="{onboarding}"]')
            await expect(shown).to_contain_text("desk-for-lee")
            await expect(shown).to_contain_text("Waiting", timeout=15_000)

            await page.get_by_test_id("channel-it").click()
            asked = page.locator(f'[data-ts="{request["ts"]}"][data-channel="{it}"]')
            await expect(asked).to_contain_text("Is the desk ready for Lee?", timeout=15_000)
            await asked.get_by_test_id("react-white_check_mark").click()

            await page.get_by_test_id("channel-onboarding").click()
            await expect(shown).to_contain_text("Succeeded", timeout=15_000)
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "george-card-succeeded.png"))
        finally:
            await browser.close()
