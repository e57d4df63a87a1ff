"""Each approval request's message is edited (`chat.update`) as it moves: while live it says
how far it has got and who has counted, with Approve and Reject buttons; once closed it says
how it ended and offers nothing more to click, so a scan of the channel shows what still
needs someone."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from georgebot.devslack import Message
from tests.engine.harness import job, step
from tests.slack.support import ALEX, SAM, George, text_of


def gated(**ask: object) -> object:
    return job("j", step("gate", ask={"approvers": [ALEX, SAM], **ask}), step("after", needs=("gate",)))


def ended(george: George, how: str) -> Message | None:
    message = george.approval("j", "gate")
    return message if how in text_of(message) else None


def kinds(message: Message | None) -> list[str]:
    return [b["type"] for b in (message.blocks or [])] if message else []


def buttons(message: Message | None) -> list[dict[str, Any]]:
    return [e for b in (message.blocks or []) if b["type"] == "actions" for e in b["elements"]] \
        if message else []


async def test_a_live_request_counts_its_approvals_and_a_closed_one_says_who_approved_when(
        george: George) -> None:
    george.commit(gated(quorum=2))
    request = await george.until(lambda: george.approval("j", "gate"))
    assert "0 of 2 approvals" in text_of(request)
    assert [b["text"]["text"] for b in buttons(request)] == ["Approve", "Reject"]
    assert {b["value"] for b in buttons(request)} == {george.run("j").step("gate").waits.request}

    await george.react(ALEX, request, "white_check_mark")
    await george.until(lambda: f"1 of 2 approvals: <@{ALEX}>" in text_of(george.approval("j", "gate")))
    assert buttons(george.approval("j", "gate"))  # still live

    await george.react(SAM, request, "white_check_mark")

    closed = await george.until(lambda: ended(george, "Approved"))
    assert f"*Approved* by <@{ALEX}> and <@{SAM}> at <!date^" in text_of(closed)
    assert "UTC>" in text_of(closed)  # the fallback of the date token
    assert buttons(closed) == [] and "actions" not in kinds(closed)
    assert "React" not in text_of(closed) and "of 2 approvals" not in text_of(closed)
    assert closed.ts == request.ts and closed.edited is not None  # edited in place
    assert len(george.slack.replies(request.channel, request.thread_ts or request.ts)) == len(
        george.thread("j"))  # no new message for it


async def test_a_rejected_request_says_who_rejected_it_and_why(george: George) -> None:
    george.commit(gated())
    request = await george.until(lambda: george.approval("j", "gate"))
    await george.reply(SAM, "j", "not this quarter")

    await george.react(SAM, request, "x")

    closed = await george.until(lambda: ended(george, "Rejected"))
    assert f"*Rejected* by <@{SAM}> at <!date^" in text_of(closed)
    assert text_of(closed).rstrip().endswith(": not this quarter")
    assert buttons(closed) == []


async def test_a_request_of_a_job_removed_from_git_says_in_which_revision(george: George) -> None:
    george.commit(gated())
    request = await george.until(lambda: george.approval("j", "gate"))

    george.commit(message="remove j")  # no jobs any more
    sha = george.source.snapshot.revision.sha

    closed = await george.until(lambda: "Cancelled" in text_of(george.slack.state.message(
        request.channel, request.ts)) and george.slack.state.message(request.channel, request.ts))
    assert f"*Cancelled*: removed from Git in `{sha[:7]}`" in text_of(closed)
    assert buttons(closed) == []


async def test_an_out_of_date_request_links_to_the_new_one(george: George) -> None:
    george.commit(gated())
    old = await george.until(lambda: george.approval("j", "gate"))

    george.commit(gated(message="ok to gate v2?"), message="v2")

    new = await george.until(lambda: (m := george.approval("j", "gate")) and m.ts != old.ts and m)
    assert buttons(new)
    stale = await george.until(lambda: "Out of date" in text_of(m := george.slack.state.message(
        old.channel, old.ts)) and "/archives/" in text_of(m) and m)
    assert "*Out of date*: the step changed — <http" in text_of(stale)
    assert f"/p{new.ts.replace('.', '')}?" in text_of(stale) and "|see the new request>" in text_of(stale)
    assert buttons(stale) == []


async def test_a_request_nobody_answered_says_it_timed_out(george: George, clock) -> None:
    george.commit(job("j", step("gate", ask={}, timeout="1h")))
    request = await george.until(lambda: george.approval("j", "gate"))

    for _ in range(2):
        clock.advance(timedelta(hours=1))
        george.engine.wake()
        await george.until(lambda: george.step_status("j", "gate") == "Failed"
                           or "still waiting" in george.thread_text("j"))

    closed = await george.until(lambda: ended(george, "Timed out"))
    assert closed.ts == request.ts and buttons(closed) == []


async def test_a_request_longer_than_a_message_goes_on_in_its_thread_with_nothing_cut(
        george: George) -> None:
    argv = " ".join(f"--target=host-{i}.example" for i in range(8000))  # about 200,000 characters
    george.commit(job("j", step("gate", ask={"approvers": [ALEX], "message": argv})))
    request = await george.until(lambda: george.approval("j", "gate"))
    card = george.card("j")
    assert card is not None

    rest = await george.until(lambda: [m for m in george.thread("j") if "continued" in text_of(m)])
    sections = [b["text"]["text"] for m in [request, *rest] for b in m.blocks or []
                if b["type"] == "section" and "> " in b["text"]["text"]]
    assert all(len(t) <= 3000 for t in sections)
    shown = "".join(line.removeprefix("> ") for t in sections for line in t.split("\n")
                    if line.startswith("> "))
    assert shown == argv  # every character, in order
    assert all(m.thread_ts == card.ts for m in rest) and buttons(request)


async def test_an_escalated_request_says_so_and_names_who_may_decide_now(george: George, clock) -> None:
    escalating = {"approvers": [ALEX], "escalate": {"after": "4h", "to": [SAM]}}
    george.commit(job("j", step("gate", ask=escalating, timeout="1d")))
    request = await george.until(lambda: george.approval("j", "gate"))
    assert "Escalated" not in text_of(request)
    clock.advance(timedelta(hours=4))
    george.engine.wake()
    escalated = await george.until(
        lambda: (m := george.approval("j", "gate")) is not None and "Escalated" in text_of(m) and m)
    assert f"<@{SAM}> may decide it too" in text_of(escalated)
    assert f"<@{SAM}>" in george.thread_text("j")  # the thread mentions them
    await george.react(SAM, escalated, "white_check_mark")
    await george.until(lambda: george.step_status("j", "gate") == "Succeeded")
