"""Builders and fakes of our own ports for engine tests: a manifest source whose commits the
test makes, and a runner whose outcomes the test scripts."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from georgebot import errors
from georgebot.engine.ports import ApprovalRequest, Done, StepRecorder, StepResult, StepTask, Wait
from georgebot.engine.service import Decision, Engine, EngineSettings
from georgebot.manifests.snapshot import ManifestIssue, Revision, Snapshot
from georgebot.model.rendered import RenderedJob
from georgebot.model.specs import AgentSpec, Step, StepForm
from georgebot.store import Store


def step(name: str, *, needs: tuple[str, ...] = (), agent: str = "ops", **form: Any) -> Step:
    if not {"run", "http", "ask", "instructions"} & set(form):
        form["run"] = [f"tools/{name}"]
    if "ask" in form:
        form["ask"] = {"approvers": ["U01ALEX"], "message": f"ok to {name}?", **form["ask"]}
    return Step.model_validate({"name": name, "needs": list(needs), "agent": agent, **form})


def job(
    name: str,
    *steps: Step,
    channel: str = "#ops",
    template: str = "tpl",
    params: dict[str, Any] | None = None,
) -> RenderedJob:
    return RenderedJob(
        name=name,
        template=template,
        channel=channel,
        deadline=None,
        params=params or {},
        fuzzy={},
        steps=list(steps),
    )


def agent(name: str = "ops", commands: tuple[str, ...] = ("tools/a",), max_steps: int = 4) -> AgentSpec:
    return AgentSpec.model_validate(
        {
            "apiVersion": "george/v1",
            "kind": "AgentSpec",
            "metadata": {"name": name},
            "spec": {
                "capabilities": [{"shell": {"commands": list(commands)}}],
                "maxConcurrentSteps": max_steps,
            },
        }
    )


@dataclass
class FakeSource:
    """Each `commit` makes a new revision, as a push to the manifests repository would."""

    snapshot: Snapshot = field(default_factory=lambda: Snapshot(Revision("0" * 40, "empty")))
    syncs: int = 0

    def commit(
        self,
        *jobs: RenderedJob,
        agents: tuple[AgentSpec, ...] = (agent(),),
        invalid: dict[str, str] | None = None,
        broken_files: frozenset[str] = frozenset(),
        files: dict[str, str] | None = None,
        message: str = "change",
    ) -> Snapshot:
        sha = hashlib.sha1(f"{self.snapshot.revision.sha}{message}{jobs}".encode()).hexdigest()
        self.snapshot = Snapshot(
            revision=Revision(sha, message),
            agents={a.metadata.name: a for a in agents},
            jobs={j.name: j for j in jobs},
            job_files={j.name: (files or {}).get(j.name, f"manifests/{j.name}.yaml") for j in jobs},
            invalid_jobs={
                n: ManifestIssue(file=f"manifests/{n}.yaml", line=1, column=1, kind="Job", name=n, message=m)
                for n, m in (invalid or {}).items()
            },
            broken_files=broken_files,
        )
        return self.snapshot

    def sync(self) -> Snapshot:
        self.syncs += 1
        return self.snapshot

    def checkout(self, sha: str) -> Path:
        return Path("/nonexistent-checkout") / sha

    def prune_checkouts(self, keep: set[str]) -> int:
        return 0


Behaviour = Callable[[StepTask], StepResult] | StepResult | BaseException


@dataclass
class ScriptedRunner:
    """Outcomes per step name, consumed in order; the last one repeats. Default: success."""

    script: dict[str, list[Behaviour]] = field(default_factory=dict)
    calls: list[tuple[str, str, int]] = field(default_factory=list)
    gates: dict[str, asyncio.Event] = field(default_factory=dict)

    def on(self, step_name: str, *behaviours: Behaviour) -> None:
        self.script[step_name] = list(behaviours)

    async def run(self, task: StepTask, recorder: StepRecorder) -> StepResult:
        self.calls.append((task.job.name, task.step.name, task.attempt))
        if (gate := self.gates.get(task.step.name)) is not None:
            await gate.wait()
        queue = self.script.get(task.step.name, [])
        behaviour: Behaviour = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else Done("ok")
        if isinstance(behaviour, BaseException):
            raise behaviour
        if callable(behaviour):
            return behaviour(task)
        if task.step.form is StepForm.ASK and isinstance(behaviour, Done) and task.step.ask:
            return Wait(
                ApprovalRequest(
                    task.job.name,
                    task.step.name,
                    task.step.ask.channel or task.channel,
                    task.step.ask.message,
                    tuple(task.step.ask.approvers),
                    task.step.ask.quorum,
                    escalate_after=task.step.ask.escalate.after if task.step.ask.escalate else None,
                    escalate_to=tuple(task.step.ask.escalate.to) if task.step.ask.escalate else (),
                    on_timeout=task.step.ask.on_timeout,
                )
            )
        await recorder.note("output", f"{task.step.name} attempt {task.attempt}")
        return behaviour

    def order(self, job_name: str) -> list[str]:
        return [s for j, s, _ in self.calls if j == job_name]


def fail(message: str = "exit 1") -> errors.PermanentError:
    return errors.PermanentError(message, reason="ExitCode")


def make_engine(
    store: Store, source: FakeSource, runner: ScriptedRunner, clock: Any, home: Path, **settings: Any
) -> Engine:
    return Engine(
        EngineSettings(home=home, **settings), store=store, source=source, runner=runner, clock=clock
    )


def request_of(store: Store, job_name: str, step_name: str) -> str:
    """The id of the request the step waits on now."""
    state = store.load_runs([job_name])[0].step(step_name)
    assert state is not None and state.waits is not None, f"{job_name}/{step_name} is not waiting"
    return state.waits.request


async def decide(engine: Engine, job_name: str, step_name: str, **vote: Any) -> Decision:
    """A person's vote on the request the step waits on now."""
    verdict = await engine.decide(request_of(engine.store, job_name, step_name), **vote)
    return verdict.decision
