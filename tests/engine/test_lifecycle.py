"""The state machine as tables, without a database: each rule of `engine/lifecycle.py` from a
step's state to its new state and the effects that commit with it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from georgebot.engine import lifecycle
from georgebot.engine.execution import Outcome
from georgebot.engine.lifecycle import Decision
from georgebot.engine.ports import ApprovalRequest, Done, Wait
from georgebot.model.approvals import Closed, Request, Vote, Waits
from georgebot.model.status import JobStatus, StepStatus
from georgebot.store import RunState, StepState
from tests.engine.harness import job, step

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
OWNER = "george-1"


def state(name: str, status: StepStatus = StepStatus.PENDING, **fields: object) -> StepState:
    base = StepState(
        id=hash(name) % 1000, job_id=1, name=name, position=0, status=status, reason=None, message="",
        attempts=0, failures=0, digest=f"d-{name}", agent_digest="", next_attempt_at=None,
        started_at=None, deadline_at=None, finished_at=None, lease_owner=None, lease_expires_at=None,
        waits=None,
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def run_of(*steps: StepState, spec=None, status: JobStatus = JobStatus.RUNNING) -> RunState:
    spec = spec or job("j", *(step(s.name) for s in steps))
    return RunState(
        id=1, name="j", template="tpl", status=status, active=True, generation=1, digest="d", spec=spec,
        file="m/j.yaml", revision="r" * 40, channel="#ops", created_at=NOW, updated_at=NOW,
        progress_at=NOW, conditions=(), steps=list(steps),
    )


def running(name: str = "a", **fields: object) -> StepState:
    lease = {"lease_owner": OWNER, "lease_expires_at": NOW + timedelta(seconds=10)}
    return state(name, StepStatus.RUNNING, attempts=1, **(lease | fields))


ASK = Wait(ApprovalRequest("j", "a", "#ops", "ok?", ("U1", "U2"), 2))


@pytest.mark.parametrize(
    ("outcome", "failures", "retries", "status", "reason", "next_in"),
    [
        (Outcome(StepStatus.SUCCEEDED, message="done"), 0, 2, StepStatus.SUCCEEDED, None, None),
        (Outcome(StepStatus.FAILED, "ExitCode", "exit 1"), 0, 2, StepStatus.RETRYING, "ExitCode", 10),
        (Outcome(StepStatus.FAILED, "ExitCode", "exit 1"), 1, 2, StepStatus.RETRYING, "ExitCode", 20),
        (Outcome(StepStatus.FAILED, "ExitCode", "exit 1"), 2, 2, StepStatus.FAILED, "ExitCode", None),
        (Outcome(StepStatus.FAILED, "BudgetExhausted", "spent", final=True), 0, 2, StepStatus.FAILED,
         "BudgetExhausted", None),
        (Outcome(StepStatus.FAILED, "RateLimited", "429", temporary=True,
                 temporary_delay=timedelta(seconds=30)), 2, 2, StepStatus.RETRYING, "RateLimited", 30),
        (Outcome(StepStatus.BLOCKED, "CapabilityMissing", "no grant"), 0, 2, StepStatus.BLOCKED,
         "CapabilityMissing", None),
    ],
)
def test_an_outcome_moves_the_step(outcome, failures, retries, status, reason, next_in) -> None:
    spec = job("j", step("a", retries=retries, backoff="10s"))
    run = run_of(running(failures=failures), spec=spec)
    effects = lifecycle.on_outcome(run, run.steps[0], outcome, now=NOW, owner=OWNER, request_id="q1",
                                   agent_digest="ag")
    [move] = effects.moves
    assert (move.new.status, move.new.reason, move.owner) == (status, reason, OWNER)
    assert move.new.next_attempt_at == (None if next_in is None else NOW + timedelta(seconds=next_in))
    assert move.new.lease_owner is None and effects.progress
    used = move.new.failures - failures
    assert used == (0 if outcome.temporary or status is StepStatus.SUCCEEDED or status is StepStatus.BLOCKED
                    else 1)
    if status is StepStatus.BLOCKED:
        assert move.new.agent_digest == "ag"  # a commit that changes the agent tries it again


def test_a_wait_opens_a_request_and_its_message_in_the_same_transition() -> None:
    run = run_of(running(), spec=job("j", step("a", ask={"approvers": ["U1", "U2"], "quorum": 2},
                                             timeout="1h")))
    effects = lifecycle.on_outcome(run, run.steps[0], Outcome(StepStatus.WAITING, result=ASK), now=NOW,
                                   owner=OWNER, request_id="q1", agent_digest="")
    [move] = effects.moves
    assert move.new.status is StepStatus.WAITING
    assert move.new.waits == Waits("q1", "ask", "#ops", "ok?", ("U1", "U2"), 2)
    assert move.new.deadline_at == NOW + timedelta(hours=1)
    [opening] = effects.openings
    [message] = effects.messages
    assert (opening.id, opening.digest, message.kind, message.request, message.thread_of_card) == (
        "q1", "d-a", "approval", "q1", True)


def test_output_is_sent_with_the_success_that_produced_it() -> None:
    run = run_of(running())
    effects = lifecycle.on_outcome(run, run.steps[0], Outcome(StepStatus.SUCCEEDED, result=Done("ok", "out")),
                                   now=NOW, owner=OWNER, request_id="q", agent_digest="")
    assert [(m.kind, m.text) for m in effects.messages] == [("output", "out")]


def waiting(request: str = "q1", quorum: int = 2, kind: str = "ask", **fields: object) -> StepState:
    waits = Waits(request, kind, "#ops", "ok?", ("U1", "U2", "S0G"), quorum)  # type: ignore[arg-type]
    return state("a", StepStatus.WAITING, attempts=1, waits=waits, started_at=NOW, **fields)


def request(rid: str = "q1", *votes: Vote, kind: str = "ask", quorum: int = 2,
            closed: Closed | None = None) -> Request:
    return Request(rid, 1, 1, "a", kind, "#ops", ("U1", "U2", "S0G"), quorum, "d-a",  # type: ignore[arg-type]
                   closed=closed, votes=votes)


@pytest.mark.parametrize(
    ("step_state", "req", "user", "approve", "groups", "decision", "status"),
    [
        (waiting(), request(), "U9", True, frozenset(), Decision.NOT_APPROVER, StepStatus.WAITING),
        (waiting(), request(), "U1", True, frozenset(), Decision.RECORDED, StepStatus.WAITING),
        (waiting(), request("q1", Vote("U1", True)), "U1", True, frozenset(), Decision.ALREADY_COUNTED,
         StepStatus.WAITING),
        (waiting(), request("q1", Vote("U1", True)), "U1", False, frozenset(), Decision.ALREADY_COUNTED,
         StepStatus.WAITING),
        (waiting(), request("q1", Vote("U1", True)), "U7", True, frozenset({"S0G"}), Decision.APPROVED,
         StepStatus.SUCCEEDED),
        (waiting(), request(), "U2", False, frozenset(), Decision.REJECTED, StepStatus.FAILED),
        (waiting("q2"), request("q1", closed=Closed.SUPERSEDED), "U1", True, frozenset(), Decision.OUTDATED,
         StepStatus.WAITING),
        (waiting("q2"), request("q1"), "U1", True, frozenset(), Decision.OUTDATED, StepStatus.WAITING),
        (state("a", StepStatus.SUCCEEDED), request("q1", closed=Closed.APPROVED), "U1", True, frozenset(),
         Decision.OUTDATED, StepStatus.SUCCEEDED),
        (waiting(kind="question", quorum=1), request(kind="question", quorum=1), "U1", True, frozenset(),
         Decision.NOT_WAITING, StepStatus.WAITING),
        (waiting(kind="tool", quorum=1), request(kind="tool", quorum=1), "U1", True, frozenset(),
         Decision.APPROVED, StepStatus.PENDING),
        (waiting(kind="tool", quorum=1), request(kind="tool", quorum=1), "U1", False, frozenset(),
         Decision.REJECTED, StepStatus.PENDING),
    ],
)
def test_a_vote_counts_only_on_the_request_the_step_waits_on(
        step_state, req, user, approve, groups, decision, status) -> None:
    run = run_of(step_state, spec=job("j", step("a", ask={"approvers": ["U1", "U2", "S0G"], "quorum": 2})))
    verdict, effects = lifecycle.on_ballot(run, req, user=user, approve=approve, groups=groups, now=NOW)
    assert verdict.decision is decision
    new = effects.moves[0].new.status if effects.moves else step_state.status
    assert new is status
    assert bool(effects.ballots) is verdict.counted  # only a counted vote is stored
    if not verdict.counted:
        assert verdict.why and [n.actor for n in effects.notes] == [f"user:{user}"]  # logged, with why
    if decision in (Decision.APPROVED, Decision.REJECTED):
        assert [c.request for c in effects.closings] == [req.id]
    if req.kind == "tool" and verdict.counted:
        [remark] = effects.remarks  # the agent reads the decision, bound to its request
        assert remark.data is not None and remark.data["request"] == req.id


def test_a_reminder_then_a_time_out() -> None:
    step_state = waiting(deadline_at=NOW + timedelta(hours=1))
    run = run_of(step_state)
    assert not lifecycle.on_timers(run, NOW + timedelta(minutes=59))
    reminded = lifecycle.on_timers(run, NOW + timedelta(hours=1))
    assert [m.kind for m in reminded.messages] == ["ping"] and not reminded.progress
    assert reminded.moves[0].new.waits is not None and reminded.moves[0].new.waits.reminded
    assert not reminded.moves[0].logged and [n.reason for n in reminded.notes] == ["Reminded"]
    after = replace(step_state, waits=reminded.moves[0].new.waits)
    assert not lifecycle.on_timers(run_of(after), NOW + timedelta(hours=1, minutes=30))
    timed_out = lifecycle.on_timers(run_of(after), NOW + timedelta(hours=2))
    assert (timed_out.moves[0].new.status, timed_out.moves[0].new.reason) == (StepStatus.FAILED,
                                                                             "ApprovalTimedOut")
    assert [(c.request, c.why) for c in timed_out.closings] == [("q1", Closed.TIMED_OUT)]


@pytest.mark.parametrize(
    ("step_state", "changed", "to"),
    [
        (state("a", StepStatus.SUCCEEDED), True, StepStatus.SUCCEEDED),
        (running(), True, StepStatus.RUNNING),
        (state("a", StepStatus.BLOCKED), False, StepStatus.PENDING),
        (state("a", StepStatus.FAILED), False, StepStatus.FAILED),
        (state("a", StepStatus.FAILED), True, StepStatus.PENDING),
        (waiting(), True, StepStatus.PENDING),
        (waiting(), False, StepStatus.WAITING),
    ],
)
def test_a_new_generation(step_state, changed, to) -> None:
    old = job("j", step("a"))
    new = job("j", step("a", run=["tools/a", "--v2"])) if changed else old
    run = run_of(replace(step_state, digest=old.step_digest("a")), spec=old)
    effects = lifecycle.on_generation(run, new, actor="git:abc", now=NOW)
    moved = {m.new.name: m.new.status for m in effects.moves}
    assert moved.get("a", step_state.status) is to
    if step_state.waits and to is StepStatus.PENDING:
        assert [c.why for c in effects.closings] == [Closed.SUPERSEDED]  # its votes are void


def test_a_cancellation_closes_open_requests_and_ends_the_job() -> None:
    run = run_of(state("a", StepStatus.SUCCEEDED), replace(waiting(), name="b"))
    effects = lifecycle.on_cancel(run, actor="git:abc", message="removed", now=NOW)
    assert [(m.new.name, m.new.status) for m in effects.moves] == [("b", StepStatus.CANCELLED)]
    assert [c.why for c in effects.closings] == [Closed.CANCELLED]
    assert effects.job is not None
    assert (effects.job.status, effects.job.active) == (JobStatus.CANCELLED, False)


def test_a_claim_and_a_recovery() -> None:
    run = run_of(state("a"))
    [move] = lifecycle.claim(run, run.steps[0], owner=OWNER, now=NOW, lease=timedelta(seconds=10)).moves
    assert (move.new.status, move.new.attempts, move.new.lease_owner, move.expired) == (
        StepStatus.RUNNING, 1, OWNER, False)
    lost = running(lease_owner="george-dead", lease_expires_at=NOW)
    [again] = lifecycle.claim(run_of(lost), lost, owner=OWNER, now=NOW, lease=timedelta(seconds=10),
                              recovered=True).moves
    assert (again.new.attempts, again.new.reason, again.expired) == (2, "Recovered", True)


@pytest.mark.parametrize(
    ("steps", "status"),
    [
        ((state("a", StepStatus.SUCCEEDED),), JobStatus.SUCCEEDED),
        ((state("a", StepStatus.SUCCEEDED), state("b")), JobStatus.RUNNING),
        ((waiting(), replace(state("b", StepStatus.FAILED))), JobStatus.WAITING),
        ((state("a", StepStatus.BLOCKED), state("b", StepStatus.FAILED)), JobStatus.BLOCKED),
        ((state("a", StepStatus.FAILED),), JobStatus.FAILED),
    ],
)
def test_the_job_status_is_the_first_that_holds(steps, status) -> None:
    spec = job("j", *(step(s.name, needs=("a",) if s.name == "b" and status is JobStatus.WAITING else ())
                      for s in steps))
    assert lifecycle.job_status(run_of(*steps, spec=spec), NOW) is status


def test_a_condition_is_set_and_cleared_once_each_with_an_event() -> None:
    run = run_of(waiting())
    late = NOW + timedelta(days=8)
    stalled = lifecycle.on_refresh(run, late, default_deadline=timedelta(days=7))
    assert stalled.job is not None and stalled.job.conditions and stalled.job.conditions[0].type == "Stalled"
    assert [n.reason for n in stalled.notes] == ["Stalled=True"]
    run.conditions = stalled.job.conditions
    run.status = JobStatus.WAITING
    assert not lifecycle.on_refresh(run, late, default_deadline=timedelta(days=7))  # nothing new
    cleared = lifecycle.set_condition(run, "Stalled", False, "", "", late)
    assert cleared.job is not None and cleared.job.conditions == ()
    assert [n.reason for n in cleared.notes] == ["Stalled=False"]


def test_the_readiness_index_agrees_with_the_steps_as_they_move() -> None:
    """A pass asks the run's index which steps are ready; it must say what the steps say,
    however they move (a seeded random walk over a DAG of 40 steps)."""
    import random

    from georgebot.engine import planning
    from georgebot.store import Effects, Move, Store

    rng = random.Random(7)
    names = [f"s{i}" for i in range(40)]
    specs = [step(n, needs=tuple(rng.sample(names[:i], k=min(i, rng.randint(0, 3))))) for i, n in
             enumerate(names)]
    run = run_of(*(replace(state(n), id=i, position=i) for i, n in enumerate(names)), spec=job("j", *specs))
    statuses = list(StepStatus)

    def brute() -> list[str]:
        done = {s.name for s in run.steps if s.status is StepStatus.SUCCEEDED}
        return [s.name for s in run.steps
                if (s.status is StepStatus.PENDING
                    or (s.status is StepStatus.RETRYING and (s.next_attempt_at is None
                                                             or s.next_attempt_at <= NOW)))
                and set(run.spec.step(s.name).needs) <= done]

    for _ in range(500):
        target = rng.choice(run.steps)
        to = rng.choice(statuses)
        later = NOW + timedelta(seconds=rng.choice([-5, 5])) if to is StepStatus.RETRYING else None
        moved = Move(target, replace(target, status=to, next_attempt_at=later))
        Store.follow(run, Effects(moves=(moved,)), NOW)
        assert [s.name for s in planning.ready(run, NOW)] == brute()
        assert {s.name for s in planning.running(run)} == {
            s.name for s in run.steps if s.status is StepStatus.RUNNING}
