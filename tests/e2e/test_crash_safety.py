"""SIGKILL a real `georgebot reconcile --wait` at different points, start it again, and
check the guarantees: every job finishes, no succeeded step runs again, a step that was
running runs again (recorded as a recovery) soon after the restart, no event is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from georgebot.model.status import JobStatus
from georgebot.store import Store, open_database
from tests.e2e.conftest import MakeRepo

pytestmark = pytest.mark.slow

TOOL = """#!/bin/sh
echo "$GEORGE_STEP $GEORGE_ATTEMPT" >> "$GEORGE_OUTPUT_DIR/runs.log"
sleep 0.3
echo "$GEORGE_STEP done"
"""

AGENT = """\
apiVersion: george/v1
kind: AgentSpec
metadata: {name: worker}
spec:
  capabilities:
    - shell: {commands: [tools/work]}
  maxConcurrentSteps: 2
"""

TEMPLATE = """\
apiVersion: george/v1
kind: TaskTemplate
metadata: {name: chain}
spec:
  steps:
    - {name: one, agent: worker, run: [tools/work]}
    - {name: two, agent: worker, run: [tools/work], needs: [one]}
    - {name: three, agent: worker, run: [tools/work], needs: [one]}
    - {name: four, agent: worker, run: [tools/work], needs: [two, three]}
"""


@pytest.fixture
def repo(make_repo: MakeRepo) -> Path:
    jobs = "---\n".join(
        f"apiVersion: george/v1\nkind: Job\nmetadata: {{name: job-{i}}}\nspec: {{template: chain}}\n"
        for i in range(3)
    )
    return make_repo({"tools/work": TOOL, "manifests/agents.yaml": AGENT,
                      "manifests/chain.yaml": TEMPLATE, "manifests/jobs.yaml": jobs})


def test_sigkill_at_any_moment_loses_nothing(repo: Path, tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'george.db'}"
    env = {
        **os.environ,
        "GEORGE_REPO": str(repo),
        "GEORGE_DATABASE_URL": db_url,
        "GEORGE_HOME": str(tmp_path / "home"),
        "GEORGE_LEASE_SECONDS": "2",
    }
    restarts: list[datetime] = []

    def start() -> subprocess.Popen[bytes]:
        restarts.append(datetime.now(UTC))
        return subprocess.Popen(
            [sys.executable, "-m", "georgebot", "reconcile", "--wait", "--timeout", "60"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def events() -> int:
        if not (tmp_path / "george.db").exists():
            return 0
        db = open_database(db_url, upgrade=False)
        try:
            return sum(len(Store(db).events(f"job-{i}")) for i in range(3))
        except Exception:
            return 0
        finally:
            db.close()

    # Kill after a different amount of progress each time: 3, 8, 14 ... new events.
    for kill_after in (3, 5, 6, 7):
        baseline = events()
        proc = start()
        deadline = time.monotonic() + 30
        while events() < baseline + kill_after and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.communicate()
    proc = start()
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err.decode()

    db = open_database(db_url)
    store = Store(db)
    recovered = 0
    for i in range(3):
        name = f"job-{i}"
        run = store.load_runs([name])[0]
        assert run.status is JobStatus.SUCCEEDED, name
        log = store.events(name)
        ran = (tmp_path / "home" / "outputs" / name / "runs.log").read_text().split("\n")
        for step in ("one", "two", "three", "four"):
            succeeded = [e for e in log if e.step == step and e.to_status == "Succeeded"]
            assert len(succeeded) == 1, (name, step)
            attempts = [e for e in log if e.step == step and e.to_status == "Running"]
            executions = [int(line.split()[1]) for line in ran if line.startswith(f"{step} ")]
            # No execution after the one that succeeded; every re-run is a recorded recovery.
            assert max(executions) == len(attempts) == run.step(step).attempts
            recoveries = [e for e in attempts if e.reason == "Recovered"]
            recovered += len(recoveries)
            assert len(attempts) - 1 == len(recoveries), (name, step)
            for event in recoveries:
                restart = max(r for r in restarts if r <= event.at)
                assert (event.at - restart).total_seconds() < 15
    db.close()
    assert recovered, "no kill landed while a step was running"
