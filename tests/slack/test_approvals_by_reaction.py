"""Approving and rejecting `ask` steps with reactions on George's request messages, over the
real bolt app connected to the local Slack by Socket Mode."""

from __future__ import annotations

from datetime import timedelta

from tests.engine.harness import job, step
from tests.slack.support import ALEX, IT, IT_TEAM, OPS, PAT, SAM, George, text_of


def gated(name: str = "j", **ask: object) -> object:
    return job(name, step("build"), step("gate", ask={**ask}, needs=("build",)),
               step("deploy", needs=("gate",)))


async def test_an_approvers_check_mark_succeeds_the_step_and_the_next_one_starts(
        george: George) -> None:
    george.commit(gated())
    request = await george.until(lambda: george.approval("j", "gate"))
    assert request.thread_ts == george.card("j").ts  # in the card's thread
    assert "ok to gate?" in text_of(request)
    assert f"<@{ALEX}>" in text_of(request) and ":white_check_mark:" in text_of(request)
    await george.until(lambda: "Waiting for approval" in george.card_text("j"))

    await george.react(ALEX, request, "white_check_mark::skin-tone-3")

    await george.until(lambda: "Succeeded" in george.headline("j"))
    assert [s for _, s, _ in george.runner.calls] == ["build", "gate", "deploy"]
    assert f"<@{ALEX}> approved *gate*" in george.thread_text("j")
    assert any(e.actor == f"user:{ALEX}" and e.reason == "Approved"
               for e in george.store.events("j"))


async def test_a_strangers_check_mark_does_nothing_but_tell_them(george: George) -> None:
    george.commit(gated())
    request = await george.until(lambda: george.approval("j", "gate"))

    await george.react(PAT, request, "white_check_mark")

    note = await george.until(lambda: george.ephemeral_text(PAT))
    assert f"Only <@{ALEX}> can approve *gate*" in note
    assert george.step_status("j", "gate") == "Waiting"
    assert any(e.actor == f"user:{PAT}" and e.reason == "NotAnApprover"
               for e in george.store.events("j"))


async def test_a_quorum_of_two_needs_two_different_people(george: George) -> None:
    george.commit(gated(approvers=[ALEX, IT_TEAM], quorum=2))
    request = await george.until(lambda: george.approval("j", "gate"))
    assert "2 approvals from different people" in text_of(request)

    await george.react(ALEX, request, "white_check_mark")
    await george.until(lambda: "(1 of 2 approvals)" in george.thread_text("j"))
    await george.react(ALEX, request, "heavy_check_mark")
    assert "already counted" in await george.until(lambda: george.ephemeral_text(ALEX))
    assert george.step_status("j", "gate") == "Waiting"

    await george.react(SAM, request, "white_check_mark")  # Sam is in the IT team group

    await george.until(lambda: f"<@{SAM}> approved *gate*." in george.thread_text("j"))
    await george.until(lambda: george.step_status("j", "deploy") == "Succeeded")


async def test_a_cross_rejects_with_the_persons_thread_reply_as_the_reason(
        george: George) -> None:
    george.commit(gated())
    request = await george.until(lambda: george.approval("j", "gate"))
    await george.reply(ALEX, "j", "no budget until March")

    await george.react(ALEX, request, "x")

    await george.until(lambda: george.step_status("j", "gate") == "Failed")
    state = george.run("j").step("gate")
    assert state is not None
    assert (state.reason, state.message) == ("Rejected", f"rejected by <@{ALEX}>: no budget until March")
    await george.until(lambda: "Failed" in george.headline("j"))
    assert f"<@{ALEX}> rejected *gate*: no budget until March" in george.thread_text("j")
    assert george.step_status("j", "deploy") == "Pending"


async def test_a_changed_step_voids_earlier_answers_and_asks_again(george: George) -> None:
    george.commit(gated(approvers=[ALEX, SAM], quorum=2))
    old = await george.until(lambda: george.approval("j", "gate"))
    await george.react(ALEX, old, "white_check_mark")
    await george.until(lambda: "(1 of 2 approvals)" in george.thread_text("j"))

    george.commit(gated(approvers=[ALEX, SAM], quorum=2, message="ok to gate v2?"), message="v2")

    new = await george.until(lambda: (m := george.approval("j", "gate")) and m.ts != old.ts and m)
    assert "ok to gate v2?" in text_of(new)
    assert "earlier answers no longer count" in text_of(new)
    await george.react(SAM, old, "white_check_mark")  # on the old request: out of date
    assert "out of date" in await george.until(lambda: george.ephemeral_text(SAM))
    await george.react(SAM, new, "white_check_mark")
    await george.until(lambda: "(1 of 2 approvals)" in text_of(george.thread(
        "j")[-1]))  # Alex's old check mark did not count
    assert george.step_status("j", "gate") == "Waiting"

    await george.react(ALEX, new, "white_check_mark")
    await george.until(lambda: george.step_status("j", "deploy") == "Succeeded")


async def test_a_request_for_another_channel_goes_there_with_a_link_in_the_card_thread(
        george: George) -> None:
    george.commit(gated(channel="#it"))
    request = await george.until(lambda: george.approval("j", "gate"))
    assert (request.channel, request.thread_ts) == (IT, None)
    await george.until(lambda: "approval request for *gate* is" in george.thread_text("j"))
    link = george.thread_text("j")
    assert "is in <#C0IT> (<http" in link and "/archives/C0IT/" in link and "|open the request>)" in link
    assert "|in <#" not in link  # no mention nested in a link's label: Slack cannot show it

    await george.reply(ALEX, "j", "context for the job")
    await george.react(ALEX, request, "white_check_mark")

    await george.until(lambda: george.step_status("j", "deploy") == "Succeeded")
    assert george.card("j").channel == OPS
    assert [c.text for c in george.store.context(george.run("j").id)
            if c.role == "user"] == ["context for the job"]


async def test_an_unanswered_request_pings_in_the_thread_then_times_out(
        george: George, clock) -> None:
    george.commit(job("j", step("gate", ask={}, timeout="1h")))
    await george.until(lambda: george.approval("j", "gate"))

    clock.advance(timedelta(hours=1))
    george.engine.wake()
    await george.until(lambda: "still waiting for your answer on gate" in george.thread_text("j"))
    clock.advance(timedelta(hours=1))
    george.engine.wake()

    await george.until(lambda: "ApprovalTimedOut" in george.card_text("j"))
    assert george.step_status("j", "gate") == "Failed"
