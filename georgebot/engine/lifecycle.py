"""Every rule of how a step and a job change status, as pure functions over typed values.

Each function takes the state as read (a `RunState`, its `StepState`s, a `Request`) and
returns the `Effects` of the change: the steps' new states, the events to log, the messages to
send, the requests opened and closed, the votes and the conditions. The engine commits them
with `Store.commit`, all in one transaction, and nothing else changes a status. No I/O and no
clock here (time comes in as `now`), so `tests/engine/test_lifecycle.py` covers the rules as
tables, without a database.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from georgebot.config import format_duration
from georgebot.engine import planning
from georgebot.engine.execution import Outcome
from georgebot.engine.ports import Done, Wait
from georgebot.model.approvals import Closed, Request, Waits, is_approver
from georgebot.model.rendered import RenderedJob
from georgebot.model.specs import StepForm
from georgebot.model.status import Condition, JobStatus, Reason, StepStatus
from georgebot.store import (
    NOTHING,
    Ballot,
    Closing,
    Effects,
    JobChange,
    Move,
    Note,
    Opening,
    Outgoing,
    Remark,
    RunState,
    StepState,
    Widening,
)

REOPENED_BY_APPROVERS = frozenset({Reason.REJECTED, Reason.APPROVAL_TIMED_OUT})
"""A step an approver rejected, or that timed out waiting, is reopened only by an approver."""


class Decision(StrEnum):
    RECORDED = "recorded"  # counted; the quorum is not reached yet
    APPROVED = "approved"  # the request is approved (the step succeeded or resumes)
    REJECTED = "rejected"  # the request is rejected
    ALREADY_COUNTED = "already-counted"  # this person already answered this request
    NOT_APPROVER = "not-approver"
    OWN_JOB = "own-job"  # the four-eyes rule: the person committed the job
    NOT_WAITING = "not-waiting"  # the step waits on no vote (a question wants a reply)
    OUTDATED = "outdated"  # not the request the step waits on now
    UNKNOWN = "unknown"  # not a request of George's


@dataclass(frozen=True)
class Verdict:
    """What a decision did, with everything the chat needs to say about it."""

    decision: Decision
    job: str = ""
    step: str = ""
    user: str = ""
    why: str = ""  # when it did not count
    approvals: tuple[str, ...] = ()  # who has counted on this request, in order
    quorum: int = 1
    approvers: tuple[str, ...] = ()
    status: StepStatus | None = None  # the step's status after the decision
    note: str = ""  # a rejection's reason

    @property
    def counted(self) -> bool:
        return self.decision in (Decision.RECORDED, Decision.APPROVED, Decision.REJECTED)


def _move(
    old: StepState, actor: str = "engine", *, owner: str | None = None, logged: bool = True, **changes: Any
) -> Move:
    new = replace(old, **changes)
    if new.status is not StepStatus.RUNNING:
        new = replace(new, lease_owner=None, lease_expires_at=None)
    return Move(old, new, actor, owner=owner, logged=logged)


def _closing(step: StepState, why: Closed) -> tuple[Closing, ...]:
    return (Closing(step.waits.request, why),) if step.waits else ()


# --- an attempt ---------------------------------------------------------------------


def claim(
    run: RunState,
    step: StepState,
    *,
    owner: str,
    now: datetime,
    lease: timedelta,
    recovered: bool = False,
) -> Effects:
    """Pending, due Retrying, or Running with an expired lease → Running under `owner`."""
    spec = run.spec.step(step.name)
    timeout = spec.effective_timeout
    attempt = step.attempts + 1
    message = f"attempt {attempt}" + (
        " (the previous attempt's agent died; running it again)" if recovered else ""
    )
    new = replace(
        step,
        status=StepStatus.RUNNING,
        lease_owner=owner,
        lease_expires_at=now + lease,
        attempts=attempt,
        started_at=now,
        deadline_at=None if timeout is None or spec.form is StepForm.ASK else now + timeout,
        next_attempt_at=None,
        reason=Reason.RECOVERED if recovered else None,
        message=message,
    )
    return Effects(moves=(Move(step, new, expired=recovered),))


def on_outcome(
    run: RunState,
    step: StepState,
    outcome: Outcome,
    *,
    now: datetime,
    owner: str,
    request_id: str,
    agent_digest: str,
) -> Effects:
    """An attempt's outcome; only while `owner` still holds the step's lease."""
    spec = run.spec.step(step.name)
    actor = f"agent:{step.name}"
    reason, message = outcome.reason, outcome.message
    result = outcome.result
    if outcome.status is StepStatus.SUCCEEDED:
        move = _move(step, actor, owner=owner, status=StepStatus.SUCCEEDED, finished_at=now,
                     reason=reason, message=message)
        output = (
            (Outgoing(run.channel, result.output, "output", step.name),)
            if isinstance(result, Done) and result.output
            else ()
        )
        return Effects(moves=(move,), messages=output, progress=True)
    if outcome.status is StepStatus.WAITING:
        assert isinstance(result, Wait)
        return _wait(run, step, result, now=now, request_id=request_id, actor=actor, owner=owner,
                     reason=reason, message=message)
    if outcome.status is StepStatus.BLOCKED:
        move = _move(step, actor, owner=owner, status=StepStatus.BLOCKED, agent_digest=agent_digest,
                     reason=reason, message=message)
        return Effects(moves=(move,), progress=True)
    if outcome.temporary:  # "try later": no retry used up
        delay = outcome.temporary_delay or spec.retry_delay(max(step.attempts, 1))
        at = now + delay
        message = f"{outcome.message} (trying again at {at:%H:%M:%S} UTC)"
        move = _move(
            step, actor, status=StepStatus.RETRYING, next_attempt_at=at, owner=owner,
            reason=outcome.reason, message=message,
        )
        return Effects(moves=(move,), progress=True)
    failures = step.failures + 1
    if failures <= spec.retries and not outcome.final:
        move = _move(
            step, actor, owner=owner, status=StepStatus.RETRYING, failures=failures,
            next_attempt_at=now + spec.retry_delay(failures), reason=reason, message=message,
        )
    else:
        move = _move(step, actor, owner=owner, status=StepStatus.FAILED, failures=failures,
                     finished_at=now, reason=reason, message=message)
    return Effects(moves=(move,), progress=True)


def _wait(
    run: RunState,
    step: StepState,
    wait: Wait,
    *,
    now: datetime,
    request_id: str,
    actor: str,
    owner: str,
    reason: str | None,
    message: str,
) -> Effects:
    """A step starts waiting for people: a new request, with no votes, and its message."""
    spec = run.spec.step(step.name)
    asked = wait.request
    timeout = asked.timeout or spec.timeout
    waits = Waits(
        request_id, asked.kind, asked.channel, asked.text, asked.approvers, asked.quorum,
        escalate_at=now + asked.escalate_after if asked.escalate_after and asked.escalate_to else None,
        escalate_to=asked.escalate_to, on_timeout=asked.on_timeout,
    )
    move = _move(
        step, actor, owner=owner, status=StepStatus.WAITING, waits=waits, started_at=now,
        deadline_at=now + timeout if timeout else None, reason=reason, message=message,
    )
    opening = Opening(
        request_id, step.id, step.name, asked.kind, asked.channel, asked.text, asked.approvers,
        asked.quorum, step.digest,
    )
    post = Outgoing(
        asked.channel, asked.text, "approval", step.name,
        thread_of_card=asked.channel in (run.channel, ""), request=request_id,
    )
    return Effects(moves=(move,), openings=(opening,), messages=(post,), progress=True)


# --- people -------------------------------------------------------------------------


def on_ballot(
    run: RunState,
    request: Request,
    *,
    user: str,
    approve: bool,
    groups: frozenset[str] = frozenset(),
    note: str = "",
    now: datetime,
    author: str | None = None,
) -> tuple[Verdict, Effects]:
    """A person's ✅ or ❌ on `request`. It counts only if the step waits on that very request,
    the person is an approver and has not answered it yet; otherwise it decides nothing, the
    event log says why, and so does the verdict."""
    step = run.step(request.step)
    waits = step.waits if step is not None and step.waits and step.waits.request == request.id else None
    base = Verdict(
        Decision.UNKNOWN, run.name, request.step, user, approvals=request.approvals(),
        quorum=request.quorum, approvers=waits.approvers if waits else request.approvers,
        status=step.status if step else None,
    )
    actor = f"user:{user}"
    refusal = _refusal(run, step, request, user=user, groups=groups, author=author)
    if refusal is not None:
        decision, reason, why = refusal
        verdict = replace(base, decision=decision, why=why)
        return verdict, Effects(notes=(Note(request.step, actor, reason, why),))
    assert step is not None and step.waits is not None
    ballot = Ballot(request.id, step.id, user, approve, request.digest, note)
    said = f"{'approved' if approve else 'rejected'} by {user}" + (f": {note}" if note else "")
    counted = Effects(
        ballots=(ballot,), notes=(Note(step.name, actor, "Approved" if approve else "Rejected", said),)
    )
    approvals = request.approvals() + ((user,) if approve else ())
    who = ", ".join(f"<@{u}>" for u in approvals)
    rejected = f"rejected by <@{user}>" + (f": {note}" if note else "")
    reached = approve and len(approvals) >= request.quorum
    verdict = replace(base, decision=Decision.RECORDED, approvals=approvals, note=note)
    if not reached and approve:
        return verdict, counted
    closes = (Closing(request.id, Closed.APPROVED if approve else Closed.REJECTED),)
    if request.kind == "tool":
        # The agent continues in a fresh attempt and reads the decision from its context.
        decided = Remark(
            step.name, "approval", f"approved by {who}" if approve else rejected, author=user,
            data={"approved": approve, "by": list(approvals) if approve else [user], "note": note,
                  "request": request.id},
        )
        move = _move(
            step, actor, status=StepStatus.PENDING, waits=None,
            reason="ToolApproved" if approve else "ToolRejected",
            message=f"approved by {who}" if approve else rejected,
        )
        effects = counted + Effects(moves=(move,), closings=closes, remarks=(decided,), progress=True)
    elif approve:
        move = _move(step, actor, status=StepStatus.SUCCEEDED, waits=None, finished_at=now,
                     reason=None, message=f"approved by {who}")
        effects = counted + Effects(moves=(move,), closings=closes, progress=True)
    else:
        move = _move(step, actor, status=StepStatus.FAILED, waits=None, finished_at=now,
                     reason=Reason.REJECTED, message=rejected)
        effects = counted + Effects(moves=(move,), closings=closes, progress=True)
    decision = Decision.APPROVED if approve else Decision.REJECTED
    return replace(verdict, decision=decision, status=move.new.status), effects


def _refusal(
    run: RunState, step: StepState | None, request: Request, *, user: str, groups: frozenset[str],
    author: str | None = None,
) -> tuple[Decision, str, str] | None:
    """Why a person's decision does not count, if it does not: (decision, reason, why)."""
    if step is None or step.waits is None or step.waits.request != request.id:
        why = {
            Closed.APPROVED: "that request was already approved",
            Closed.REJECTED: "that request was already rejected",
            Closed.ANSWERED: "that question was already answered",
            Closed.TIMED_OUT: "that request timed out",
            Closed.SUPERSEDED: "that request was replaced by a newer one",
            Closed.CANCELLED: "that request was cancelled",
        }.get(request.closed) if request.closed else None
        if why is None:
            why = "that request is not the one the step waits on now"
        return Decision.OUTDATED, "StaleRequest", f"a decision on an old request of {request.step}: {why}"
    if step.status is not StepStatus.WAITING:
        return Decision.NOT_WAITING, "Ignored", f"a decision on {step.name}, which is {step.status.value}"
    if request.kind == "question":
        return Decision.NOT_WAITING, "Ignored", "a question is answered by a reply in the thread"
    if not is_approver(user, groups, step.waits.approvers):  # an escalation's people included
        return (
            Decision.NOT_APPROVER,
            "NotAnApprover",
            f"{user} is not among the approvers {', '.join(sorted(step.waits.approvers))}; ignored",
        )
    if request.voted(user):
        return Decision.ALREADY_COUNTED, "AlreadyCounted", f"{user} already answered this request"
    if author is not None and user == author and not run.spec.allow_self_approval:
        others = [a for a in step.waits.approvers if a != user]
        return (
            Decision.OWN_JOB,
            "SelfApproval",
            f"{user} committed {run.name} ({run.spec.author}), and the four-eyes rule needs someone "
            f"else to decide its steps: {', '.join(others) or 'another approver'}",
        )
    return None


