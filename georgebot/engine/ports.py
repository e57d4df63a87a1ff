"""The engine's ports: what it needs from step executors and from the chat.

Adapters (`agents/`, `slack/`) satisfy these structurally; `runtime.py` plugs them in and
tests plug fakes. Nothing here knows about Slack, Anthropic or subprocesses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from georgebot.model.approvals import WaitKind
from georgebot.model.attempts import ProcessRecord
from georgebot.model.rendered import RenderedJob
from georgebot.model.specs import AgentSpec, OnTimeout, Step
from georgebot.model.views import Usage


@dataclass(frozen=True)
class ContextEntry:
    """One item of a step's context (oldest first): output, a note, a person's reply."""

    at: datetime
    role: str  # "output", "note", "user" (a person's reply), "approval", or an agent's own
    text: str
    author: str | None = None  # a Slack user id for replies and decisions
    data: dict[str, Any] | None = None  # structured content an agent wrote (an LLM turn)
    step: str | None = None  # None: the job's thread, seen by every step


@dataclass(frozen=True)
class StepTask:
    """Everything one attempt needs, rebuilt from the database for every attempt."""

    job: RenderedJob
    step: Step
    attempt: int
    agent: AgentSpec | None
    checkout: Path  # the repository root at the synced revision
    output_dir: Path  # GEORGE_HOME/outputs/JOB, where tools may write
    channel: str  # the job's channel (the card's)
    context: tuple[ContextEntry, ...] = ()
    revision: str = ""


@dataclass(frozen=True)
class ApprovalRequest:
    """An `ask` (or an LLM's question) to post for people to answer."""

    job: str
    step: str
    channel: str  # where the request goes; the job's channel means the card's thread
    text: str
    approvers: tuple[str, ...]
    quorum: int
    kind: WaitKind = "ask"
    escalate_after: timedelta | None = None  # then `escalate_to` may decide too
    escalate_to: tuple[str, ...] = ()
    timeout: timedelta | None = None  # none: the step's own `timeout`, if any
    on_timeout: OnTimeout = "fail"


@dataclass(frozen=True)
class Done:
    """The step succeeded; `message` says how, `output` is a bounded tail for the thread."""

    message: str = ""
    output: str = ""


@dataclass(frozen=True)
class Wait:
    """The step waits for people: the engine posts the request, records it and ends the agent."""

    request: ApprovalRequest
    message: str = ""


StepResult = Done | Wait


class StepRecorder(Protocol):
    """Lets a running agent append to its step's context as it goes (persisted at once)."""

    async def process(self, record: ProcessRecord) -> None:
        """The attempt started a process group: recorded, so a George that recovers the step
        can stop what is left of it."""
        ...

    async def note(self, role: str, text: str, data: dict[str, Any] | None = None) -> None: ...

    async def usage(self, model: str, usage: Usage) -> None: ...

    async def post(self, channel: str, text: str) -> None:
        """A message for people, through the outbox: in the card's thread when `channel`
        is the job's own, else in `channel` itself."""
        ...


class AgentRunner(Protocol):
    """Executes one attempt of a step. Raises `errors.StepError` subclasses to fail it."""

    async def run(self, task: StepTask, recorder: StepRecorder) -> StepResult: ...


class Keeper(Protocol):
    """Stops the attempts' processes when George cannot: the engine says how long its leases
    hold, and asks it to stop what an earlier attempt left (`stop` says what it did)."""

    def hold(self, seconds: float) -> None: ...

    def stop(self, previous: ProcessRecord) -> str: ...


class ChatPort(Protocol):
    """The chat adapter, as the engine sees it: told which runs changed (their cards are owed
    an update, their outbox may hold messages). It reads what to say through the engine."""

    def changed(self, run_id: int) -> None: ...


class Clock(Protocol):
    def now(self) -> datetime: ...


@dataclass
class SystemClock:
    def now(self) -> datetime:
        from datetime import UTC

        return datetime.now(UTC)


def seconds(delta: timedelta | None) -> float | None:
    return None if delta is None else delta.total_seconds()
