"""A ✅ means exactly what the approver saw: votes bind to one request, a new round starts with
none, and a reaction on any other request of George's decides nothing (the seams the issue
measured, each as it was found)."""

from __future__ import annotations

from georgebot.engine.ports import ApprovalRequest, Done, StepTask, Wait
from georgebot.engine.service import Decision, Engine
from georgebot.model.approvals import Closed
from georgebot.model.status import StepStatus
from georgebot.store import Store
from tests.engine.harness import FakeSource, ScriptedRunner, decide, job, request_of, step


def _holds(call: str):
    """The agent asks to make a tool call under `requireApproval`, and ends."""
    return lambda task: Wait(ApprovalRequest(task.job.name, task.step.name, task.channel,
                                             f"Agent asks to {call}", ("U01ALEX",), 1, kind="tool"))


def state(store: Store, name: str, step_name: str):
    found = store.load_runs([name])[0].step(step_name)
    assert found is not None
    return found


async def test_a_check_mark_on_an_approved_tool_call_does_not_approve_the_next_one(
        engine: Engine, source: FakeSource, runner: ScriptedRunner, sqlite_store: Store) -> None:
    seen: list[object] = []

    def finish(task: StepTask) -> Done:
        seen.extend(c.data for c in task.context if c.role == "approval")
        return Done("rotated")

    source.commit(job("j", step("rotate", instructions="Rotate", done_when="rotated")))
    runner.on("rotate", _holds("rotate staging"), _holds("rotate production"), finish)
    await engine.settle()
    staging = request_of(sqlite_store, "j", "rotate")
    assert (await engine.decide(staging, user="U01ALEX", approve=True)).decision is Decision.APPROVED
    await engine.settle()
    production = request_of(sqlite_store, "j", "rotate")
    assert production != staging

    again = await engine.decide(staging, user="U01ALEX", approve=True)  # removed and re-added
    assert again.decision is Decision.OUTDATED and "already approved" in again.why
    await engine.settle()
    assert state(sqlite_store, "j", "rotate").status is StepStatus.WAITING  # production still waits
    assert request_of(sqlite_store, "j", "rotate") == production
    assert any(e.reason == "StaleRequest" and e.actor == "user:U01ALEX" for e in sqlite_store.events("j"))

    assert (await engine.decide(production, user="U01ALEX", approve=True)).decision is Decision.APPROVED
    await engine.settle()
    assert state(sqlite_store, "j", "rotate").status is StepStatus.SUCCEEDED
    assert [d["request"] for d in seen if isinstance(d, dict)] == [staging, production]


async def test_a_check_mark_on_a_cancelled_runs_request_does_not_approve_the_new_run(
        engine: Engine, source: FakeSource, sqlite_store: Store) -> None:
    source.commit(job("j", step("gate", ask={})))
    await engine.settle()
    old = request_of(sqlite_store, "j", "gate")
    source.commit(message="remove j")
    await engine.settle()
    source.commit(job("j", step("gate", ask={})), message="j again")
    await engine.settle()
    assert request_of(sqlite_store, "j", "gate") != old

    verdict = await engine.decide(old, user="U01ALEX", approve=True)

    assert verdict.decision is Decision.OUTDATED and "cancelled" in verdict.why
    await engine.settle()
    assert state(sqlite_store, "j", "gate").status is StepStatus.WAITING


async def test_a_rejection_stands_until_an_approver_reopens_it_and_the_new_round_has_no_votes(
        engine: Engine, source: FakeSource, sqlite_store: Store) -> None:
    source.commit(job("j", step("gate", ask={"approvers": ["U0A", "U0B", "U0C"], "quorum": 2})))
    await engine.settle()
    assert await decide(engine, "j", "gate", user="U0A", approve=True) is Decision.RECORDED
    assert await decide(engine, "j", "gate", user="U0B", approve=False) is Decision.REJECTED
    await engine.settle()
    assert state(sqlite_store, "j", "gate").status is StepStatus.FAILED

    refused = await engine.retry("j", actor="user:U0PAT")  # anyone typed `@george retry`
    assert refused.steps == () and refused.left == ("gate",) and "only an approver" in refused.message
    assert state(sqlite_store, "j", "gate").status is StepStatus.FAILED

    reopened = await engine.retry("j", actor="user:U0B")
    assert reopened.steps == ("gate",)
    await engine.settle()
    assert await decide(engine, "j", "gate", user="U0C", approve=True) is Decision.RECORDED
    request = sqlite_store.request(request_of(sqlite_store, "j", "gate"))
    assert request is not None and request.approvals() == ("U0C",)  # A's vote was the old round's
    assert state(sqlite_store, "j", "gate").status is StepStatus.WAITING


