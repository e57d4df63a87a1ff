"""`/george`, mentions, thread replies, App Home and repeated events, through the real bolt
app on the local Slack."""

from __future__ import annotations

from georgebot.devslack import Message
from tests.engine.harness import fail, job, step
from tests.slack.support import ALEX, GEORGE_CHANNEL, OPS, PAT, George, text_of


async def test_slash_status_answers_privately_with_what_waits_for_me_first(
        george: George) -> None:
    george.commit(job("waits", step("gate", ask={})), job("done", step("a")))
    await george.until(lambda: george.approval("waits", "gate"))

    command = await george.slack.slash(ALEX, GEORGE_CHANNEL, "/george status")

    answer = await george.until(lambda: george.ephemeral_text(ALEX))
    assert command.delivery is not None and command.delivery.acked
    assert answer.index("Waiting for you") < answer.index("*waits*")
    assert "*ops* — shell: tools/a — 0 running" in answer
    assert "Succeeded" in answer and "*done*" in answer
    assert "Synced revision" in answer
    assert george.slack.ephemerals(PAT) == []


async def test_slash_status_job_shows_its_steps(george: George) -> None:
    george.commit(job("j", step("a"), step("b", needs=("a",))))
    await george.until(lambda: "Succeeded" in george.headline("j"))

    await george.slack.slash(PAT, GEORGE_CHANNEL, "/george status j")

    answer = await george.until(lambda: george.ephemeral_text(PAT))
    assert "j — Succeeded" in answer and "*b* — Succeeded" in answer


async def test_slash_help_and_unknown_words_get_the_help(george: George) -> None:
    await george.slack.slash(PAT, GEORGE_CHANNEL, "/george frobnicate")
    answer = await george.until(lambda: george.ephemeral_text(PAT))
    assert "I did not understand `frobnicate`" in answer
    assert "/george status JOB" in answer

    await george.slack.slash(PAT, GEORGE_CHANNEL, "/george status nope")
    assert "There is no job named `nope`" in await george.until(
        lambda: "nope" in george.ephemeral_text(PAT) and george.ephemeral_text(PAT))


async def test_mentioning_retry_job_retries_a_failed_job(george: George) -> None:
    george.runner.on("flaky", fail("exit 3"))
    george.commit(job("j", step("flaky", retries=0)))
    await george.until(lambda: "Failed" in george.headline("j"))
    george.runner.on("flaky")  # from now on it succeeds

    await george.slack.post_as(PAT, "#ops", "@george retry j")

    await george.until(lambda: "Succeeded" in george.headline("j"))
    replies = [text_of(m) for m in george.slack.state.all_messages() if m.thread_ts and
               m.user == "U0GEORGE"]
    assert any("retrying flaky of j" in r for r in replies)
    assert any(e.actor == f"user:{PAT}" and e.reason == "RetryRequested"
               for e in george.store.events("j"))


async def test_retry_in_a_card_thread_retries_that_job_and_says_why_not(george: George) -> None:
    george.commit(job("j", step("a")))
    await george.until(lambda: "Succeeded" in george.headline("j"))
    card = george.card("j")
    assert card is not None

    await george.slack.post_as(PAT, "#ops", "@george retry", thread_ts=card.ts)
    await george.until(lambda: "j has no failed or blocked step to retry" in george.thread_text("j"))

    await george.slack.post_as(PAT, "#ops", "@george retry")  # not in a thread: which job?
    await george.until(lambda: any("Which job should I retry?" in text_of(m)
                                   for m in george.slack.state.all_messages()))

    await george.slack.post_as(PAT, "#ops", "@george retry ghost")
    await george.until(lambda: any("there is no job named ghost" in text_of(m)
                                   for m in george.slack.state.all_messages()))


async def test_mentioning_status_in_a_card_thread_answers_there(george: George) -> None:
    george.commit(job("j", step("a")))
    await george.until(lambda: "Succeeded" in george.headline("j"))
    card = george.card("j")
    assert card is not None

    await george.slack.post_as(ALEX, "#ops", "@george status", thread_ts=card.ts)

    await george.until(lambda: "j — Succeeded" in george.thread_text("j"))


async def test_thread_replies_become_the_jobs_context_as_written(george: George) -> None:
    george.commit(job("j", step("gate", ask={})))
    await george.until(lambda: george.approval("j", "gate"))
    run = george.run("j")

    await george.reply(PAT, "j", "use <!channel> and *this*; {{ name }} `rm -rf /`")
    await george.reply(PAT, "j", "@george status")  # a command, not context

    await george.until(lambda: [c for c in george.store.context(run.id) if c.role == "user"])
    await george.idle()
    replies = [c for c in george.store.context(run.id) if c.role == "user"]
    assert [(c.author, c.text) for c in replies] == [
        (PAT, "use <!channel> and *this*; {{ name }} `rm -rf /`")]  # as Slack sent it


async def test_a_repeated_event_is_acknowledged_and_has_no_second_effect(george: George) -> None:
    george.commit(job("j", step("gate", ask={"approvers": [ALEX, PAT], "quorum": 2})))
    request = await george.until(lambda: george.approval("j", "gate"))
    await george.react(ALEX, request, "white_check_mark")
    await george.until(lambda: "(1 of 2 approvals)" in george.thread_text("j"))
    await george.idle()
    first = next(e for e in george.slack.hub.envelopes
                 if e["payload"].get("event", {}).get("type") == "reaction_added")

    again = george.slack.hub.deliver("events_api", first["payload"])  # Slack's retry
    await george.idle()

    assert again.acked
    assert george.thread_text("j").count("(1 of 2 approvals)") == 1
    assert [e.reason for e in george.store.events("j")].count("Approved") == 1


async def test_opening_the_app_home_shows_what_waits_for_that_person(george: George) -> None:
    george.commit(job("j", step("gate", ask={})))
    await george.until(lambda: george.approval("j", "gate"))

    await george.slack.open_home(ALEX)

    home = await george.until(lambda: george.slack.home_view(ALEX))
    text = text_of(Message(OPS, "0", "", None, blocks=home.view["blocks"]))
    assert "Waiting for you" in text and "*gate* of *j*" in text
