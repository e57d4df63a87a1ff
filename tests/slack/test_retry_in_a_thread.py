"""`retry` said in a job card's thread, as `/george help` offers it: a plain message there, or a
mention with just `retry`, retries that thread's job and answers in the thread."""

from __future__ import annotations

import pytest

from tests.engine.harness import fail, job, step
from tests.slack.support import PAT, George


@pytest.mark.parametrize("said", ["retry", "@george retry", "Retry."])
async def test_retry_in_a_failed_jobs_thread_retries_it_and_says_so_there(
        george: George, said: str) -> None:
    george.runner.on("flaky", fail("exit 3"))
    george.commit(job("j", step("flaky", retries=0)))
    await george.until(lambda: "Failed" in george.headline("j"))
    george.runner.on("flaky")  # from now on it succeeds

    await george.reply(PAT, "j", said)

    await george.until(lambda: "Succeeded" in george.headline("j"))
    await george.until(lambda: "retrying flaky of j" in george.thread_text("j"))
    assert any(e.actor == f"user:{PAT}" and e.reason == "RetryRequested"
               for e in george.store.events("j"))
    assert [c.text for c in george.store.context(george.run("j").id) if c.role == "user"] == []


async def test_retry_in_a_thread_that_has_nothing_to_retry_says_why(george: George) -> None:
    george.commit(job("j", step("a")))
    await george.until(lambda: "Succeeded" in george.headline("j"))

    await george.reply(PAT, "j", "retry")

    await george.until(lambda: "j has no failed or blocked step to retry" in george.thread_text("j"))


async def test_a_reply_that_only_mentions_retry_is_context(george: George) -> None:
    george.commit(job("j", step("gate", ask={})))
    await george.until(lambda: george.approval("j", "gate"))

    await george.reply(PAT, "j", "retry it tomorrow please")

    await george.until(lambda: [c for c in george.store.context(george.run("j").id) if c.role == "user"])
    await george.idle()
    assert "retry" not in george.thread_text("j").replace("retry it tomorrow please", "")
    assert george.step_status("j", "gate") == "Waiting"
