"""What the API answers besides a model turn, and the agent's budget: each becomes the
outcome the engine expects (Retrying without using up a retry, Blocked, Failed), and usage
is recorded with its cost for every call."""

from __future__ import annotations

from datetime import timedelta

import pytest

from georgebot import errors
from georgebot.agents import prompting
from georgebot.agents.llm import LlmRunner
from georgebot.model.views import Usage
from tests.agents.llm.fakes import API_KEY, MODEL, agent_spec
from tests.agents.llm.messages_api import Failure, Hang, Turn, call, report, say, turn


@pytest.mark.parametrize(("failure", "delay", "words"), [
    (Failure(429, "rate_limit_error", "Number of requests has exceeded your rate limit",
             {"retry-after": "30"}), timedelta(seconds=30), "rate-limiting"),
    (Failure(529, "overloaded_error", "Overloaded", {"retry-after": "5"}), timedelta(seconds=5),
     "overloaded"),
    (Failure(529, "overloaded_error", "Overloaded"), None, "overloaded"),
    (Failure(500, "api_error", "Internal server error"), None, "failing (500)"),
])
async def test_rate_limits_and_overload_are_temporary_with_the_servers_delay(
    api, llm, recorder, make_task, failure, delay, words
):
    api.play(failure)

    with pytest.raises(errors.TemporaryError) as temporary:
        await (await llm()).run(make_task(agent_spec()), recorder)

    assert temporary.value.delay == delay
    assert words in str(temporary.value)
    assert len(api.requests) == 1  # the SDK does not retry on its own: the engine does
    assert recorder.usages == []


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_api_key_blocks_the_step_with_how_to_fix_it(api, llm, recorder, make_task, status):
    kind = "authentication_error" if status == 401 else "permission_error"
    api.play(Failure(status, kind, "invalid x-api-key"))

    with pytest.raises(errors.StepBlocked) as blocked:
        await (await llm()).run(make_task(agent_spec()), recorder)

    assert blocked.value.reason == "LlmAuthentication"
    assert "invalid x-api-key" in str(blocked.value)
    assert "ANTHROPIC_API_KEY" in str(blocked.value)
    assert API_KEY not in str(blocked.value)


async def test_a_bad_request_fails_the_step_for_good_with_the_apis_message(api, llm, recorder, make_task):
    api.play(Failure(400, "invalid_request_error", "messages.1: something is off"))

    with pytest.raises(errors.PermanentError) as failed:
        await (await llm()).run(make_task(agent_spec()), recorder)

    assert (failed.value.reason, failed.value.final) == ("LlmBadRequest", True)
    assert "messages.1: something is off" in str(failed.value)


async def test_an_unknown_model_is_a_missing_capability(api, llm, recorder, make_task):
    api.play(Failure(404, "not_found_error", "model: claude-nonexistent"))

    with pytest.raises(errors.CapabilityMissing) as blocked:
        await (await llm()).run(make_task(agent_spec(model="claude-nonexistent")), recorder)

    assert blocked.value.capability == "model: claude-nonexistent"
    assert api.requests[0]["model"] == "claude-nonexistent"


async def test_a_refusal_blocks_the_step(api, llm, recorder, make_task):
    api.play(Turn([], "refusal", stop_details={"type": "refusal", "category": "cyber", "explanation": None}))

    with pytest.raises(errors.StepBlocked) as blocked:
        await (await llm()).run(make_task(agent_spec()), recorder)

    assert blocked.value.reason == "Refused"
    assert "declined" in str(blocked.value) and "cyber" in str(blocked.value)


async def test_an_api_that_does_not_answer_in_time_is_temporary(api, recorder, make_task):
    api.play(Hang())
    runner = LlmRunner(api_key=API_KEY, base_url=api.url, default_model=MODEL, timeout=0.05)
    await runner.start()
    try:
        with pytest.raises(errors.TemporaryError) as temporary:
            await runner.run(make_task(agent_spec()), recorder)
    finally:
        await runner.close()

    assert "did not answer within 0.05s" in str(temporary.value)


async def test_an_unreachable_api_is_temporary(api, recorder, make_task):
    runner = LlmRunner(api_key=API_KEY, base_url="http://127.0.0.1:9", default_model=MODEL, timeout=5.0)
    await runner.start()
    try:
        with pytest.raises(errors.TemporaryError) as temporary:
            await runner.run(make_task(agent_spec()), recorder)
    finally:
        await runner.close()

    assert "could not reach the Anthropic API" in str(temporary.value)


async def test_running_out_of_turns_fails_the_step_for_good(api, llm, recorder, make_task):
    api.play(turn(say("Thinking about it.")), turn(say("Still thinking.")))

    with pytest.raises(errors.PermanentError) as failed:
        await (await llm()).run(make_task(agent_spec(budget={"turns": 2})), recorder)

    assert (failed.value.reason, failed.value.final) == ("BudgetExhausted", True)
    assert "2 turns" in str(failed.value)
    assert len(api.requests) == 2
    assert api.requests[1]["messages"][-1]["content"][-1]["text"] == prompting.NUDGE
    assert recorder.entries[-1].role == "note" and "budget" in recorder.entries[-1].text


async def test_running_out_of_tokens_fails_the_step_for_good(api, llm, recorder, make_task):
    api.play(turn(say("A long answer."), input_tokens=900, output_tokens=200))

    with pytest.raises(errors.PermanentError) as failed:
        await (await llm()).run(make_task(agent_spec(budget={"tokens": 1000})), recorder)

    assert failed.value.reason == "BudgetExhausted"
    assert "1000 tokens (1100 used)" in str(failed.value)


async def test_each_call_records_its_tokens_and_cost(api, llm, recorder, make_task):
    api.play(
        turn(call("ask_human", question="Team?"), input_tokens=1200, output_tokens=300,
             cache_read_input_tokens=1000, cache_creation_input_tokens=500),
    )

    await (await llm()).run(make_task(agent_spec()), recorder)

    # claude-sonnet-5-5: $2 input, $10 output, $2.50 cache writes, $0.10 cache reads per million
    cost = (1200 * 2 + 300 * 10 + 500 * 2.5 + 1000 * 0.10) / 1_000_000
    assert recorder.usages == [(MODEL, Usage(1200, 300, 1000, 500, round(cost, 6)))]


async def test_an_agent_with_a_model_of_its_own_uses_and_prices_it(api, llm, recorder, make_task):
    api.play(report("succeeded"))

    await (await llm()).run(make_task(agent_spec(model="claude-opus-5-5")), recorder)

    assert api.requests[0]["model"] == "claude-opus-5-5"
    [(model, usage)] = recorder.usages
    assert model == "claude-opus-5-5"
    assert usage.cost_usd == round((100 * 4 + 20 * 20) / 1_000_000, 6)


async def test_no_agent_is_a_missing_capability(api, llm, recorder, make_task):
    with pytest.raises(errors.CapabilityMissing):
        await (await llm()).run(make_task(None), recorder)
    assert api.requests == []