async def test_a_retry_by_an_approver_in_a_listed_group_reopens_a_rejected_step(
        engine: Engine, source: FakeSource, sqlite_store: Store) -> None:
    source.commit(job("j", step("gate", ask={"approvers": ["S0TEAM"]})))
    await engine.settle()
    verdict = await engine.decide(request_of(sqlite_store, "j", "gate"), user="U0SAM", approve=False,
                                  user_groups=frozenset({"S0TEAM"}))
    assert verdict.decision is Decision.REJECTED

    async def groups(wanted: frozenset[str]) -> frozenset[str]:
        return wanted & {"S0TEAM"}

    assert (await engine.retry("j", actor="user:U0SAM", groups_of=groups)).steps == ("gate",)


async def test_the_operator_at_the_command_line_may_reopen_any_step(
        engine: Engine, source: FakeSource, sqlite_store: Store) -> None:
    source.commit(job("j", step("gate", ask={})))
    await engine.settle()
    await decide(engine, "j", "gate", user="U01ALEX", approve=False)
    assert (await engine.retry("j", actor="cli:ops")).steps == ("gate",)


async def test_a_changed_step_closes_its_request_and_asks_anew(
        engine: Engine, source: FakeSource, sqlite_store: Store) -> None:
    source.commit(job("j", step("gate", ask={"approvers": ["U0A", "U0B"], "quorum": 2})))
    await engine.settle()
    old = request_of(sqlite_store, "j", "gate")
    await decide(engine, "j", "gate", user="U0A", approve=True)
    source.commit(job("j", step("gate", ask={"approvers": ["U0A", "U0B"], "quorum": 2, "message": "v2"})),
                  message="v2")
    await engine.settle()

    closed = sqlite_store.request(old)
    assert closed is not None and closed.closed is Closed.SUPERSEDED
    assert (await engine.decide(old, user="U0B", approve=True)).decision is Decision.OUTDATED
    assert await decide(engine, "j", "gate", user="U0B", approve=True) is Decision.RECORDED  # 1 of 2


async def test_a_question_is_answered_by_a_reply_not_a_reaction(
        engine: Engine, source: FakeSource, runner: ScriptedRunner, sqlite_store: Store) -> None:
    source.commit(job("j", step("think", instructions="Ask", done_when="answered")))
    runner.on("think", lambda task: Wait(ApprovalRequest("j", "think", task.channel, "Which team?",
                                                         ("U01ALEX",), 1, kind="question")), Done("ok"))
    await engine.settle()
    assert await decide(engine, "j", "think", user="U01ALEX", approve=True) is Decision.NOT_WAITING
    request = request_of(sqlite_store, "j", "think")
    assert await engine.reply("j", user="U01ALEX", text="payments") == 1
    answered = sqlite_store.request(request)
    assert answered is not None and answered.closed is Closed.ANSWERED
    await engine.settle()
    assert state(sqlite_store, "j", "think").status is StepStatus.SUCCEEDED


async def test_a_vote_on_something_that_is_no_request_decides_nothing(engine: Engine) -> None:
    verdict = await engine.decide("no-such-request", user="U01ALEX", approve=True)
    assert verdict.decision is Decision.UNKNOWN and not verdict.counted


async def test_a_reply_in_a_cancelled_runs_thread_answers_nothing_of_the_new_run(
        engine: Engine, source: FakeSource, runner: ScriptedRunner, sqlite_store: Store) -> None:
    asks = lambda task: Wait(ApprovalRequest("j", "think", task.channel, "Which team?", (), 0,  # noqa: E731
                                             kind="question"))
    runner.on("think", asks)
    source.commit(job("j", step("think", instructions="Ask", done_when="answered")))
    await engine.settle()
    old = sqlite_store.load_runs(["j"])[0].id
    source.commit(message="remove j")
    await engine.settle()
    source.commit(job("j", step("think", instructions="Ask", done_when="answered")), message="j again")
    await engine.settle()

    assert await engine.reply("j", user="U01ALEX", text="payments", run_id=old) == 0

    assert state(sqlite_store, "j", "think").status is StepStatus.WAITING
