"""Real models are loose about form; the loop forgives it and never wastes the budget on it.
A report whose `reason` is a sentence is accepted: the text is kept in the message and the
reason derived from it or the status's default. A model that ends its turn without
reporting is asked once, then required to report (`tool_choice` naming report_status), so
a step spends at most two turns on getting its report. Each against a scripted model that
misbehaves that way."""

from __future__ import annotations

import pytest

from georgebot import errors
from georgebot.agents import prompting
from tests.agents.llm.fakes import agent_spec
from tests.agents.llm.messages_api import call, say, turn


async def test_a_report_with_a_sentence_for_its_reason_is_accepted_as_it_meant(api, llm, recorder, make_task):
    api.play(turn(call("report_status", status="succeeded",
                       reason="The welcome message was posted in #general.", message="")))

    done = await (await llm()).run(make_task(agent_spec()), recorder)

    assert done.message == "The welcome message was posted in #general."
    assert len(api.requests) == 1  # no error sent back, no second turn


async def test_a_blocked_report_that_says_something_is_missing_is_capability_missing(
        api, llm, recorder, make_task):
    api.play(turn(call("report_status", status="blocked", reason="I have no tool to reset passwords",
                       message="Cannot reset Alice's password.")))

    with pytest.raises(errors.CapabilityMissing) as blocked:
        await (await llm()).run(make_task(agent_spec()), recorder)

    assert "Cannot reset Alice's password. (I have no tool to reset passwords)" in str(blocked.value)


async def test_a_model_that_will_not_report_is_asked_once_then_required_to(api, llm, recorder, make_task):
    api.play(turn(say("Done.")), turn(say("All done, really.")),
             turn(call("report_status", status="succeeded", reason="Done", message="Welcomed Alice.")))

    done = await (await llm()).run(make_task(agent_spec(budget={"turns": 20})), recorder)

    assert done.message == "Welcomed Alice."
    assert len(api.requests) == 3  # two turns spent on getting the report, no more
    assert api.requests[1]["messages"][-1]["content"][-1]["text"] == prompting.NUDGE
    assert "tool_choice" not in api.requests[1]
    assert api.requests[2]["tool_choice"] == {"type": "tool", "name": "report_status"}


async def test_required_to_report_and_still_silent_fails_at_once_not_at_the_budget(
        api, llm, recorder, make_task):
    api.play(turn(say("Done.")), turn(say("Done.")), turn(say("Done.")))

    with pytest.raises(errors.PermanentError) as failed:
        await (await llm()).run(make_task(agent_spec(budget={"turns": 20})), recorder)

    assert (failed.value.reason, failed.value.final) == ("NoReport", True)
    assert len(api.requests) == 3
