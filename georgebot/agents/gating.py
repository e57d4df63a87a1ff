"""`requireApproval` for `run` and `http` steps: every use of a capability kind the agent's
`requireApproval` lists waits for a person's ✅ first, not only an LLM's tool calls.

The step's first attempt posts the exact call (the whole argv, or the request with its
credentials shown as `***`) and waits; the decision resumes the step in a fresh attempt,
which reads it from its context. A decision binds to a digest of that very call and is spent
by the attempt that acts on it: a later attempt (a retry, a person reopening a rejected
step) asks again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from georgebot import errors
from georgebot.agents import prompting, tools
from georgebot.engine.ports import ApprovalRequest, StepRecorder, StepTask, Wait
from georgebot.model.specs import RequireApproval, StepForm
from georgebot.model.status import Reason

SPENT = "approval_spent"
"""Context role: the attempt that acted on a decision (data {"call", "approved"})."""


def asking(policy: RequireApproval, *, job: str, step: str, channel: str, text: str) -> ApprovalRequest:
    """The request for one use of a capability under `policy`, with its escalation and timeout."""
    return ApprovalRequest(
        job, step, channel=channel, text=text, approvers=tuple(policy.approvers), quorum=1, kind="tool",
        escalate_after=policy.escalate.after if policy.escalate else None,
        escalate_to=tuple(policy.escalate.to) if policy.escalate else (),
        timeout=policy.timeout, on_timeout=policy.on_timeout,
    )


@dataclass(frozen=True)
class Gate:
    kind: str
    call: tools.Command | tools.Request
    policy: RequireApproval

    @property
    def digest(self) -> str:
        if isinstance(self.call, tools.Command):
            shape: object = [self.call.command, *self.call.args]
        else:
            shape = self.call.check.model_dump(mode="json")
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()

    @property
    def wanted(self) -> str:
        return tools.describe(self.call)


def gate_of(task: StepTask) -> Gate | None:
    """The approval a `run` or `http` step needs before it acts, if its agent's
    `requireApproval` lists the step's capability kind."""
    agent, step = task.agent, task.step
    policy = agent.spec.require_approval if agent is not None else None
    if policy is None:
        return None
    call: tools.Command | tools.Request
    if step.form is StepForm.RUN and step.run:
        call = tools.Command(step.run[0], tuple(step.run[1:]))
    elif step.form is StepForm.HTTP and step.http is not None:
        call = tools.Request(step.http)
    else:
        return None
    kind = tools.kind(call)
    return Gate(kind, call, policy) if kind in policy.capabilities else None


async def pass_gate(gate: Gate, task: StepTask, recorder: StepRecorder) -> Wait | None:
    """None when an unspent approval of exactly this call stands (it is spent now); a Wait
    for approval when there is none; raises when the approvers rejected it."""
    decision = _decision(task, gate.digest)
    if decision is None:
        await recorder.note(prompting.APPROVAL_REQUEST, gate.wanted, {"call": gate.digest})
        agent = task.agent.metadata.name if task.agent else "the agent"
        return Wait(
            asking(gate.policy, job=task.job.name, step=task.step.name, channel=task.channel,
                   text=f"Agent {agent} asks to {gate.wanted}"),
            message=f"waiting for approval to {gate.wanted.splitlines()[0]}",
        )
    await recorder.note(SPENT, gate.wanted, {"call": gate.digest, "approved": decision.approved})
    if not decision.approved:
        raise errors.PermanentError(f"not run: {decision.rejection()}", reason=Reason.REJECTED, final=True)
    return None


def _decision(task: StepTask, digest: str) -> prompting.Decision | None:
    """The people's answer to the last request for this call, unless an attempt spent it."""
    own = [e for e in task.context if e.step == task.step.name]
    asked = max((i for i, e in enumerate(own) if e.role == prompting.APPROVAL_REQUEST
                 and (e.data or {}).get("call") == digest), default=None)
    if asked is None:
        return None
    later = own[asked + 1:]
    if any(e.role == SPENT and (e.data or {}).get("call") == digest for e in later):
        return None
    found = next((e for e in later if e.role == "approval" and isinstance(e.data, dict)), None)
    return prompting.decision_of(found) if found is not None else None
