"""A ✅ that George never heard, or heard and could not record, is still counted: the reaction
sweep reads every open request's reactions from Slack (`reactions.get`) at start and on an
interval, and a vote counts once per person and request however often it is seen."""

from __future__ import annotations

from georgebot.engine.ports import ApprovalRequest, Done, Wait
from georgebot.slack.transport import SlackSurface
from tests.engine.harness import job, step
from tests.slack.conftest import FAST, socket_settings
from tests.slack.support import ALEX, PAT, George


def gated(name: str = "j", **ask: object) -> object:
    return job(name, step("gate", ask={**ask}), step("deploy", needs=("gate",)))


async def test_a_check_mark_made_while_george_was_away_is_counted_when_it_starts(george: George) -> None:
    george.commit(gated())
    request = await george.until(lambda: george.approval("j", "gate"))
    assert request is not None
    await george.surface.close()
    # Slack has the reactions, George never got their events (lost after an ack, in a crash).
    george.slack.state.add_reaction(request, "white_check_mark", ALEX)
    george.slack.state.add_reaction(request, "white_check_mark", PAT)  # not an approver
    assert george.step_status("j", "gate") == "Waiting"

    george.surface = SlackSurface(socket_settings(george.slack), george.engine, publisher_settings=FAST)
    await george.surface.start()
    await george.until(lambda: george.step_status("j", "deploy") == "Succeeded")
    assert f"<@{ALEX}> approved *gate*" in george.thread_text("j")
    [counted] = [e for e in george.store.events("j") if e.reason == "Approved"]
    assert counted.actor == f"user:{ALEX}"
    assert not [e for e in george.store.events("j") if e.actor == f"user:{PAT}"]  # a sweep says nothing


async def test_a_vote_george_never_heard_is_counted_by_the_next_sweep(george: George) -> None:
    george.commit(gated())
    request = await george.until(lambda: george.approval("j", "gate"))
    assert request is not None and george.surface.sweep is not None
    george.slack.state.add_reaction(request, "heavy_check_mark", ALEX)  # its event never arrived

    assert await george.surface.sweep.sweep() == 1

    await george.until(lambda: george.step_status("j", "deploy") == "Succeeded")
    assert f"<@{ALEX}> approved *gate*" in george.thread_text("j")


async def test_a_sweep_counts_nothing_twice(george: George) -> None:
    george.commit(job("j", step("gate", ask={"approvers": [ALEX, "U01SAM"], "quorum": 2})))
    request = await george.until(lambda: george.approval("j", "gate"))
    await george.react(ALEX, request, "white_check_mark")
    await george.until(lambda: "(1 of 2 approvals)" in george.thread_text("j"))
    sweep = george.surface.sweep
    assert sweep is not None

    assert await sweep.sweep() == 0  # the live event counted it already
    assert await sweep.sweep() == 0
    run = george.run("j")
    state = run.step("gate")
    assert state is not None and state.waits is not None
    assert george.store.approvals([state.waits.request]) == {state.waits.request: [ALEX]}
    assert george.step_status("j", "gate") == "Waiting"


async def test_an_answer_george_never_heard_resumes_the_question(george: George) -> None:
    george.commit(job("j", step("think", instructions="Ask which team", done_when="answered")))
    george.runner.on("think", lambda task: Wait(ApprovalRequest(
        "j", "think", task.channel, "Which team?", (), 0, kind="question")), Done("welcomed"))
    await george.until(lambda: george.approval("j", "think"))  # the question, posted and recorded
    card = george.card("j")
    assert card is not None and george.surface.sweep is not None
    channel = george.slack.state.channels[card.channel]
    george.slack.state.add_message(channel, text="payments", user=ALEX, thread_ts=card.ts)  # no event

    assert await george.surface.sweep.sweep() == 1

    await george.until(lambda: george.step_status("j", "think") == "Succeeded")
    assert [c.text for c in george.store.context(george.run("j").id) if c.role == "user"] == ["payments"]
