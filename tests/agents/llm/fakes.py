"""Shared by the LLM step tests: the step under test, an agent spec, and a recorder that keeps
the step's context as the database would (so a fresh runner can be fed it)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from georgebot.engine.ports import ContextEntry
from georgebot.model.attempts import ProcessRecord
from georgebot.model.specs import AgentSpec
from georgebot.model.views import Usage

JOB = "onboard-alice"
STEP = "welcome"
CHANNEL = "#onboarding"
MODEL = "claude-sonnet-5-5"
API_KEY = "sk-ant-test-0123456789"
INSTRUCTIONS = "Create the account for Alice Smith, then post a short welcome that mentions her team."
DONE_WHEN = "The account exists and a welcome message is in #general."
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


class Killed(Exception):
    """The process running the agent died (as far as the step's context can tell)."""


@dataclass
class MemoryRecorder:
    """A StepRecorder that stores notes as the engine does: ContextEntry rows, data as JSON."""

    entries: list[ContextEntry] = field(default_factory=list)
    usages: list[tuple[str, Usage]] = field(default_factory=list)
    posts: list[tuple[str, str]] = field(default_factory=list)
    killed_at: str | None = None  # noting this role kills the agent instead

    def _add(self, role: str, text: str, *, author: str | None = None,
             data: dict[str, Any] | None = None, step: str | None = STEP) -> None:
        at = NOW + timedelta(seconds=len(self.entries))
        stored = None if data is None else json.loads(json.dumps(data))
        self.entries.append(ContextEntry(at=at, role=role, text=text, author=author, data=stored, step=step))

    async def note(self, role: str, text: str, data: dict[str, Any] | None = None) -> None:
        if role == self.killed_at:
            self.killed_at = None
            raise Killed(role)
        self._add(role, text, data=data)

    async def usage(self, model: str, usage: Usage) -> None:
        self.usages.append((model, usage))

    async def process(self, record: ProcessRecord) -> None:
        pass

    async def post(self, channel: str, text: str) -> None:
        self.posts.append((channel, text))

    def reply(self, user: str, text: str) -> None:
        """A person's reply in the job's thread, as `Engine.reply` stores it."""
        self._add("user", text, author=user, step=None)

    def decide(self, user: str, *, approved: bool, note: str = "") -> None:
        """A decision on a tool approval, as `Engine.decide` stores it."""
        text = f"approved by <@{user}>" if approved else f"rejected by <@{user}>"
        self._add("approval", text, author=user, data={"approved": approved, "by": [user], "note": note})

    def roles(self) -> list[str]:
        return [e.role for e in self.entries if e.step == STEP]


def agent_spec(*capabilities: dict[str, Any], **spec: Any) -> AgentSpec:
    return AgentSpec.model_validate({
        "apiVersion": "george/v1",
        "kind": "AgentSpec",
        "metadata": {"name": "it-helper"},
        "spec": {"description": "Creates accounts and talks to IT.", "capabilities": list(capabilities),
                 **spec},
    })


def runs(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []
