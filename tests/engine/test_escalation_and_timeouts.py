"""An approval nobody decides: `escalate: {after, to}` asks more people once `after` has
passed, and they may then decide it as approvers; `timeout` ends it as `onTimeout` says
(`fail`: ApprovalTimedOut, `reject`: Rejected). In `ask` and in `requireApproval` alike."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from georgebot.engine.service import Decision, Engine
from georgebot.model.specs import AgentSpec, Step
from georgebot.model.status import Reason, StepStatus
from georgebot.store import Store
from tests.engine.harness import FakeSource, decide, job, request_of, step

LEADS = "S0ITLEADS"


def gate(store: Store):
    found = store.load_runs(["j"])[0].step("gate")
    assert found is not None
    return found


def escalating(**ask: object) -> Step:
    return step("gate", ask={"escalate": {"after": "4h", "to": [LEADS, "U0BOSS"]}, **ask}, timeout="1d")


async def test_after_its_escalation_time_a_request_asks_the_escalation_and_they_may_decide(
    engine: Engine, source: FakeSource, sqlite_store: Store, clock
) -> None:
    source.commit(job("j", escalating()))
    await engine.settle()
    request = request_of(sqlite_store, "j", "gate")
    assert await decide(engine, "j", "gate", user="U0BOSS", approve=True) is Decision.NOT_APPROVER

    clock.advance(timedelta(hours=4))
    await engine.settle()
    waiting = gate(sqlite_store)
    assert waiting.status is StepStatus.WAITING and waiting.waits is not None
    assert waiting.waits.request == request  # the same request, not a new round
    [ping] = [m for m in sqlite_store.pending_outbox() if m.kind == "ping"]
    assert f"<!subteam^{LEADS}>" in ping.text and "<@U0BOSS>" in ping.text
    assert await engine.approvers_of(request) == ("U01ALEX", LEADS, "U0BOSS")

    assert await decide(engine, "j", "gate", user="U0BOSS", approve=True) is Decision.APPROVED
    assert gate(sqlite_store).status is StepStatus.SUCCEEDED


@pytest.mark.parametrize(("on_timeout", "reason"),
                         [(None, Reason.APPROVAL_TIMED_OUT), ("reject", Reason.REJECTED)])
async def test_an_escalated_request_ends_at_its_timeout_as_on_timeout_says(
    engine: Engine, source: FakeSource, sqlite_store: Store, clock, on_timeout: str | None, reason: str
) -> None:
    source.commit(job("j", escalating(**({"onTimeout": on_timeout} if on_timeout else {}))))
    await engine.settle()
    clock.advance(timedelta(hours=4))
    await engine.settle()
    clock.advance(timedelta(hours=19, minutes=59))
    await engine.settle()
    assert gate(sqlite_store).status is StepStatus.WAITING
    clock.advance(timedelta(minutes=1))
    await engine.settle()
    ended = gate(sqlite_store)
    assert (ended.status, ended.reason) == (StepStatus.FAILED, reason)
    assert "no decision" in (ended.message or "")


def test_an_escalation_that_comes_after_the_timeout_is_a_manifest_error() -> None:
    with pytest.raises(ValidationError, match=r"escalate\.after"):
        step("gate", ask={"escalate": {"after": "2d", "to": [LEADS]}}, timeout="1d")
    with pytest.raises(ValidationError, match=r"escalate\.after"):
        AgentSpec.model_validate({
            "apiVersion": "george/v1", "kind": "AgentSpec", "metadata": {"name": "a"},
            "spec": {"requireApproval": {"capabilities": ["shell"], "approvers": ["U1"], "timeout": "1h",
                                         "escalate": {"after": "1h", "to": [LEADS]}}},
        })