def on_reply(run: RunState, *, user: str, text: str, step: str | None) -> tuple[int, Effects]:
    """A person's reply in a job's thread: context for the job's agents (stored as given:
    untrusted text), and the answer to every step waiting on a question there."""
    actor = f"user:{user}"
    remark = Remark(step, "user", text, author=user)
    resumed = [
        s
        for s in planning.live_steps(run)
        if s.status is StepStatus.WAITING
        and s.waits is not None
        and s.waits.kind == "question"
        and step in (None, s.name)
    ]
    moves = tuple(
        _move(s, actor, status=StepStatus.PENDING, waits=None, reason="Answered",
              message=f"<@{user}> answered")
        for s in resumed
    )
    closings = tuple(c for s in resumed for c in _closing(s, Closed.ANSWERED))
    return len(resumed), Effects(moves=moves, closings=closings, remarks=(remark,), progress=bool(moves))


def on_timers(run: RunState, now: datetime) -> Effects:
    """A request with `escalate` asks its escalation's people too once `after` has passed,
    and ends at its timeout as `onTimeout` says. One without reminds the approvers once at
    its timeout, and ends at twice the timeout."""
    effects = NOTHING
    for step in run.index.named(StepStatus.WAITING):
        waits = step.waits
        if waits is None:
            continue
        if waits.escalate_at is not None and not waits.escalated and now >= waits.escalate_at:
            effects += _escalation(run, step, waits)
            continue
        if step.deadline_at is None:
            continue
        started = step.started_at or now
        ends = step.deadline_at if waits.escalate_at else started + 2 * (step.deadline_at - started)
        if now >= ends:
            who = ", ".join(waits.approvers) or "anyone"
            reason = Reason.REJECTED if waits.on_timeout == "reject" else Reason.APPROVAL_TIMED_OUT
            said = "rejected: " if waits.on_timeout == "reject" else ""
            move = _move(step, status=StepStatus.FAILED, waits=None, finished_at=now,
                         reason=reason, message=f"{said}no decision by {who} in time")
            effects += Effects(moves=(move,), closings=_closing(step, Closed.TIMED_OUT), progress=True)
        elif now >= step.deadline_at and not waits.reminded and waits.escalate_at is None:
            who = " ".join(f"<@{a}>" if a.startswith("U") else f"<!subteam^{a}>" for a in waits.approvers)
            text = f"{who or 'Anyone here:'} still waiting for your answer on {step.name}"
            ping = Outgoing(run.channel, text, "ping", step.name)
            move = _move(step, status=StepStatus.WAITING, waits=replace(waits, reminded=True),
                         reason=None, message="reminded the approvers", logged=False)
            note = Note(step.name, "engine", "Reminded", f"reminded {who or 'the thread'}")
            effects += Effects(moves=(move,), messages=(ping,), notes=(note,))
    return effects


