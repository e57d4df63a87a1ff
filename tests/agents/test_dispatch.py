"""`StepRunner`: one runner for the engine, routing each step to the executor of its form."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from georgebot import errors
from georgebot.agents.dispatch import StepRunner
from georgebot.engine.ports import Done, StepRecorder, StepResult, StepTask, Wait
from georgebot.model.specs import StepForm

STEPS = {
    StepForm.RUN: {"name": "create-account", "agent": "it-helper", "run": ["true"]},
    StepForm.HTTP: {"name": "directory-up", "agent": "it-helper",
                    "http": {"url": "http://127.0.0.1:9/healthz"}},
    StepForm.ASK: {"name": "laptop-ordered", "ask": {"message": "Laptop?", "approvers": ["U1"]}},
    StepForm.LLM: {"name": "welcome", "agent": "it-helper", "instructions": "Say hi.",
                   "done_when": "Someone said hi."},
}


@dataclass
class Recording:
    """An executor that says which steps it ran, and whether it was started and closed."""

    log: list[str]
    name: str
    fail_close: bool = False
    steps: list[str] = field(default_factory=list)

    async def start(self) -> None:
        self.log.append(f"start {self.name}")

    async def close(self) -> None:
        self.log.append(f"close {self.name}")
        if self.fail_close:
            raise RuntimeError(f"{self.name} would not close")

    async def run(self, task: StepTask, recorder: StepRecorder) -> StepResult:
        self.steps.append(task.step.name)
        return Done(message=self.name)


async def test_each_step_goes_to_the_executor_of_its_form(make_task, notes):
    log: list[str] = []
    executors = {form: Recording(log, form.value) for form in StepForm}
    runner = StepRunner(shell=executors[StepForm.RUN], http=executors[StepForm.HTTP],
                        ask=executors[StepForm.ASK], llm=executors[StepForm.LLM])

    await runner.start()
    results = {form: await runner.run(make_task(step), notes) for form, step in STEPS.items()}
    await runner.close()

    assert results == {form: Done(message=form.value) for form in StepForm}
    assert {form: e.steps for form, e in executors.items()} == {
        form: [step["name"]] for form, step in STEPS.items()
    }
    assert log == [*(f"start {f.value}" for f in StepForm),
                   *(f"close {f.value}" for f in reversed(StepForm))]


async def test_close_closes_every_executor_even_when_one_fails():
    log: list[str] = []
    runner = StepRunner(shell=Recording(log, "run"), http=Recording(log, "http", fail_close=True),
                        ask=Recording(log, "ask"), llm=Recording(log, "llm"))
    await runner.start()

    with pytest.raises(RuntimeError, match="http would not close"):
        await runner.close()

    assert log[-4:] == ["close llm", "close ask", "close http", "close run"]


async def test_instructions_step_is_blocked_until_an_llm_agent_exists(make_task, notes):
    runner = StepRunner()
    await runner.start()
    try:
        with pytest.raises(errors.CapabilityMissing) as blocked:
            await runner.run(make_task(STEPS[StepForm.LLM]), notes)
    finally:
        await runner.close()

    assert blocked.value.capability == "llm"
    assert "ANTHROPIC_API_KEY" in str(blocked.value)


async def test_default_runner_runs_run_and_ask_steps(make_task, grant, notes):
    agent = grant({"shell": {"commands": ["true"]}})
    runner = StepRunner()
    await runner.start()
    try:
        ran = await runner.run(make_task(STEPS[StepForm.RUN], agent=agent), notes)
        asked = await runner.run(make_task(STEPS[StepForm.ASK]), notes)
    finally:
        await runner.close()

    assert ran == Done(message="true exited with 0")
    assert isinstance(asked, Wait)
