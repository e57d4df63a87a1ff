"""Approval requests: what a Waiting step waits for, and how a request ended.

Every request (an `ask` step, a tool call under `requireApproval`, an agent's question) has
its own id. Votes, the Slack message that carries it, and the decision all bind to that id,
so a reaction on any other request can never decide this one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

WaitKind = Literal["ask", "question", "tool"]
"""`ask`: a ✅ quorum completes the step. `question` (an LLM's `ask_human`): a reply in the
job's thread resumes it. `tool` (a `requireApproval` tool call): the decision resumes it, and
the agent reads the decision from its context."""


class Closed(StrEnum):
    """Why a request no longer takes votes."""

    APPROVED = "Approved"
    REJECTED = "Rejected"
    ANSWERED = "Answered"
    TIMED_OUT = "TimedOut"
    SUPERSEDED = "Superseded"  # a retry, a new generation or a new round replaced it
    CANCELLED = "Cancelled"  # the job was removed from Git


@dataclass(frozen=True)
class Waits:
    """What a Waiting step waits for: one request, by id, and what it asked of whom."""

    request: str
    kind: WaitKind
    channel: str
    text: str
    approvers: tuple[str, ...]  # who may decide now: the escalation's people added once it came
    quorum: int
    reminded: bool = False
    escalate_at: datetime | None = None
    escalate_to: tuple[str, ...] = ()
    escalated: bool = False
    on_timeout: str = "fail"  # or "reject"

    def to_json(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "kind": self.kind,
            "channel": self.channel,
            "text": self.text,
            "approvers": list(self.approvers),
            "quorum": self.quorum,
            "reminded": self.reminded,
            "escalate_at": self.escalate_at.isoformat() if self.escalate_at else None,
            "escalate_to": list(self.escalate_to),
            "escalated": self.escalated,
            "on_timeout": self.on_timeout,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Waits:
        kind = raw.get("kind", "ask")
        return cls(
            request=str(raw.get("request", "")),
            kind=kind if kind in ("ask", "question", "tool") else "ask",
            channel=str(raw.get("channel", "")),
            text=str(raw.get("text", "")),
            approvers=tuple(str(a) for a in raw.get("approvers", [])),
            quorum=int(raw.get("quorum", 1)),
            reminded=bool(raw.get("reminded", raw.get("pinged", False))),
            escalate_at=datetime.fromisoformat(at) if (at := raw.get("escalate_at")) else None,
            escalate_to=tuple(str(a) for a in raw.get("escalate_to", [])),
            escalated=bool(raw.get("escalated", False)),
            on_timeout="reject" if raw.get("on_timeout") == "reject" else "fail",
        )


@dataclass(frozen=True)
class Vote:
    user: str
    approve: bool
    # When it was cast and a rejection's reason: what a request's message shows, not who voted how.
    at: datetime | None = field(default=None, compare=False)
    note: str = field(default="", compare=False)


@dataclass(frozen=True)
class Request:
    """An approval request as stored: open while `closed` is None."""

    id: str
    job_id: int
    step_id: int
    step: str
    kind: WaitKind
    channel: str
    approvers: tuple[str, ...]
    quorum: int
    digest: str
    text: str = ""
    closed: Closed | None = None
    votes: tuple[Vote, ...] = ()
    closed_at: datetime | None = field(default=None, compare=False)

    def approvals(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(v.user for v in self.votes if v.approve))

    def voted(self, user: str) -> bool:
        return any(v.user == user for v in self.votes)


def is_approver(user: str, groups: frozenset[str], approvers: tuple[str, ...]) -> bool:
    """A listed user, or a member of a listed user group (`S…` ids)."""
    return user in approvers or bool(groups & set(approvers))
