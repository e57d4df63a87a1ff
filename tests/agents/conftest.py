"""Fixtures for the step executors: a checkout of small scripts, tasks, and a recorder fake."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from georgebot.agents.sandbox import Sandbox
from georgebot.engine.ports import StepTask
from georgebot.model.attempts import ProcessRecord
from georgebot.model.rendered import RenderedJob
from georgebot.model.specs import AgentSpec, Step

JOB = "onboard-alice"
JOB_CHANNEL = "#onboarding"


@dataclass
class Notes:
    """A StepRecorder that keeps what the agent noted, in order."""

    entries: list[tuple[str, str]] = field(default_factory=list)

    processes: list[ProcessRecord] = field(default_factory=list)

    async def note(self, role: str, text: str) -> None:
        self.entries.append((role, text))

    async def process(self, record: ProcessRecord) -> None:
        self.processes.append(record)


def agent_spec(*capabilities: dict[str, Any], name: str = "it-helper") -> AgentSpec:
    return AgentSpec.model_validate({
        "apiVersion": "george/v1",
        "kind": "AgentSpec",
        "metadata": {"name": name},
        "spec": {"capabilities": list(capabilities)},
    })


@pytest.fixture
def grant() -> Callable[..., AgentSpec]:
    """grant({"shell": {"commands": [...]}}, ...) → the AgentSpec of agent it-helper."""
    return agent_spec


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Every executor finishes what it starts: no asyncio task outlives a test."""
    before = asyncio.all_tasks()
    yield
    leaked = asyncio.all_tasks() - before - {asyncio.current_task()}
    assert not leaked, f"tasks left running: {leaked}"


@pytest.fixture
def notes() -> Notes:
    return Notes()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    path = tmp_path / "checkout"
    path.mkdir()
    return path


@pytest.fixture
def tool(checkout: Path) -> Callable[[str, str], Path]:
    """tool("tools/x", "echo hi") writes an executable /bin/sh script into the checkout."""

    def write(command: str, body: str) -> Path:
        path = checkout / command
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return path

    return write


MakeTask = Callable[..., StepTask]


@pytest.fixture
def make_task(tmp_path: Path, checkout: Path) -> MakeTask:
    """make_task({"name": ..., "run": [...]}, agent=agent_spec(...)) → a StepTask."""

    def make(step: dict[str, Any], *, agent: AgentSpec | None = None, attempt: int = 1) -> StepTask:
        if agent is not None:
            step = {"agent": agent.metadata.name, **step}
        parsed = Step.model_validate(step)
        job = RenderedJob(
            name=JOB, template="onboard-employee", channel=JOB_CHANNEL, deadline=None,
            params={}, fuzzy={}, steps=[parsed],
        )
        return StepTask(
            job=job, step=parsed, attempt=attempt, agent=agent, checkout=checkout,
            output_dir=tmp_path / "outputs" / JOB, channel=JOB_CHANNEL,
        )

    return make


@pytest.fixture
def unconfined() -> Iterator[Sandbox]:
    """No bubblewrap: for tests of process groups that read the tool's host pids."""
    sandbox = Sandbox.detect("unconfined")
    yield sandbox
    sandbox.close()
