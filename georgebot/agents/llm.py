"""`instructions` + `done_when` steps, carried out by Claude through the Messages API with tools.

The only module that imports `anthropic`: SDK errors become George's errors here. `runtime.py`
builds one `LlmRunner` when ANTHROPIC_API_KEY is set and hands it to `StepRunner(llm=...)`,
which starts and closes it. One attempt is a loop of API calls, bounded by the agent's budget,
until the model calls `report_status`, asks a person, or needs an approval; everything is
persisted as it happens, and the next attempt rebuilds the conversation from the context.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, cast

import anthropic
from anthropic.types import Message, MessageParam, TextBlockParam, ToolParam

from georgebot import errors
from georgebot.agents import grants, pricing, prompting, tools
from georgebot.agents.dispatch import Executor
from georgebot.agents.http import HttpRunner, retry_after
from georgebot.agents.prompting import PendingCall, Transcript
from georgebot.agents.shell import ShellRunner
from georgebot.agents.toolcalls import Toolbox
from georgebot.engine.ports import Clock, StepRecorder, StepResult, StepTask, SystemClock
from georgebot.model.specs import Budget
from georgebot.model.views import Usage

MAX_TOKENS = 8192
"""Per response. Tool calls and short reports need far less; thinking shares this limit."""

LLM_AUTHENTICATION = "LlmAuthentication"
REFUSED = "Refused"
BUDGET_EXHAUSTED = "BudgetExhausted"


@dataclass
class _Attempt:
    """One attempt's conversation, and what it has spent of the agent's budget."""

    model: str
    budget: Budget
    system: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    transcript: Transcript
    toolbox: Toolbox
    recorder: StepRecorder
    turns: int = 0
    tokens: int = 0  # every token the model read (fresh, cached or written to the cache) or wrote
    unreported: int = 0  # turns in a row that ended with no tool call: asked once, then required

    @property
    def spent(self) -> str | None:
        if self.turns >= self.budget.turns:
            return f"{self.budget.turns} turns"
        if self.tokens >= self.budget.tokens:
            return f"{self.budget.tokens} tokens ({self.tokens} used)"
        return None


class LlmRunner:
    """Satisfies `dispatch.Executor`. Owns one API client, and the executors its tools run
    through (their own instances, started and closed with it)."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        default_model: str,
        timeout: float = 60.0,
        clock: Clock | None = None,
        shell: Executor | None = None,
        http: Executor | None = None,
        max_tokens: int = MAX_TOKENS,
        mask: Callable[[str], str] = str,
    ) -> None:
        self._api_key = api_key
        self._base_url = base_url
        self._default_model = default_model
        self._timeout = timeout
        self._clock = clock or SystemClock()
        self._shell = shell if shell is not None else ShellRunner()
        self._http = http if http is not None else HttpRunner(clock=self._clock)
        self._max_tokens = max_tokens
        self._mask = mask
        self._client: anthropic.AsyncAnthropic | None = None

    async def start(self) -> None:
        if self._client is None:
            # The engine retries with backoff and knows the step's deadline; the SDK must not
            # retry (or sleep for Retry-After) on its own.
            self._client = anthropic.AsyncAnthropic(
                api_key=self._api_key, base_url=self._base_url, max_retries=0, timeout=self._timeout
            )
        await self._shell.start()
        await self._http.start()

    async def close(self) -> None:
        client, self._client = self._client, None
        try:
            if client is not None:
                await client.close()
        finally:
            try:
                await self._http.close()
            finally:
                await self._shell.close()

    async def run(self, task: StepTask, recorder: StepRecorder) -> StepResult:
        if task.step.instructions is None:
            raise errors.PermanentError(f"step {task.step.name} is not an `instructions` step")
        agent = grants.require_agent(task)
        if self._client is None:
            raise RuntimeError("LlmRunner.start() was not called")
        model = agent.spec.model or self._default_model
        definitions = tools.definitions(agent)
        definitions[-1] = {**definitions[-1], "cache_control": {"type": "ephemeral"}}
        attempt = _Attempt(
            model=model,
            budget=agent.spec.budget,
            system=prompting.system_blocks(task, agent),
            tools=definitions,
            transcript=prompting.rebuild(task, model),
            toolbox=Toolbox(task, agent, recorder, shell=self._shell, http=self._http, mask=self._mask),
            recorder=recorder,
        )
        transcript = attempt.transcript
        if transcript.pending:  # calls an earlier attempt left: answered, approved, or lost
            answered = await attempt.toolbox.answer(transcript.pending)
            if not isinstance(answered, list):
                return answered
            transcript.add_user(answered)
        elif transcript.reported:
            await self._say(attempt, prompting.new_attempt(task))
        elif transcript.ends_with_model:
            await self._say(attempt, prompting.NUDGE)
            attempt.unreported = 1
        return await self._converse(attempt)

    async def _converse(self, attempt: _Attempt) -> StepResult:
        """Turn after turn until the step ends, it must wait for people, or the budget is spent."""
        while True:
            if (spent := attempt.spent) is not None:
                message = f"the agent used up its budget of {spent} without reporting a status"
                await attempt.recorder.note("note", message)
                raise errors.PermanentError(message, reason=BUDGET_EXHAUSTED, final=True)
            response = await self._create(attempt)
            attempt.turns += 1
            attempt.tokens += await self._record_usage(attempt, response)
            if response.stop_reason == "refusal":
                raise errors.StepBlocked(_refusal(response), reason=REFUSED)
            if response.stop_reason == "model_context_window_exceeded":
                raise errors.PermanentError(
                    f"the conversation outgrew {attempt.model}'s context window",
                    reason="ContextWindowExceeded",
                    final=True,
                )
            content = [block.to_dict(mode="json", exclude_none=True) for block in response.content]
            if content:
                data = {"content": content, "model": attempt.model}
                await attempt.recorder.note(prompting.ASSISTANT, prompting.summary(content), data)
                attempt.transcript.add_assistant(content)
            calls = [
                PendingCall(str(b["id"]), str(b["name"]), b.get("input"))
                for b in content
                if b.get("type") == "tool_use"
            ]
            if not calls:
                attempt.unreported += 1
                if attempt.unreported > 2:  # even when required to, it did not report
                    raise errors.PermanentError("the agent ended its turns without reporting a status",
                                                reason="NoReport", final=True)
                await self._say(attempt, prompting.NUDGE if attempt.unreported == 1 else prompting.REQUIRED)
                continue
            attempt.unreported = 0
            answered = await attempt.toolbox.answer(calls)
            if not isinstance(answered, list):
                return answered
            attempt.transcript.add_user(answered)

    async def _say(self, attempt: _Attempt, text: str) -> None:
        await attempt.recorder.note(prompting.GEORGE, text)
        attempt.transcript.add_user([{"type": "text", "text": text}])

    async def _record_usage(self, attempt: _Attempt, response: Message) -> int:
        got = response.usage
        tokens = Usage(
            input_tokens=got.input_tokens,
            output_tokens=got.output_tokens,
            cache_read_input_tokens=got.cache_read_input_tokens or 0,
            cache_creation_input_tokens=got.cache_creation_input_tokens or 0,
        )
        cost = pricing.cost_usd(attempt.model, tokens, default_model=self._default_model)
        await attempt.recorder.usage(attempt.model, replace(tokens, cost_usd=cost))
        return (
            tokens.input_tokens
            + tokens.output_tokens
            + tokens.cache_read_input_tokens
            + tokens.cache_creation_input_tokens
        )

    async def _create(self, attempt: _Attempt) -> Message:
        if self._client is None:
            raise RuntimeError("LlmRunner.start() was not called")
        model = attempt.model
        try:
            async with asyncio.timeout(self._timeout):
                return await self._client.messages.create(
                    model=model,
                    max_tokens=self._max_tokens,
                    system=cast("list[TextBlockParam]", attempt.system),
                    tools=cast("list[ToolParam]", attempt.tools),
                    messages=cast("list[MessageParam]", attempt.transcript.request()),
                    # Asked once to report and did not: the next turn must be the report.
                    tool_choice=({"type": "tool", "name": tools.REPORT_STATUS}
                                 if attempt.unreported >= 2 else anthropic.omit),
                )
        except TimeoutError as e:
            raise errors.TemporaryError(f"the Anthropic API did not answer within {self._timeout:g}s") from e
        except anthropic.RateLimitError as e:
            raise errors.TemporaryError(
                f"the Anthropic API is rate-limiting George: {_said(e)}", delay=self._delay(e),
                reason="RateLimited",
            ) from e
        except (anthropic.AuthenticationError, anthropic.PermissionDeniedError) as e:
            raise errors.StepBlocked(
                f"the Anthropic API refused George's API key ({e.status_code}: {_said(e)}): set a "
                "valid ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL, if you use one), restart George, "
                "then retry the job",
                reason=LLM_AUTHENTICATION,
            ) from e
        except anthropic.NotFoundError as e:
            raise errors.CapabilityMissing(
                f"model: {model}",
                f"the Anthropic API has no model {model} ({_said(e)}): set `model` in the AgentSpec, or "
                "GEORGE_DEFAULT_MODEL, to a current model",
            ) from e
        except anthropic.BadRequestError as e:
            # The same request would be refused again: no retry can help.
            raise errors.PermanentError(
                f"the Anthropic API rejected the request: {_said(e)}", reason="LlmBadRequest", final=True
            ) from e
        except anthropic.InternalServerError as e:  # 5xx, and 529 when the API is overloaded
            what = "overloaded" if isinstance(e, anthropic.OverloadedError) else f"failing ({e.status_code})"
            raise errors.TemporaryError(
                f"the Anthropic API is {what}: {_said(e)}", delay=self._delay(e),
                reason="Overloaded" if isinstance(e, anthropic.OverloadedError) else "ServerError",
            ) from e
        except anthropic.APIStatusError as e:
            if e.status_code in (408, 409):
                raise errors.TemporaryError(
                    f"the Anthropic API answered {e.status_code}: {_said(e)}", delay=self._delay(e)
                ) from e
            raise errors.PermanentError(
                f"the Anthropic API answered {e.status_code}: {_said(e)}", reason="LlmError"
            ) from e
        except anthropic.APIConnectionError as e:  # also the SDK's own timeout
            raise errors.TemporaryError(
                f"could not reach the Anthropic API: {e}", reason="Unreachable"
            ) from e
        except anthropic.AnthropicError as e:
            raise errors.PermanentError(f"the Anthropic SDK failed: {e}", reason="LlmError") from e

    def _delay(self, e: anthropic.APIStatusError) -> timedelta | None:
        return retry_after(e.response.headers.get("retry-after"), self._clock.now())


def _said(e: anthropic.APIStatusError) -> str:
    return e.api_message or e.message


def _refusal(response: Message) -> str:
    details = response.stop_details
    why = ""
    if details is not None:
        why = ": " + ", ".join(x for x in (details.category, details.explanation) if x)
    return (
        f"the model declined to carry out this step{why if why != ': ' else ''}. Change the step's "
        "instructions, then retry the job"
    )
