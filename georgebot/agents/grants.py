"""What a step's agent is granted, and the one wording of `CapabilityMissing` for every executor.

The executors (shell, http, ask) call these before doing anything; a missing grant ends the
step `Blocked: CapabilityMissing` naming what to add, and a commit granting it retries it.
"""

from __future__ import annotations

import json

from georgebot import errors
from georgebot.engine.ports import StepTask
from georgebot.model.specs import AgentSpec

_FIELDS = {"shell": "commands", "http": "hosts", "slack": "channels"}


def require_agent(task: StepTask) -> AgentSpec:
    """The step's agent; an agent the step names but no AgentSpec defines is a missing grant."""
    if task.agent is not None:
        return task.agent
    name = task.step.agent
    if name:
        raise errors.CapabilityMissing(
            f"agent: {name}",
            f"step {task.step.name} names agent {name}, which no AgentSpec defines: commit one",
        )
    raise errors.CapabilityMissing(
        "agent", f"step {task.step.name} needs an agent: name one with `agent:`"
    )


def missing(agent: AgentSpec, kind: str, item: str, verb: str) -> errors.CapabilityMissing:
    """`missing(agent, "shell", "tools/x", "run")` → CapabilityMissing("shell: tools/x", ...)."""
    grant = f"- {kind}: {{{_FIELDS[kind]}: [{json.dumps(item)}]}}"
    return errors.CapabilityMissing(
        f"{kind}: {item}",
        f"agent {agent.metadata.name} may not {verb} {item}: "
        f"add `{grant}` to the capabilities of AgentSpec {agent.metadata.name}",
    )