def _escalation(run: RunState, step: StepState, waits: Waits) -> Effects:
    """The request now also asks the escalation's people, who may decide it as approvers."""
    added = tuple(a for a in waits.escalate_to if a not in waits.approvers)
    mention = " ".join(f"<@{a}>" if a.startswith("U") else f"<!subteam^{a}>" for a in waits.escalate_to)
    waited = " ".join(f"<@{a}>" if a.startswith("U") else f"<!subteam^{a}>" for a in waits.approvers)
    text = (f"{mention}: *{step.name}* has waited for {waited} without a decision; "
            "you may approve or reject it too, on the request")
    ping = Outgoing(run.channel, text, "ping", step.name)
    move = _move(step, status=StepStatus.WAITING, waits=replace(waits, escalated=True,
                 approvers=waits.approvers + added), reason="Escalated",
                 message=f"escalated to {', '.join(waits.escalate_to)}", logged=False)
    note = Note(step.name, "engine", "Escalated", f"escalated to {', '.join(waits.escalate_to)}")
    widening = Widening(waits.request, waits.approvers + added)
    return Effects(moves=(move,), messages=(ping,), notes=(note,), widenings=(widening,))


@dataclass(frozen=True)
class RetryPlan:
    job: str
    steps: tuple[str, ...]  # retried
    left: tuple[str, ...]  # failed or blocked, but not this person's to reopen
    message: str


