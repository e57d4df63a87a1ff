"""The manifest models on their own: forms, defaults, durations, variables, capabilities."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from georgebot.model.specs import AgentSpec, Step, StepForm, Variable


def step(**fields: Any) -> Step:
    return Step.model_validate({"name": "s", **fields})


def test_each_step_form_is_recognised():
    assert step(agent="a", run=["tools/x"]).form is StepForm.RUN
    assert step(agent="a", http={"url": "http://127.0.0.1/healthz"}).form is StepForm.HTTP
    assert step(ask={"message": "ok?", "approvers": ["U01ALEX"]}).form is StepForm.ASK
    assert step(agent="a", instructions="do", done_when="done").form is StepForm.LLM


@pytest.mark.parametrize(("fields", "words"), [
    ({"agent": "a"}, "a step needs exactly one of run, http, ask or instructions"),
    ({"agent": "a", "run": ["x"], "instructions": "i", "done_when": "d"}, "run and instructions"),
    ({"agent": "a", "instructions": "i"}, "`instructions` and `done_when` go together"),
    ({"run": ["x"]}, "a run step needs an `agent`"),
    ({"agent": "a", "run": []}, "at least 1 item"),
    ({"agent": "a", "run": ["x"], "needs": ["s"]}, "a step cannot need itself"),
    ({"agent": "a", "run": ["x"], "retries": -1}, "greater than or equal to 0"),
    ({"agent": "a", "run": ["x"], "timeout": "5 minutes"}, "is not a duration"),
])
def test_malformed_steps_are_refused(fields: dict[str, Any], words: str):
    with pytest.raises(ValidationError, match=words):
        step(**fields)


def test_step_defaults_follow_the_design():
    run = step(agent="a", run=["x"])
    ask = step(ask={"message": "ok?", "approvers": ["U01ALEX"]})
    assert (run.retries, run.backoff, run.effective_timeout) == (
        2, timedelta(seconds=10), timedelta(minutes=15)
    )
    assert ask.effective_timeout is None
    assert step(ask={"message": "ok?", "approvers": ["U1"]}, timeout="1d").effective_timeout \
        == timedelta(days=1)


def test_backoff_doubles_and_is_capped_at_five_minutes():
    s = step(agent="a", run=["x"], backoff="30s")
    assert [s.retry_delay(n).total_seconds() for n in (1, 2, 3, 4, 5)] == [30, 60, 120, 240, 300]


@pytest.mark.parametrize(("fields", "words"), [
    ({"type": "enum"}, "an enum variable needs `values"),
    ({"type": "string", "values": ["a"]}, "`values` is only for enum variables"),
    ({"type": "int", "pattern": "x"}, "`pattern` is only for string variables"),
    ({"type": "string", "pattern": "("}, "`pattern` is not a regular expression"),
    ({"type": "bool", "min": 1}, "`min` and `max` are for int, number and string"),
    ({"fuzzy": True, "type": "string"}, "a fuzzy variable cannot have type"),
    ({"type": "decimal"}, "Input should be 'string', 'int'"),
])
def test_inconsistent_variables_are_refused(fields: dict[str, Any], words: str):
    with pytest.raises(ValidationError, match=words):
        Variable.model_validate(fields)


def test_a_variable_without_a_type_is_a_string():
    assert Variable.model_validate({}).kind == "string"


def agent(*capabilities: dict[str, Any]) -> AgentSpec:
    return AgentSpec.model_validate({
        "apiVersion": "george/v1", "kind": "AgentSpec", "metadata": {"name": "a"},
        "spec": {"capabilities": list(capabilities)},
    })


def test_agent_capabilities_are_gathered_by_kind():
    a = agent(
        {"shell": {"commands": ["tools/a", "tools/b"]}},
        {"http": {"hosts": ["127.0.0.1", "*.corp.example"]}},
        {"slack": {"channels": ["#it"]}},
    )
    assert a.spec.commands == {"tools/a", "tools/b"}
    assert a.spec.channels == {"#it"}
    assert a.spec.allows_host("127.0.0.1")
    assert a.spec.allows_host("API.corp.example")
    assert not a.spec.allows_host("corp.example")
    assert not a.spec.allows_host("evilcorp.example")


def test_a_capability_is_exactly_one_kind():
    with pytest.raises(ValidationError, match="exactly one of shell, http or slack"):
        agent({"shell": {"commands": ["x"]}, "slack": {"channels": ["#it"]}})


def test_models_are_frozen():
    s = step(agent="a", run=["x"])
    with pytest.raises(ValidationError):
        s.retries = 5  # type: ignore[misc]
