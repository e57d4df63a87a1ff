"""A reaction that decides nothing (not an approver, already counted, out of date, not
waiting) is answered with an ephemeral message in the channel where it was made, not in the
request's thread, and that message names who can approve."""

from __future__ import annotations

from georgebot.devslack import Ephemeral
from tests.engine.harness import job, step
from tests.slack.support import ALEX, IT_TEAM, OPS, PAT, SAM, George


def gated(**ask: object) -> object:
    return job("j", step("gate", ask={**ask}), step("after", needs=("gate",)))


async def told(george: George, user: str, count: int = 1) -> Ephemeral:
    await george.until(lambda: len(george.slack.ephemerals(user)) >= count)
    answer = george.slack.ephemerals(user)[count - 1]
    assert (answer.channel, answer.thread_ts) == (OPS, None)  # in the channel, where it was made
    return answer


async def test_a_stranger_is_told_who_can_approve_in_the_channel(george: George) -> None:
    george.commit(gated(approvers=[ALEX, IT_TEAM]))
    request = await george.until(lambda: george.approval("j", "gate"))

    await george.react(PAT, request, "white_check_mark")

    answer = await told(george, PAT)
    assert f"Only <@{ALEX}> or <!subteam^{IT_TEAM}> can approve *gate*" in answer.text


async def test_a_second_check_mark_is_told_it_counted_once_and_who_else_can_approve(
        george: George) -> None:
    george.commit(gated(approvers=[ALEX, SAM], quorum=2))
    request = await george.until(lambda: george.approval("j", "gate"))
    await george.react(ALEX, request, "white_check_mark")
    await george.until(lambda: "(1 of 2 approvals)" in george.thread_text("j"))

    await george.react(ALEX, request, "heavy_check_mark")

    answer = await told(george, ALEX)
    assert "already counted" in answer.text and "1 of 2" in answer.text
    assert f"<@{SAM}>" in answer.text


async def test_an_answer_on_a_closed_request_names_its_approvers(george: George) -> None:
    george.commit(gated(approvers=[ALEX, SAM]))
    request = await george.until(lambda: george.approval("j", "gate"))
    await george.react(ALEX, request, "white_check_mark")
    await george.until(lambda: george.step_status("j", "after") == "Succeeded")

    await george.react(SAM, request, "x")

    answer = await told(george, SAM)
    assert "already approved" in answer.text
    assert f"<@{ALEX}> or <@{SAM}>" in answer.text


async def test_the_author_of_a_job_is_told_the_four_eyes_rule_needs_someone_else(george: George) -> None:
    from dataclasses import replace

    george.source.commit(gated(approvers=[ALEX, SAM]))
    george.source.snapshot = replace(george.source.snapshot, job_authors={"j": "alex@george-local.example"})
    george.engine.wake(sync=True)
    request = await george.until(lambda: george.approval("j", "gate"))

    await george.react(ALEX, request, "white_check_mark")  # users.lookupByEmail finds Alex

    answer = await told(george, ALEX)
    assert "four-eyes rule" in answer.text and f"<@{SAM}> can" in answer.text
    assert george.step_status("j", "gate") == "Waiting"
    await george.react(SAM, request, "white_check_mark")
    await george.until(lambda: george.step_status("j", "after") == "Succeeded")

