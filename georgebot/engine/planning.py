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
    names = run.spec.by_name
    return [s for s in run.steps if s.name in names]


def ready(run: RunState, now: datetime) -> list[StepState]:
    """Pending steps whose needs all succeeded, and Retrying steps that are due."""
    needs = run.spec.needs
    succeeded, pending, retrying = StepStatus.SUCCEEDED, StepStatus.PENDING, StepStatus.RETRYING
    done = {s.name for s in run.steps if s.status is succeeded}
    out = []
    for state in run.steps:
        status = state.status
        if status is retrying:
            if state.next_attempt_at is not None and state.next_attempt_at > now:
                continue
        elif status is not pending:
            continue
        wanted = needs.get(state.name)
        if wanted is not None and done.issuperset(wanted):
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
