"""A job that fails, is blocked or stalls says so in its card's thread, mentioning the person
who committed it (its Git author, found in Slack by e-mail)."""

from __future__ import annotations

from dataclasses import replace

from tests.engine.harness import fail, job, step
from tests.slack.support import ALEX, George


async def test_a_failed_job_says_so_in_its_thread_mentioning_who_committed_it(george: George) -> None:
    george.runner.on("deploy", fail("exit 2: disk full"))
    george.source.commit(job("j", step("deploy", retries=0)))
    george.source.snapshot = replace(george.source.snapshot, job_authors={"j": "alex@george-local.example"})
    george.engine.wake(sync=True)
    await george.until(lambda: "failed" in george.thread_text("j"))
    assert f":x: *j* failed: deploy failed: exit 2: disk full <@{ALEX}>" in [
        m.text for m in george.thread("j")]
