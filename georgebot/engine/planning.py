"""Which steps of a run can start now, and whether anything will happen without a person.

Pure functions over a run as read; `lifecycle` holds what changes when they do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from georgebot.model.status import StepStatus
from georgebot.store import RunState, StepState


def live_steps(run: RunState) -> list[StepState]:
    """The steps of the current spec (a step removed from the template no longer counts)."""
    return run.index.live


def ready(run: RunState, now: datetime) -> list[StepState]:
    """Pending steps whose needs all succeeded, and Retrying steps that are due."""
    index = run.index
    retrying = index.unblocked(StepStatus.RETRYING)
    due = [s for s in retrying if s.next_attempt_at is None or s.next_attempt_at <= now]
    pending = index.unblocked(StepStatus.PENDING)
    return sorted([*pending, *due], key=lambda s: s.position) if due else pending


def running(run: RunState) -> list[StepState]:
    return run.index.named(StepStatus.RUNNING)


def next_due(run: RunState, now: datetime, mine: Callable[[int], bool]) -> datetime | None:
    """When a step of this run can start without a person, a commit or another George's
    word: a retry falls due, or the lease of a step no agent of this George runs lapses."""
    index = run.index
    times = [s.next_attempt_at for s in index.unblocked(StepStatus.RETRYING)
             if s.next_attempt_at is not None and s.next_attempt_at > now]
    times += [s.lease_expires_at for s in index.named(StepStatus.RUNNING)
              if s.lease_expires_at is not None and s.lease_expires_at > now and not mine(s.id)]
    return min(times, default=None)


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