def retryable(run: RunState) -> list[StepState]:
    return [s for s in planning.live_steps(run) if s.status in (StepStatus.FAILED, StepStatus.BLOCKED)]


def needs_approver(step: StepState) -> bool:
    return step.reason in REOPENED_BY_APPROVERS


def on_retry(
    run: RunState, *, actor: str, may_reopen: Callable[[StepState], bool] = lambda _: True,
    may_retry: bool = True,
) -> tuple[RetryPlan, Effects]:
    """A person's retry: failed and blocked steps start over with a new round (no votes).
    A step that an approver rejected, or that timed out waiting, only if `may_reopen` says this
    person is one of its approvers; the others if `may_retry` (the template's `retriers`, when
    it names any, include the person). The plan's message says who may retry what was left."""
    stuck = retryable(run)
    mine = [s for s in stuck if (may_reopen(s) if needs_approver(s) else may_retry)]
    left = [s for s in stuck if s not in mine]
    names = tuple(s.name for s in mine)
    reasons = [_who_may(run, s) for s in left]
    if not names:
        why = "; ".join(reasons) if left else f"{run.name} has no failed or blocked step to retry"
        return RetryPlan(run.name, (), tuple(s.name for s in left), f"{run.name}: {why}" if left else why), \
            NOTHING
    moves = tuple(_reset(s, actor, "RetryRequested", f"retry requested by {actor}") for s in mine)
    job = None if run.active else JobChange(JobStatus.PENDING, True, actor=actor, message="retry requested")
    message = f"retrying {', '.join(names)} of {run.name}"
    if left:
        message += "; " + "; ".join(reasons)
    plan = RetryPlan(run.name, names, tuple(s.name for s in left), message)
    return plan, Effects(moves=moves, job=job, progress=True)


