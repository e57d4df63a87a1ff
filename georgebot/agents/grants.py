"""What a step's agent is granted, and the one wording of `CapabilityMissing` for every executor.

The executors (shell, http, ask) call these before doing anything; a missing grant ends the
step `Blocked: CapabilityMissing` naming what to add, and a commit granting it retries it.
"""

from __future__ import annotations

import json

from georgebot import errors
from georgebot.engine.ports import StepTask
from georgebot.model.specs import DEFAULT_PORTS, AgentSpec, host_grant

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


def missing(
    agent: AgentSpec, kind: str, item: str, verb: str, *, note: str = ""
) -> errors.CapabilityMissing:
    """`missing(agent, "shell", "tools/x", "run")` → CapabilityMissing("shell: tools/x", ...).
    `note` is said after the grant to add (why what is granted does not cover `item`)."""
    grant = f"- {kind}: {{{_FIELDS[kind]}: [{json.dumps(item)}]}}"
    return errors.CapabilityMissing(
        f"{kind}: {item}",
        f"agent {agent.metadata.name} may not {verb} {item}: "
        f"add `{grant}` to the capabilities of AgentSpec {agent.metadata.name}"
        + (f" ({note})" if note else ""),
    )


def require_origin(agent: AgentSpec, scheme: str, host: str, port: int | None) -> None:
    """An `http` request to scheme://host:port needs a grant of that host on that port; a grant
    naming no port allows the scheme's default one only (DESIGN.md, "George's own server")."""
    if agent.spec.allows_host(host, port, scheme):
        return
    item = host_grant(host, port, scheme)
    note = ""
    if agent.spec.allows_host(host):  # granted, on other ports
        shown = port if port is not None else DEFAULT_PORTS.get(scheme)
        note = (f"what it is granted for {host} does not cover port {shown}: a grant without a "
                f"port allows only the default port of {scheme}, {DEFAULT_PORTS.get(scheme)}")
    raise missing(agent, "http", item, "call", note=note)
