"""A newcomer's first minute: `georgebot run` with nothing configured, in a fresh clone of a
manifests repository made by `georgebot init`, used through the local Slack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import git
from tests.e2e.running import RunningGeorge, all_text, channel, message_with, start_george

pytestmark = pytest.mark.slow

FLAKY_TEMPLATE = """\
apiVersion: george/v1
kind: AgentSpec
metadata: {name: tester}
spec:
  capabilities: [{shell: {commands: [tools/fail-until-fixed]}}]
---
apiVersion: george/v1
kind: TaskTemplate
metadata: {name: flaky-once}
spec:
  channel: "#it"
  steps:
    - {name: first-try-fails, agent: tester, run: [tools/fail-until-fixed], retries: 0}
---
apiVersion: george/v1
kind: Job
metadata: {name: flaky-job}
spec: {template: flaky-once}
"""


@pytest.fixture
def george(tmp_path: Path) -> Iterator[RunningGeorge]:
    source = tmp_path / "source"
    subprocess.run([sys.executable, "-m", "georgebot", "init", str(source)], check=True,
                   capture_output=True)
    # A job whose step fails until someone fixes what it needs (here: a file it looks for).
    (source / "manifests" / "flaky.yaml").write_text(FLAKY_TEMPLATE)
    tool = source / "tools" / "fail-until-fixed"
    tool.write_text('#!/bin/sh\ntest -e "$GEORGE_OUTPUT_DIR/fixed" || { echo "not fixed" >&2; exit 1; }\n')
    tool.chmod(0o755)
    git(source, "add", ".")
    git(source, "commit", "-qm", "a job that fails once")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(source), str(clone)], check=True)
    running = start_george(clone, tmp_path / "home")
    try:
        yield running
    finally:
        assert running.stop() == 0
        assert "Traceback" not in "".join(running.stderr)


def test_demo_card_approval_status_and_retry(george: RunningGeorge, tmp_path: Path) -> None:
    # The demo job's card appears in its channel.
    card = george.until(lambda s: message_with(s, "#onboarding", "onboard-alice"))
    assert "onboard-alice" in all_text(card)

    # The approval request waits in #it; a ✅ by an approver (Alex, IT) moves the job on.
    request = george.until(lambda s: message_with(s, "#it", "laptop-ready of onboard-alice"))
    george.act("reactions", user="U01ALEX", channel=channel(george.state(), "#it")["id"],
               ts=request["ts"], name="white_check_mark")

    def laptop_ready_done(state: dict) -> bool:
        card = message_with(state, "#onboarding", "onboard-alice")
        return bool(card) and "laptop-ready" in all_text(card) and "approved by" in all_text(card)

    george.until(laptop_ready_done)

    # /george status answers, ephemerally, to the person who asked.
    onboarding = channel(george.state(), "#onboarding")["id"]
    george.act("messages", user="U01PAT", channel=onboarding, text="/george status")
    status = george.until(lambda s: s["ephemerals"].get("U01PAT"))
    assert any("onboard-alice" in (e.get("text") or "") + str(e.get("blocks")) for e in status)

    # A failed job: @george retry runs it again, and George says so in the thread.
    george.until(lambda s: (m := message_with(s, "#it", "flaky-job")) and "Failed" in all_text(m))
    (tmp_path / "home" / "outputs" / "flaky-job" / "fixed").touch()  # what was wrong is fixed
    it = channel(george.state(), "#it")["id"]
    george.act("messages", user="U01PAT", channel=it, text="@george retry flaky-job")
    george.until(lambda s: (m := message_with(s, "#it", "flaky-job")) and "Succeeded" in all_text(m))

    # `georgebot status` beside the running George names it, and how it runs steps.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "GEORGE_"))}
    shown = json.loads(subprocess.run([sys.executable, "-m", "georgebot", "status", "--json"],
                                      cwd=tmp_path / "clone", env=env, capture_output=True, text=True,
                                      check=True).stdout)
    [replica] = shown["replicas"]
    assert replica["pid"] == george.process.pid
    assert replica["sandbox"].split(":")[0] == shown["sandbox"]["kind"] in ("bubblewrap", "none")


def test_run_outside_a_git_repository_says_how_to_fix_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "GEORGE_"))}
    result = subprocess.run([sys.executable, "-m", "georgebot", "run"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "not inside a Git repository" in result.stderr
    assert "georgebot init DIR" in result.stderr
    assert "Traceback" not in result.stderr