def _who_may(run: RunState, step: StepState) -> str:
    if needs_approver(step):
        return f"only an approver of {step.name} can reopen it"
    if run.spec.retriers:
        return f"only {', '.join(run.spec.retriers)} can retry {step.name}"
    return f"only people in {run.channel} can retry {step.name}"


def _reset(step: StepState, actor: str, reason: str, message: str, **changes: Any) -> Move:
    return _move(
        step, actor, status=StepStatus.PENDING, reason=reason, message=message, failures=0,
        next_attempt_at=None, deadline_at=None, finished_at=None, waits=None, **changes,
    )


def _reset_closing(move: Move) -> Effects:
    return Effects(moves=(move,), closings=_closing(move.old, Closed.SUPERSEDED))


def on_card_lost(run: RunState, requests: list[tuple[Request, str | None]], lost_channel: str) -> Effects:
    """The card's message is gone from Slack: the open requests that lived in its thread (or
    were never posted) are posted again. They stay the same requests, votes and all."""
    messages = []
    for request, posted_in in requests:
        step = run.step(request.step)
        if step is None or step.waits is None or step.waits.request != request.id:
            continue
        if posted_in is not None and posted_in != lost_channel:
            continue  # it lives in another channel, which Slack still has
        where = step.waits.channel or run.channel
        messages.append(Outgoing(where, request.text, "approval", step.name,
                                 thread_of_card=where in (run.channel, ""), request=request.id))
    return Effects(messages=tuple(messages))


