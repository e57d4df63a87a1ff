"""Carries out the tool calls of one model turn, persisting each as it happens.

`llm.py` hands `Toolbox.answer` each turn's calls (and the calls an earlier attempt left without
a result). A call outside the grant is refused and noted; one `requireApproval` names waits for
a person; the rest are recorded (`tool_call`), run through the `run` / `http` executors (same
checks, environment, timeouts, output limits), and their result recorded (`tool_result`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from georgebot import errors
from georgebot.agents import gating, prompting, tools
from georgebot.agents.dispatch import Executor
from georgebot.agents.prompting import PendingCall
from georgebot.engine.ports import ApprovalRequest, Done, StepRecorder, StepTask, Wait
from georgebot.model.attempts import ProcessRecord
from georgebot.model.specs import AgentSpec, RequireApproval
from georgebot.model.views import Usage

_MESSAGE_CHARS = 1000
_NOTE_CHARS = 2000

Ending = Done | Wait
"""How an attempt ends besides an exception (`report_status` failed or blocked raises)."""


@dataclass
class _Capture:
    """The recorder an executor sees when it runs for a tool: its output becomes the tool's
    result instead of a separate entry in the step's context."""

    recorder: StepRecorder
    outputs: list[str] = field(default_factory=list)

    async def note(self, role: str, text: str, data: dict[str, Any] | None = None) -> None:
        if role == "output":
            self.outputs.append(text)
        else:
            await self.recorder.note(role, text, data)

    async def usage(self, model: str, usage: Usage) -> None:
        await self.recorder.usage(model, usage)

    async def process(self, record: ProcessRecord) -> None:
        await self.recorder.process(record)

    async def post(self, channel: str, text: str) -> None:
        await self.recorder.post(channel, text)


@dataclass(frozen=True)
class _Result:
    content: str
    error: bool = False


