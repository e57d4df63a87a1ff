"""Which steps of a run can start now, and whether anything will happen without a person.

Pure functions over a run as read; `lifecycle` holds what changes when they do.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from georgebot.model.status import StepStatus
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