# --- Git ----------------------------------------------------------------------------


def on_generation(run: RunState, job: RenderedJob, *, actor: str, now: datetime) -> Effects:
    """A changed spec: unfinished steps follow it; succeeded and running steps stay (a running
    attempt finishes on the definition it started with). Blocked steps, and failed or waiting
    steps whose own definition changed, start over: approvals bound to the old one are void."""
    effects = NOTHING
    names = {s.name for s in job.steps}
    generation = run.generation + 1
    for state in run.steps:
        if state.name not in names:
            if state.status not in (StepStatus.SUCCEEDED, StepStatus.CANCELLED):
                move = _move(state, actor, status=StepStatus.CANCELLED, waits=None, reason="RemovedFromSpec",
                             message="the step is no longer in the template")
                effects += Effects(moves=(move,), closings=_closing(state, Closed.SUPERSEDED))
            continue
        if state.status in (StepStatus.SUCCEEDED, StepStatus.RUNNING):
            continue
        digest = job.step_digest(state.name)
        changed = state.digest != digest
        if state.status in (StepStatus.BLOCKED, StepStatus.CANCELLED) or (
            changed and state.status in (StepStatus.FAILED, StepStatus.WAITING)
        ):
            move = _reset(state, actor, "SpecChanged", f"generation {generation} applies to this step",
                          digest=digest)
            effects += _reset_closing(move)
        elif changed:
            effects += Effects(moves=(_move(state, actor, digest=digest, logged=False),))
    effects += set_condition(run, Reason.INVALID_SPEC, False, "", "", now)
    return effects + Effects(
        notes=(Note(None, actor, "SpecChanged", f"generation {generation} from {run.revision[:12]}"),),
        progress=True,
    )


def on_cancel(run: RunState, *, actor: str, message: str, now: datetime) -> Effects:
    """Removed from Git: every unfinished step is cancelled and its request closed."""
    effects = NOTHING
    for state in run.steps:
        if state.status in (StepStatus.SUCCEEDED, StepStatus.CANCELLED):
            continue
        move = _move(state, actor, status=StepStatus.CANCELLED, waits=None, next_attempt_at=None,
                     reason=Reason.REMOVED_FROM_GIT, message=message)
        effects += Effects(moves=(move,), closings=_closing(state, Closed.CANCELLED))
    effects += set_condition(run, Reason.STALLED, False, "", "", now)
    return effects + Effects(
        job=JobChange(JobStatus.CANCELLED, False, actor=actor, reason=Reason.REMOVED_FROM_GIT,
                      message=message)
    )


def on_agents_changed(run: RunState, agent_digests: Mapping[str, str], *, actor: str) -> Effects:
    """A commit that changed a blocked step's agent tries the step again."""
    moves = tuple(
        _reset(s, actor, "AgentChanged", "the agent's spec changed; trying again")
        for s in planning.live_steps(run)
        if s.status is StepStatus.BLOCKED
        and s.agent_digest
        and s.agent_digest != agent_digests.get(run.spec.step(s.name).agent or "", "missing")
    )
    return Effects(moves=moves, progress=True) if moves else NOTHING


# --- the job ------------------------------------------------------------------------


