"""Pure decisions over a job's steps: which are ready, what the job's status is.

No I/O here, so the rules of DESIGN.md's "Statuses" are tested as plain functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from georgebot.model.status import JobStatus, StepStatus
from georgebot.store import RunState, StepState


def live_steps(run: RunState) -> list[StepState]:
    """The steps of the current spec (a step removed from the template no longer counts)."""
    names = {s.name for s in run.spec.steps}
    return [s for s in run.steps if s.name in names]


def ready(run: RunState, now: datetime) -> list[StepState]:
    """Pending steps whose needs all succeeded, and Retrying steps that are due."""
    steps = live_steps(run)
    done = {s.name for s in steps if s.status is StepStatus.SUCCEEDED}
    out = []
    for state in steps:
        spec = run.spec.step(state.name)
        if not set(spec.needs) <= done:
            continue
        if state.status is StepStatus.PENDING or (
            state.status is StepStatus.RETRYING
            and (state.next_attempt_at is None or state.next_attempt_at <= now)
        ):
            out.append(state)
    return out


def job_status(run: RunState, now: datetime) -> JobStatus:
    """The first that holds: Running, Waiting, Blocked, Failed, Succeeded (DESIGN.md)."""
    if run.status is JobStatus.CANCELLED:
        return JobStatus.CANCELLED
    steps = live_steps(run)
    statuses = {s.status for s in steps}
    if statuses & {StepStatus.RUNNING, StepStatus.RETRYING} or ready(run, now):
        return JobStatus.RUNNING
    if StepStatus.WAITING in statuses:
        return JobStatus.WAITING
    if StepStatus.BLOCKED in statuses:
        return JobStatus.BLOCKED
    if StepStatus.FAILED in statuses:
        return JobStatus.FAILED
    if steps and statuses == {StepStatus.SUCCEEDED}:
        return JobStatus.SUCCEEDED
    return JobStatus.PENDING


def at_rest(runs: Iterable[RunState], now: datetime) -> bool:
    """Nothing will happen without a person, a commit or the passing of time (`--wait`)."""
    for run in runs:
        for state in live_steps(run):
            if state.status is StepStatus.RUNNING:
                return False
            if state.status is StepStatus.RETRYING:
                return False
        if ready(run, now):
            return False
    return True


def waits_on(run: RunState) -> str:
    """What a job is waiting on, in words, for the Stalled condition."""
    parts = []
    for state in live_steps(run):
        if state.status is StepStatus.WAITING and state.waits_for:
            who = ", ".join(state.waits_for.get("approvers", []))
            parts.append(f"{state.name} waits for approval by {who}")
        elif state.status is StepStatus.BLOCKED:
            parts.append(f"{state.name} is blocked: {state.reason}: {state.message}")
        elif state.status is StepStatus.FAILED:
            parts.append(f"{state.name} failed: {state.message}")
        elif state.status in (StepStatus.RUNNING, StepStatus.RETRYING):
            parts.append(f"{state.name} is {state.status.value.lower()}")
    return "; ".join(parts) or "no step is ready"
