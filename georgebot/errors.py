"""The few exception types George raises; every layer translates foreign errors into these.

`ConfigError` stops a command with exit 2; `ManifestError` describes one bad document while
the rest of a snapshot still applies; `InputError` goes back to the person who sent it;
`StepError` and its children are what a step executor may raise, and the engine turns them
into outcomes in one place (`engine/execution.py`).
"""

from __future__ import annotations

from datetime import timedelta


class GeorgeError(Exception):
    """Base of every error George raises on purpose."""


class ConfigError(GeorgeError):
    """Bad settings or an unusable repository at start: the message says what to set."""


class ManifestError(GeorgeError):
    """One manifest document is wrong; `file`, `line` and the object locate it."""

    def __init__(
        self,
        message: str,
        *,
        file: str = "-",
        line: int | None = None,
        column: int | None = None,
        kind: str = "-",
        name: str = "-",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.kind = kind
        self.name = name


class InputError(GeorgeError):
    """A bad command or payload from a person: shown to them, never retried."""


class StepError(GeorgeError):
    """A step attempt could not finish; the subclass decides what happens next."""

    reason = "StepFailed"


class TemporaryError(StepError):
    """Try again later (429, 5xx, a Git fetch, a busy database); does not use up `retries`."""

    def __init__(self, message: str, *, delay: timedelta | None = None, reason: str = "TryLater") -> None:
        super().__init__(message)
        self.delay = delay
        self.reason = reason


class StoreBusy(TemporaryError):
    """The database is locked, read-only, full or unreachable: George keeps what it holds and
    writes it again later; nothing is re-run and no retry is used up."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="StoreBusy")


class PermanentError(StepError):
    """A failed attempt: the step is retried while its `retries` last, then it is Failed.
    `final` fails it at once (a budget spent: trying again would spend another)."""

    def __init__(self, message: str, *, reason: str = "StepFailed", final: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.final = final


class StepBlocked(PermanentError):
    """The step cannot go on until something changes (a grant, a condition, a credential):
    Blocked with `reason`, tried again when a commit changes the job or its agent, or on retry."""

    def __init__(self, message: str, *, reason: str = "ConditionsNotMet") -> None:
        super().__init__(message, reason=reason)


class CapabilityMissing(StepBlocked):
    """The step's agent lacks what the step needs; Blocked until a commit grants it."""

    def __init__(self, capability: str, message: str | None = None) -> None:
        super().__init__(message or f"agent lacks capability: {capability}", reason="CapabilityMissing")
        self.capability = capability
