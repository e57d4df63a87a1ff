"""Fixtures for LLM steps: the local Messages API, runners on the real SDK, the recorder, tasks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from georgebot.agents.llm import LlmRunner
from georgebot.engine.ports import StepTask
from georgebot.model.rendered import RenderedJob
from georgebot.model.specs import AgentSpec, Step
from tests.agents.llm.fakes import API_KEY, CHANNEL, DONE_WHEN, INSTRUCTIONS, JOB, MODEL, STEP, MemoryRecorder
from tests.agents.llm.messages_api import MessagesApi


@pytest.fixture
def recorder() -> MemoryRecorder:
    return MemoryRecorder()


@pytest.fixture
async def api() -> AsyncIterator[MessagesApi]:
    server = MessagesApi()
    await server.server.start_server()
    yield server
    await server.close()
    assert server.violations == [], "George sent requests the real API would refuse"


MakeRunner = Callable[[], Awaitable[LlmRunner]]


@pytest.fixture
async def llm(api: MessagesApi) -> AsyncIterator[MakeRunner]:
    """`runner = await llm()`: a started runner on the real SDK; each call a fresh one, as a
    fresh agent would get. All are closed at the end."""
    runners: list[LlmRunner] = []

    async def make() -> LlmRunner:
        runner = LlmRunner(api_key=API_KEY, base_url=api.url, default_model=MODEL, timeout=10.0)
        await runner.start()
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        await runner.close()


MakeTask = Callable[..., StepTask]


@pytest.fixture
def make_task(tmp_path: Path, checkout: Path, recorder: MemoryRecorder) -> MakeTask:
    """make_task(agent) → the `welcome` step's task, its context read from the recorder now."""

    def make(agent: AgentSpec | None, *, fuzzy: dict[str, str] | None = None, attempt: int = 1,
             timeout: str | None = None) -> StepTask:
        step = Step.model_validate({
            "name": STEP, "agent": "it-helper", "instructions": INSTRUCTIONS, "done_when": DONE_WHEN,
            **({"timeout": timeout} if timeout else {}),
        })
        job = RenderedJob(name=JOB, template="onboard-employee", channel=CHANNEL, deadline=None,
                          params={"name": "Alice Smith"}, fuzzy=fuzzy or {}, steps=[step])
        return StepTask(job=job, step=step, attempt=attempt, agent=agent, checkout=checkout,
                        output_dir=tmp_path / "outputs" / JOB, channel=CHANNEL,
                        context=tuple(recorder.entries))

    return make


@pytest.fixture
def counted_tool(tool: Callable[[str, str], Path], tmp_path: Path) -> Callable[[str], Path]:
    """counted_tool("tools/x") → a tool that echoes its arguments and appends them to a file
    in its output folder (returned: the only place a tool may write), so a test can tell how
    often it ran."""

    def write(command: str) -> Path:
        name = f"{command.replace('/', '_')}.runs"
        tool(command, f'echo "ran $*" >> "$GEORGE_OUTPUT_DIR/{name}"\necho "created $*"')
        return tmp_path / "outputs" / JOB / name

    return write
