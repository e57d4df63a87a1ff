"""Statuses and conditions, spelled as DESIGN.md spells them (`Succeeded`, `Blocked`, ...)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class StepStatus(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    RETRYING = "Retrying"
    WAITING = "Waiting"
    BLOCKED = "Blocked"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


class JobStatus(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    WAITING = "Waiting"
    BLOCKED = "Blocked"
    FAILED = "Failed"
    SUCCEEDED = "Succeeded"
    CANCELLED = "Cancelled"


class Reason(StrEnum):
    """Machine-readable reasons for Blocked / Failed steps and for conditions."""

    CAPABILITY_MISSING = "CapabilityMissing"
    INVALID_PARAMS = "InvalidParams"
    CONDITIONS_NOT_MET = "ConditionsNotMet"
    INVALID_SPEC = "InvalidSpec"
    APPROVAL_TIMED_OUT = "ApprovalTimedOut"
    REJECTED = "Rejected"
    TIMED_OUT = "TimedOut"
    EXIT_CODE = "ExitCode"
    UNEXPECTED_RESPONSE = "UnexpectedResponse"
    BUDGET_EXHAUSTED = "BudgetExhausted"
    LEASE_EXPIRED = "LeaseExpired"
    RECOVERED = "Recovered"
    STALLED = "Stalled"
    REMOVED_FROM_GIT = "RemovedFromGit"


@dataclass(frozen=True)
class Condition:
    """A Kubernetes-style condition on a job or step."""

    type: str
    status: bool
    reason: str
    message: str
    last_transition_time: datetime
    observed_generation: int | None = None  # the job's generation when it was set