class Toolbox:
    def __init__(
        self, task: StepTask, agent: AgentSpec, recorder: StepRecorder, *, shell: Executor, http: Executor,
        mask: Callable[[str], str] = str,
    ) -> None:
        self._task = task
        self._agent = agent
        self._recorder = recorder
        self._shell = shell
        self._http = http
        self._mask = mask  # a secret's value in a result never reaches the model

    async def answer(self, calls: list[PendingCall]) -> list[dict[str, Any]] | Ending:
        """The tool results for the next user message, in the calls' order; or how the attempt
        ends. Calls run in order; a call that must wait for people ends the attempt, and the
        calls after it stay unstarted for the attempt that resumes."""
        results: dict[str, _Result] = {}
        report: tuple[PendingCall, tools.Report] | None = None
        for call in calls:
            if call.started:
                results[call.id] = await self._persist(call, _Result(prompting.UNKNOWN_OUTCOME, error=True))
                continue
            try:
                parsed = tools.parse(call.name, call.input)
            except tools.InvalidInput as e:
                results[call.id] = await self._persist(call, _Result(f"Invalid input: {e}", error=True))
                continue
            if isinstance(parsed, tools.Report):
                if report is None:
                    report = (call, parsed)
                else:
                    results[call.id] = await self._persist(
                        call, _Result("Ignored: report_status was already called in this turn.", error=True)
                    )
            elif isinstance(parsed, tools.Question):
                return self._question(parsed)
            else:
                outcome = await self._act(call, parsed)
                if isinstance(outcome, Wait):
                    return outcome
                results[call.id] = outcome
        if report is not None:
            call, parsed = report
            failed = [c.name for c in calls if c.id in results and results[c.id].error]
            if parsed.status == "succeeded" and failed:
                results[call.id] = await self._persist(
                    call,
                    _Result(
                        f"Not recorded: {', '.join(failed)} returned an error in the same turn. Read the "
                        "results, then call report_status again, alone.",
                        error=True,
                    ),
                )
            else:
                await self._persist(call, _Result(f"Recorded: {parsed.status}."), final=True)
                return _end(parsed)
        return [
            prompting.tool_result(c.id, results[c.id].content, error=results[c.id].error)
            for c in calls
            if c.id in results
        ]

    def _question(self, question: tools.Question) -> Wait:
        task = self._task
        return Wait(
            ApprovalRequest(
                task.job.name,
                task.step.name,
                channel=task.channel,
                text=question.question,
                approvers=(),
                quorum=0,
                kind="question",
            ),
            message="waiting for an answer in the job's thread",
        )

    async def _act(self, call: PendingCall, action: tools.Action) -> _Result | Wait:
        if (missing := tools.refusal(self._agent, action)) is not None:
            return await self._refuse(call, action, missing)
        gate = self._agent.spec.require_approval
        if gate is not None and tools.kind(action) in gate.capabilities:
            if call.decision is None:
                return await self._ask_approval(call, action, gate)
            if not call.decision.approved:
                return await self._persist(
                    call,
                    _Result(
                        f"Not executed: {call.decision.rejection()}. Do not repeat this call; find "
                        "another way, or report the step.",
                        error=True,
                    ),
                )
        await self._recorder.note(prompting.TOOL_CALL, tools.describe(action), {"tool_use_id": call.id})
        try:
            result = await self._execute(action)
        except errors.CapabilityMissing as e:  # e.g. a redirect to a host that is not granted
            return await self._refuse(call, action, e)
        return await self._persist(call, result)

    async def _execute(self, action: tools.Action) -> _Result:
        if isinstance(action, tools.Post):
            await self._recorder.post(action.channel, action.text)
            return _Result(f"Posted in {action.channel}.")
        step = self._task.step
        if isinstance(action, tools.Command):
            executor = self._shell
            step = step.model_copy(
                update={"run": [action.command, *action.args], "instructions": None, "done_when": None}
            )
        else:
            executor = self._http
            step = step.model_copy(update={"http": action.check, "instructions": None, "done_when": None})
        capture = _Capture(self._recorder)
        # A command's failure names its exit but not its output; an HTTP failure quotes the body.
        shown = capture.outputs if isinstance(action, tools.Command) else []
        try:
            done = await executor.run(replace(self._task, step=step, context=()), capture)
        except errors.CapabilityMissing:
            raise
        except errors.StepError as e:
            return _Result("\n".join([str(e), *shown]), error=True)
        message = done.message if isinstance(done, Done) else ""
        if isinstance(action, tools.Command):
            return _Result("\n".join([message, *capture.outputs]))
        return _Result("\n".join(capture.outputs) or message)

    async def _refuse(
        self, call: PendingCall, action: tools.Action, missing: errors.CapabilityMissing
    ) -> _Result:
        await self._recorder.note(
            "note", f"refused a call outside the grant: {tools.describe(action)} ({missing})"
        )
        return await self._persist(
            call,
            _Result(
                f"Refused, not granted: {missing}. Do not work around it: if the step needs it, call "
                "report_status with status blocked and reason CapabilityMissing.",
                error=True,
            ),
        )

    async def _ask_approval(self, call: PendingCall, action: tools.Action, gate: RequireApproval) -> Wait:
        task = self._task
        wanted = tools.describe(action)
        await self._recorder.note(prompting.APPROVAL_REQUEST, wanted, {"tool_use_id": call.id})
        text = f"Agent {self._agent.metadata.name} asks to {wanted}"  # Slack adds the job, step and how
        return Wait(
            gating.asking(gate, job=task.job.name, step=task.step.name, channel=task.channel, text=text),
            message=f"waiting for approval to {wanted.splitlines()[0]}",
        )

    async def _persist(self, call: PendingCall, result: _Result, *, final: bool = False) -> _Result:
        result = replace(result, content=self._mask(result.content))
        data: dict[str, Any] = {"tool_use_id": call.id, "content": result.content, "is_error": result.error}
        if final:
            data["final"] = True
        await self._recorder.note(prompting.TOOL_RESULT, f"{call.name}: {result.content}"[:_NOTE_CHARS], data)
        return result


def _end(report: tools.Report) -> Done:
    message = report.message[:_MESSAGE_CHARS]
    if report.status == "succeeded":
        return Done(message=message)
    if report.status == "failed":
        raise errors.PermanentError(message, reason=report.reason or "StepFailed")
    if report.reason == "CapabilityMissing":
        raise errors.CapabilityMissing(report.capability or "unknown", message)
    raise errors.StepBlocked(message, reason=report.reason or "ConditionsNotMet")
