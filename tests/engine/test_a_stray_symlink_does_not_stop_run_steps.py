"""A symlink leading out of the repository, anywhere in it, once made every `run` step of its
revision stay Running (the checkout raised): now the engine, a real Git source and the real
shell executor run the revision's steps, and only a step that runs the link fails, saying so."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from georgebot.agents.dispatch import StepRunner
from georgebot.engine.service import Engine, EngineSettings
from georgebot.manifests.source import ManifestSource
from georgebot.model.status import JobStatus, Reason, StepStatus
from georgebot.store import Store
from tests.manifests.helpers import GitRepo

MANIFESTS = """\
apiVersion: george/v1
kind: AgentSpec
metadata: {name: ops}
spec:
  capabilities:
    - shell: {commands: [tools/hello, tools/evil]}
---
apiVersion: george/v1
kind: TaskTemplate
metadata: {name: greet}
spec:
  variables:
    tool: {type: string, required: true}
  steps:
    - {name: greet, agent: ops, retries: 0, run: ["{{ tool }}"]}
---
apiVersion: george/v1
kind: Job
metadata: {name: hello}
spec: {template: greet, params: {tool: tools/hello}}
---
apiVersion: george/v1
kind: Job
metadata: {name: evil}
spec: {template: greet, params: {tool: tools/evil}}
"""


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "repo")
    repo.write("manifests/all.yaml", MANIFESTS)
    repo.write("tools/hello", "#!/bin/sh\necho hello\n", mode=0o755)
    os.symlink("/etc/passwd", repo.root / "tools" / "evil")
    os.symlink("../../../outside", repo.root / "manifests" / "stray")  # used by nothing
    repo.commit("greet, with stray links")
    return repo


@pytest.fixture
async def george(
    repo: GitRepo, sqlite_store: Store, clock, tmp_path: Path
) -> AsyncIterator[Engine]:
    runner = StepRunner()
    with ManifestSource(str(repo.root), home=tmp_path / "home") as source:
        engine = Engine(
            EngineSettings(home=tmp_path / "home"), store=sqlite_store, source=source, runner=runner,
            clock=clock,
        )
        await runner.start()
        await engine.start()
        try:
            yield engine
        finally:
            await engine.close()
            await runner.close()


async def test_a_run_step_succeeds_in_a_revision_with_a_stray_outside_symlink(
    george: Engine, sqlite_store: Store
) -> None:
    await george.settle()

    [hello] = sqlite_store.load_runs(["hello"])
    assert hello.status is JobStatus.SUCCEEDED
    assert hello.steps[0].status is StepStatus.SUCCEEDED
    assert george.snapshot is not None
    assert {e.file for e in george.snapshot.errors} == {"tools/evil", "manifests/stray"}
    invalid = hello.condition(Reason.INVALID_SPEC)
    assert invalid is None or not invalid.status


async def test_a_step_that_runs_the_left_out_link_fails_naming_it(
    george: Engine, sqlite_store: Store
) -> None:
    await george.settle()

    [evil] = sqlite_store.load_runs(["evil"])
    step = evil.steps[0]
    assert (evil.status, step.status) == (JobStatus.FAILED, StepStatus.FAILED)
    assert step.reason == "CommandNotFound"
    assert "tools/evil" in step.message
