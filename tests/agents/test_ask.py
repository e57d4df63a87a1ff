"""`ask` steps: the agent hands back what to post, and checks the channel when it has an agent."""

from __future__ import annotations

import pytest

from georgebot import errors
from georgebot.agents.ask import AskRunner
from georgebot.engine.ports import ApprovalRequest, Wait


def laptop(**ask: object) -> dict[str, object]:
    return {"name": "laptop-ordered", "ask": {
        "message": "Is a laptop ordered for Alice Smith?", "approvers": ["U012IT", "S0ITTEAM"],
        "quorum": 1, **ask,
    }}


LAPTOP = laptop()


def asking_in(channel: str) -> dict[str, object]:
    return laptop(channel=channel)


async def test_ask_without_channel_waits_for_approval_in_the_jobs_channel(make_task, notes):
    result = await AskRunner().run(make_task(LAPTOP), notes)

    assert result == Wait(
        request=ApprovalRequest(
            job="onboard-alice", step="laptop-ordered", channel="#onboarding",
            text="Is a laptop ordered for Alice Smith?", approvers=("U012IT", "S0ITTEAM"), quorum=1,
        ),
        message="waiting in #onboarding for 1 approval(s) from U012IT, S0ITTEAM",
    )
    assert notes.entries == []


async def test_ask_without_agent_may_ask_in_any_channel(make_task, notes):
    result = await AskRunner().run(make_task(asking_in("#it")), notes)

    assert result.request.channel == "#it"


async def test_ask_with_agent_in_a_granted_channel_waits(make_task, grant, notes):
    agent = grant({"slack": {"channels": ["#IT", "#general"]}})

    result = await AskRunner().run(make_task(asking_in("#it"), agent=agent), notes)

    assert result.request.channel == "#it"


async def test_ask_with_agent_lacking_the_channel_is_capability_missing(make_task, grant, notes):
    agent = grant({"slack": {"channels": ["#general"]}}, {"shell": {"commands": ["true"]}})

    with pytest.raises(errors.CapabilityMissing) as blocked:
        await AskRunner().run(make_task(asking_in("#it"), agent=agent), notes)

    assert blocked.value.capability == "slack: #it"
    assert '- slack: {channels: ["#it"]}' in str(blocked.value)


async def test_ask_naming_an_undefined_agent_is_capability_missing(make_task, notes):
    with pytest.raises(errors.CapabilityMissing) as blocked:
        await AskRunner().run(make_task({**LAPTOP, "agent": "ghost"}), notes)

    assert blocked.value.capability == "agent: ghost"