def job_status(run: RunState, now: datetime) -> JobStatus:
    """The first that holds: Running, Waiting, Blocked, Failed, Succeeded (DESIGN.md)."""
    if run.status is JobStatus.CANCELLED:
        return JobStatus.CANCELLED
    statuses = {status for status, names in run.index.by_status.items() if names}
    if statuses & {StepStatus.RUNNING, StepStatus.RETRYING}:
        return JobStatus.RUNNING
    if StepStatus.PENDING in statuses and planning.ready(run, now):
        return JobStatus.RUNNING
    if StepStatus.WAITING in statuses:
        return JobStatus.WAITING
    if StepStatus.BLOCKED in statuses:
        return JobStatus.BLOCKED
    if StepStatus.FAILED in statuses:
        return JobStatus.FAILED
    if statuses == {StepStatus.SUCCEEDED}:
        return JobStatus.SUCCEEDED
    return JobStatus.PENDING


def waits_on(run: RunState) -> str:
    """What a job is waiting on, in words, for its status message and `Stalled`."""
    parts = []
    for state in planning.live_steps(run):
        if state.status is StepStatus.WAITING and state.waits:
            parts.append(f"{state.name} waits for approval by {', '.join(state.waits.approvers)}")
        elif state.status is StepStatus.BLOCKED:
            parts.append(f"{state.name} is blocked: {state.reason}: {state.message}")
        elif state.status is StepStatus.FAILED:
            parts.append(f"{state.name} failed: {state.message}")
        elif state.status in (StepStatus.RUNNING, StepStatus.RETRYING):
            parts.append(f"{state.name} is {state.status.value.lower()}")
    return "; ".join(parts) or "no step is ready"


def on_refresh(run: RunState, now: datetime, *, default_deadline: timedelta) -> Effects:
    """The job's status follows its steps; no progress for its deadline sets `Stalled`."""
    effects = NOTHING
    status = job_status(run, now)
    if status is not run.status:
        told = status in (JobStatus.WAITING, JobStatus.BLOCKED, JobStatus.FAILED)
        effects += Effects(job=JobChange(status, status is not JobStatus.SUCCEEDED,
                                         message=waits_on(run) if told else ""))
        if status in (JobStatus.BLOCKED, JobStatus.FAILED):  # the thread says so, not only the card
            icon, ended = (":x:", "failed") if status is JobStatus.FAILED else (":no_entry:", "is blocked")
            text = f"{icon} *{run.name}* {ended}: {waits_on(run)}"
            effects += Effects(messages=(Outgoing(run.channel, text, "ended"),))
    deadline = run.spec.deadline or default_deadline
    stalled = status not in (JobStatus.SUCCEEDED, JobStatus.CANCELLED) and now - run.progress_at > deadline
    stalling = set_condition(
        run, Reason.STALLED, stalled, Reason.STALLED if stalled else "Progressing",
        f"no progress for {format_duration(deadline)}: {waits_on(run)}" if stalled else "", now,
    )
    if stalled and stalling and run.condition(Reason.STALLED) is None:
        idle = format_duration(deadline)
        text = f":hourglass: *{run.name}* has made no progress for {idle}: {waits_on(run)}"
        stalling += Effects(messages=(Outgoing(run.channel, text, "ended"),))
    return effects + stalling


def set_condition(
    run: RunState, type_: str, status: bool, reason: str, message: str, now: datetime
) -> Effects:
    """Sets or clears one condition; nothing when it already says that. Each change is logged."""
    current = run.condition(type_)
    if (current is None and not status) or (
        current is not None and status and current.status and current.message == message
    ):
        return NOTHING
    rest = tuple(c for c in run.conditions if c.type != type_)
    if status:
        rest += (Condition(type_, True, reason, message, now, run.generation),)
    return Effects(
        job=JobChange(conditions=rest),
        notes=(Note(None, "engine", f"{type_}={status}", message or f"{type_} cleared"),),
    )
