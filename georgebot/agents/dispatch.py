"""`StepRunner`, the engine's `AgentRunner`: routes each attempt to the executor of its form.

`runtime.py` builds one, `start`s it before the engine runs and `close`s it at shutdown; it
owns every executor it holds, including an LLM executor plugged in later. Until there is
one, `instructions` steps end `Blocked: CapabilityMissing (llm)`. A `run` or `http` step whose
capability kind its agent's `requireApproval` lists passes `gating` first.
"""

from __future__ import annotations

from typing import Protocol

from georgebot import errors
from georgebot.agents import gating
from georgebot.agents.ask import AskRunner
from georgebot.agents.http import HttpRunner
from georgebot.agents.shell import ShellRunner
from georgebot.engine.ports import StepRecorder, StepResult, StepTask
from georgebot.model.specs import StepForm


class Executor(Protocol):
    """One step form's executor: an `AgentRunner` with resources to open and release."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def run(self, task: StepTask, recorder: StepRecorder) -> StepResult: ...


class LlmUnavailable:
    """Stands in for the LLM executor when George has no model to talk to."""

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def run(self, task: StepTask, recorder: StepRecorder) -> StepResult:
        raise errors.CapabilityMissing(
            "llm",
            f"step {task.step.name} has `instructions`, which need an LLM agent: set "
            "ANTHROPIC_API_KEY, restart George, then retry the job",
        )


class StepRunner:
    """Satisfies `engine.ports.AgentRunner`. Executors not given are built with defaults."""

    def __init__(
        self,
        *,
        shell: Executor | None = None,
        http: Executor | None = None,
        ask: Executor | None = None,
        llm: Executor | None = None,
    ) -> None:
        self._executors: dict[StepForm, Executor] = {
            StepForm.RUN: shell if shell is not None else ShellRunner(),
            StepForm.HTTP: http if http is not None else HttpRunner(),
            StepForm.ASK: ask if ask is not None else AskRunner(),
            StepForm.LLM: llm if llm is not None else LlmUnavailable(),
        }

    async def start(self) -> None:
        started: list[Executor] = []
        try:
            for executor in self._executors.values():
                await executor.start()
                started.append(executor)
        except BaseException:
            await _close_all(started)
            raise

    async def close(self) -> None:
        await _close_all(list(self._executors.values()))

    async def run(self, task: StepTask, recorder: StepRecorder) -> StepResult:
        gate = gating.gate_of(task)
        if gate is not None and (wait := await gating.pass_gate(gate, task, recorder)) is not None:
            return wait
        return await self._executors[task.step.form].run(task, recorder)


async def _close_all(executors: list[Executor]) -> None:
    """Closes every one even if some fail; the first failure is raised at the end."""
    failure: BaseException | None = None
    for executor in reversed(executors):
        try:
            await executor.close()
        except Exception as e:
            failure = failure or e
    if failure is not None:
        raise failure
