"""An LLM step run by the real engine (SQLite store, fake Git source) through `StepRunner`: the
conversation survives the database round trip, a reply in the thread resumes it, an approval
lets the held call run, and usage is stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from georgebot.agents.dispatch import StepRunner
from georgebot.agents.llm import LlmRunner
from georgebot.engine.service import Decision, Engine
from georgebot.model.status import StepStatus
from georgebot.store import Store
from tests.agents.llm.fakes import API_KEY, MODEL, agent_spec
from tests.agents.llm.messages_api import MessagesApi, call, report, turn
from tests.engine.harness import FakeSource, decide, job, make_engine, step


@pytest.fixture
async def engine(sqlite_store: Store, api: MessagesApi, clock, tmp_path: Path) -> AsyncIterator[Engine]:
    runner = StepRunner(llm=LlmRunner(api_key=API_KEY, base_url=api.url, default_model=MODEL))
    await runner.start()
    eng = make_engine(sqlite_store, FakeSource(), runner, clock, tmp_path / "home")
    await eng.start()
    yield eng
    await eng.close()
    await runner.close()


def llm_job(agent_name: str = "it-helper"):
    return job("onboard-alice", step("welcome", agent=agent_name, instructions="Welcome Alice.",
                                     done_when="Alice was welcomed."))


def status(store: Store) -> StepStatus:
    return store.load_runs(["onboard-alice"])[0].step("welcome").status


@pytest.mark.parametrize("to_step", [None, "welcome"])  # a reply in the thread, or to the question
async def test_a_question_waits_and_the_reply_resumes_the_conversation(engine, api, sqlite_store, to_step):
    engine.source.commit(llm_job(), agents=(agent_spec(),))
    question = call("ask_human", question="Which team?")
    api.play(turn(question))

    await engine.settle()
    assert status(sqlite_store) is StepStatus.WAITING

    api.play(report("succeeded", "Done", "Welcomed Alice to payments."))
    assert await engine.reply("onboard-alice", user="U0ALEX", text="payments", step=to_step) == 1
    await engine.settle()

    assert status(sqlite_store) is StepStatus.SUCCEEDED
    [answer] = [b for b in api.requests[-1]["messages"][-1]["content"] if b["type"] == "tool_result"]
    assert answer["tool_use_id"] == question["id"] and "payments" in answer["content"]
    run = sqlite_store.load_runs(["onboard-alice"])[0]
    usage = sqlite_store.usage([run.id])
    assert sum(u.input_tokens for u in usage.values()) == 200


async def test_an_approved_call_runs_in_the_next_attempt(engine, api, sqlite_store):
    agent = agent_spec({"slack": {"channels": ["#general"]}},
                       requireApproval={"capabilities": ["slack"], "approvers": ["U012IT"]})
    engine.source.commit(llm_job(), agents=(agent,))
    api.play(turn(call("post_message", channel="#general", text="Welcome, Alice!")))

    await engine.settle()
    assert status(sqlite_store) is StepStatus.WAITING

    api.play(report("succeeded"))
    decision = await decide(engine, "onboard-alice", "welcome", user="U012IT", approve=True)
    await engine.settle()

    assert decision is Decision.APPROVED
    assert status(sqlite_store) is StepStatus.SUCCEEDED
    [answer] = [b for b in api.requests[-1]["messages"][-1]["content"] if b["type"] == "tool_result"]
    assert answer["content"] == "Posted in #general."
