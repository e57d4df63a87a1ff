"""`requireApproval` covers every use of a capability kind, `run` steps included: a `run` step
whose agent's `requireApproval` lists `shell` posts its exact argv for approval, and runs
only on ✅, once per approval. Run by the real engine and `StepRunner` on a checkout of a
small script (SQLite store, fake Git source)."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from georgebot.agents.dispatch import StepRunner
from georgebot.agents.gating import gate_of
from georgebot.agents.sandbox import Sandbox
from georgebot.agents.shell import ShellRunner
from georgebot.engine.ports import StepTask
from georgebot.engine.service import Decision, Engine
from georgebot.model.rendered import RenderedJob
from georgebot.model.specs import AgentSpec, Step
from georgebot.model.status import Reason, StepStatus
from georgebot.store import Store
from tests.engine.harness import FakeSource, decide, job, make_engine, request_of, step

SECURITY = "U0SECURITY"
LONG = "production," + ",".join(f"db-{n:04d}" for n in range(600))  # some 5,000 characters


def secrets_bot(*kinds: str, **policy: object) -> AgentSpec:
    return AgentSpec.model_validate({
        "apiVersion": "george/v1", "kind": "AgentSpec", "metadata": {"name": "secrets-bot"},
        "spec": {
            "capabilities": [{"shell": {"commands": ["tools/rotate"]}}, {"http": {"hosts": ["127.0.0.1:9"]}}],
            "requireApproval": {"capabilities": list(kinds), "approvers": [SECURITY], **policy},
        },
    })


@dataclass
class Checkout(FakeSource):
    """Every revision checks out to one folder holding tools/rotate, which logs its argv."""

    path: Path = field(default_factory=Path)

    def checkout(self, sha: str) -> Path:
        return self.path


@pytest.fixture
async def engine(sqlite_store: Store, clock, tmp_path: Path) -> AsyncIterator[Engine]:
    tool = tmp_path / "checkout" / "tools" / "rotate"
    tool.parent.mkdir(parents=True)
    tool.write_text('#!/bin/sh\necho "$@" >> "$GEORGE_OUTPUT_DIR/ran"\n[ "$1" != --fail ]\n')
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    sandbox = Sandbox.detect("unconfined")
    runner = StepRunner(shell=ShellRunner(sandbox=sandbox))
    eng = make_engine(sqlite_store, Checkout(path=tmp_path / "checkout"), runner, clock, tmp_path / "home")
    await eng.start()
    yield eng
    await eng.close()
    await runner.close()
    sandbox.close()


def ran(engine: Engine) -> list[str]:
    log = engine.settings.home / "outputs" / "rotate" / "ran"
    return log.read_text().splitlines() if log.exists() else []


def rotate_job() -> RenderedJob:
    return job("rotate", step("rotate", agent="secrets-bot", run=["tools/rotate", "--env", LONG]))


def state(store: Store):
    found = store.load_runs(["rotate"])[0].step("rotate")
    assert found is not None
    return found


async def test_a_run_step_waits_for_approval_of_its_whole_argv_and_runs_on_approval(
    engine: Engine, sqlite_store: Store
) -> None:
    engine.source.commit(rotate_job(), agents=(secrets_bot("shell"),))
    await engine.settle()
    assert state(sqlite_store).status is StepStatus.WAITING
    assert ran(engine) == []  # nothing ran before the approval
    request = sqlite_store.request(request_of(sqlite_store, "rotate", "rotate"))
    assert request is not None and request.approvers == (SECURITY,)
    assert f"tools/rotate --env {LONG}" in request.text  # every character of the argv, not cut

    assert await decide(engine, "rotate", "rotate", user=SECURITY, approve=True) is Decision.APPROVED
    await engine.settle()
    assert state(sqlite_store).status is StepStatus.SUCCEEDED
    assert ran(engine) == [f"--env {LONG}"]


async def test_a_rejected_run_step_does_not_run_and_a_retry_asks_again(
    engine: Engine, sqlite_store: Store
) -> None:
    engine.source.commit(rotate_job(), agents=(secrets_bot("shell"),))
    await engine.settle()
    assert await decide(engine, "rotate", "rotate", user=SECURITY, approve=False,
                        note="not during the freeze") is Decision.REJECTED
    await engine.settle()
    rejected = state(sqlite_store)
    assert (rejected.status, rejected.reason) == (StepStatus.FAILED, Reason.REJECTED)
    assert "not during the freeze" in (rejected.message or "")
    assert ran(engine) == []

    plan = await engine.retry("rotate", actor=f"user:{SECURITY}")
    assert plan.steps == ("rotate",)
    await engine.settle()  # the rejection was spent: the retry asks again instead of running
    assert state(sqlite_store).status is StepStatus.WAITING
    assert ran(engine) == []


async def test_an_approval_is_spent_by_the_attempt_that_ran_it(
    engine: Engine, sqlite_store: Store, clock
) -> None:
    flaky = step("rotate", agent="secrets-bot", run=["tools/rotate", "--fail"], retries=1, backoff="1s")
    engine.source.commit(job("rotate", flaky), agents=(secrets_bot("shell"),))
    await engine.settle()
    await decide(engine, "rotate", "rotate", user=SECURITY, approve=True)
    await engine.settle()  # it ran, and failed
    assert (ran(engine), state(sqlite_store).status) == (["--fail"], StepStatus.RETRYING)
    clock.advance(timedelta(seconds=1))
    await engine.settle()  # the retry asks again rather than run on the approval already used
    assert (ran(engine), state(sqlite_store).status) == (["--fail"], StepStatus.WAITING)


async def test_require_approval_escalates_and_times_out_as_its_policy_says(
    engine: Engine, sqlite_store: Store, clock
) -> None:
    policy = {"escalate": {"after": "1h", "to": ["U0CISO"]}, "timeout": "2h", "onTimeout": "reject"}
    engine.source.commit(rotate_job(), agents=(secrets_bot("shell", **policy),))
    await engine.settle()
    clock.advance(timedelta(hours=1))
    await engine.settle()
    assert await decide(engine, "rotate", "rotate", user="U0CISO", approve=False) is Decision.REJECTED
    await engine.settle()
    plan = await engine.retry("rotate", actor="user:U0CISO")  # as one of its approvers now
    assert plan.steps == ("rotate",)
    await engine.settle()
    assert state(sqlite_store).status is StepStatus.WAITING  # a new round, escalating again
    for _ in range(2):
        clock.advance(timedelta(hours=1))
        await engine.settle()
    ended = state(sqlite_store)
    assert (ended.status, ended.reason, ran(engine)) == (StepStatus.FAILED, Reason.REJECTED, [])


def task(form: dict[str, object], agent: AgentSpec) -> StepTask:
    parsed = Step.model_validate({"name": "s", "agent": agent.metadata.name, **form})
    rendered = RenderedJob(name="j", template="t", channel="#ops", deadline=None, params={}, fuzzy={},
                           steps=[parsed])
    return StepTask(job=rendered, step=parsed, attempt=1, agent=agent, checkout=Path(),
                    output_dir=Path(), channel="#ops")


def test_the_gate_covers_the_kinds_listed_and_only_those() -> None:
    run = {"run": ["tools/rotate"]}
    http = {"http": {"url": "http://127.0.0.1:9/x", "method": "POST",
                     "headers": {"Authorization": "Bearer s3cret-value"}}}
    assert gate_of(task(run, secrets_bot("shell"))) is not None
    assert gate_of(task(run, secrets_bot("http"))) is None
    gate = gate_of(task(http, secrets_bot("http")))
    assert gate is not None and gate.kind == "http"
    assert "POST http://127.0.0.1:9/x" in gate.wanted and "s3cret" not in gate.wanted  # shown as ***
    assert gate_of(task(http, secrets_bot("shell"))) is None
