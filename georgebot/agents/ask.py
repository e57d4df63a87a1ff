"""The `ask` step: hand the engine an approval request to post, and end.

`StepRunner` (dispatch.py) calls `AskRunner.run`; the engine posts the request, records what
the step waits for and sets it `Waiting`. An `ask` needs no agent; when it names one, the
channel it asks in must be among that agent's `slack` channels.
"""

from __future__ import annotations

from georgebot import errors
from georgebot.agents import grants
from georgebot.engine.ports import ApprovalRequest, StepRecorder, StepTask, Wait


class AskRunner:
    """Holds no resources, so `start` and `close` do nothing."""

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def run(self, task: StepTask, recorder: StepRecorder) -> Wait:
        ask = task.step.ask
        if ask is None:
            raise errors.PermanentError(f"step {task.step.name} is not an `ask` step")
        channel = ask.channel or task.channel
        if task.step.agent or task.agent is not None:
            agent = grants.require_agent(task)
            if not any(same_channel(channel, c) for c in agent.spec.channels):
                raise grants.missing(agent, "slack", channel, "ask in")
        who = ", ".join(ask.approvers)
        return Wait(
            request=ApprovalRequest(
                job=task.job.name,
                step=task.step.name,
                channel=channel,
                text=ask.message,
                approvers=tuple(ask.approvers),
                quorum=ask.quorum,
                escalate_after=ask.escalate.after if ask.escalate else None,
                escalate_to=tuple(ask.escalate.to) if ask.escalate else (),
                on_timeout=ask.on_timeout,
            ),
            message=f"waiting in {channel} for {ask.quorum} approval(s) from {who}",
        )


def same_channel(a: str, b: str) -> bool:
    """`#IT`, `#it` and `it` name one channel; channel ids (`C0123`) compare as written."""
    return a.removeprefix("#").casefold() == b.removeprefix("#").casefold()
