"""`georgebot reconcile`, `status` and `audit` as an operator runs them, on a real repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import MakeRepo

AGENTS = """\
apiVersion: george/v1
kind: AgentSpec
metadata: {name: ops}
spec:
  capabilities:
    - shell: {commands: [tools/hello, tools/flaky]}
"""
TEMPLATE = """\
apiVersion: george/v1
kind: TaskTemplate
metadata: {name: greet}
spec:
  variables:
    who: {type: string, required: true}
  steps:
    - {name: hello, agent: ops, run: [tools/hello, "{{ who }}"]}
    - {name: sign-off, needs: [hello], ask: {message: "Greeted {{ who }}?", approvers: [U01ALEX]}}
    - {name: bye, agent: ops, needs: [sign-off], run: [tools/hello, bye]}
    - {name: forbidden, agent: ops, run: [tools/rm-everything]}
"""
JOB = """\
apiVersion: george/v1
kind: Job
metadata: {name: greet-bob}
spec: {template: greet, params: {who: "Bob; rm -rf /"}}
"""
HELLO = '#!/bin/sh\necho "hello $1" | tee -a "$GEORGE_OUTPUT_DIR/said"\n'
FLAKY = "#!/bin/sh\necho 'the service is down' >&2\nexit 3\n"


@pytest.fixture
def repo(make_repo: MakeRepo) -> Path:
    return make_repo({"manifests/agents.yaml": AGENTS, "manifests/greet.yaml": TEMPLATE,
                      "manifests/jobs.yaml": JOB, "tools/hello": HELLO, "tools/flaky": FLAKY})


def georgebot(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GEORGE_REPO": str(repo),
           "GEORGE_DATABASE_URL": f"sqlite:///{repo.parent / 'state.db'}",
           "GEORGE_HOME": str(repo.parent / "home")}
    return subprocess.run([sys.executable, "-m", "georgebot", *args], cwd=repo.parent, env=env,
                          capture_output=True, text=True, timeout=60)


def test_reconcile_runs_until_people_or_capabilities_are_needed(repo: Path) -> None:
    done = georgebot(repo, "reconcile", "--wait", "--timeout", "30")
    assert done.returncode == 0, done.stderr

    status = json.loads(georgebot(repo, "status", "--json").stdout)
    assert set(status) >= {"revision", "manifest_errors", "agents", "jobs"}
    assert status["revision"]["message"] == "manifests"
    assert status["agents"] == [{"name": "ops", "capabilities": {"shell": ["tools/flaky", "tools/hello"]},
                                 "running": 0, "model": None}]
    [job] = status["jobs"]
    assert (job["name"], job["template"], job["status"], job["generation"]) == (
        "greet-bob", "greet", "Waiting", 1)
    steps = {s["name"]: s for s in job["steps"]}
    assert {n: s["status"] for n, s in steps.items()} == {
        "hello": "Succeeded", "sign-off": "Waiting", "bye": "Pending", "forbidden": "Blocked"}
    assert steps["forbidden"]["reason"] == "CapabilityMissing"
    assert "tools/rm-everything" in steps["forbidden"]["message"]
    assert steps["hello"]["attempts"] == 1
    # The hostile parameter reached the tool as one argument and was never run by a shell.
    assert (repo.parent / "home" / "outputs" / "greet-bob" / "said").read_text() == "hello Bob; rm -rf /\n"


def test_status_of_one_job_in_words(repo: Path) -> None:
    georgebot(repo, "reconcile")
    text = georgebot(repo, "status", "greet-bob")
    assert text.returncode == 0
    assert "greet-bob" in text.stdout and "Waiting" in text.stdout
    assert "CapabilityMissing" in text.stdout
    missing = georgebot(repo, "status", "nobody")
    assert missing.returncode == 1 and "no job named nobody" in missing.stderr


def test_audit_lists_every_transition_with_its_actor(repo: Path) -> None:
    georgebot(repo, "reconcile")
    events = json.loads(georgebot(repo, "audit", "greet-bob", "--json").stdout)
    assert all(set(e) == {"at", "job", "step", "actor", "from", "to", "reason", "message"} for e in events)
    assert events[0]["actor"].startswith("git:") and events[0]["to"] == "Pending"
    hello = [(e["actor"], e["from"], e["to"]) for e in events if e["step"] == "hello"]
    assert hello == [("engine", "Pending", "Running"), ("agent:hello", "Running", "Succeeded")]
    assert all(e["at"].endswith("Z") for e in events)


def test_reconcile_wait_gives_up_at_the_timeout(make_repo: MakeRepo) -> None:
    job = JOB.replace("greet-bob", "flaky-job").replace("template: greet", "template: flaky")
    template = ("apiVersion: george/v1\nkind: TaskTemplate\nmetadata: {name: flaky}\nspec:\n"
                "  steps:\n    - {name: call, agent: ops, run: [tools/flaky], retries: 5, backoff: 1m}\n")
    repo = make_repo({"manifests/agents.yaml": AGENTS, "manifests/flaky.yaml": template,
                      "manifests/jobs.yaml": job.replace('params: {who: "Bob; rm -rf /"}', "params: {}"),
                      "tools/flaky": FLAKY})
    result = georgebot(repo, "reconcile", "--wait", "--timeout", "1")
    assert result.returncode == 1
    assert "timed out" in result.stderr
    status = json.loads(georgebot(repo, "status", "--json").stdout)
    [step] = status["jobs"][0]["steps"]
    assert (step["status"], step["reason"]) == ("Retrying", "ExitCode")
    assert "the service is down" in step["message"]


def test_status_before_any_reconcile_says_what_to_do(repo: Path) -> None:
    result = georgebot(repo, "status")
    assert result.returncode == 2
    assert "georgebot reconcile" in result.stderr
    assert not (repo.parent / "state.db").exists()


def test_retry_from_the_command_line_is_audited_with_who_asked(make_repo: MakeRepo) -> None:
    job = JOB.replace('params: {who: "Bob; rm -rf /"}', "params: {}")
    job = job.replace("template: greet", "template: flaky")
    template = ("apiVersion: george/v1\nkind: TaskTemplate\nmetadata: {name: flaky}\nspec:\n"
                "  steps:\n    - {name: call, agent: ops, run: [tools/flaky], retries: 0}\n")
    repo = make_repo({"manifests/agents.yaml": AGENTS, "manifests/flaky.yaml": template,
                      "manifests/jobs.yaml": job, "tools/flaky": FLAKY})
    georgebot(repo, "reconcile")
    assert json.loads(georgebot(repo, "status", "--json").stdout)["jobs"][0]["status"] == "Failed"
    retried = georgebot(repo, "retry", "greet-bob")
    assert retried.returncode == 0 and "retrying call of greet-bob" in retried.stdout
    events = json.loads(georgebot(repo, "audit", "greet-bob", "--json").stdout)
    assert any(e["reason"] == "RetryRequested" and e["actor"].startswith("cli:") for e in events)
    unknown = georgebot(repo, "retry", "nobody")
    assert unknown.returncode == 1 and "no job named nobody" in unknown.stderr


def test_status_says_how_steps_run_and_which_georges_run_them(repo: Path) -> None:
    running = subprocess.Popen(
        [sys.executable, "-m", "georgebot", "reconcile", "--wait", "--timeout", "30"], cwd=repo.parent,
        env={**os.environ, "GEORGE_REPO": str(repo), "GEORGE_HOME": str(repo.parent / "home"),
             "GEORGE_DATABASE_URL": f"sqlite:///{repo.parent / 'state.db'}", "GEORGE_SANDBOX": "unconfined"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, err = running.communicate(timeout=60)
    finally:
        running.kill()
    assert running.returncode == 0, err
    assert "steps are NOT sandboxed: GEORGE_SANDBOX is unconfined" in err  # said once, at start
    assert err.count("NOT sandboxed") == 1

    after = json.loads(georgebot(repo, "status", "--json").stdout)
    text = georgebot(repo, "status").stdout
    off = json.loads(subprocess.run(
        [sys.executable, "-m", "georgebot", "status", "--json"], cwd=repo.parent, capture_output=True,
        text=True, env={**os.environ, "GEORGE_DATABASE_URL": f"sqlite:///{repo.parent / 'state.db'}",
                        "GEORGE_SANDBOX": "off"}).stdout)

    assert after["replicas"] == []  # a George that stopped cleanly is no longer listed
    assert after["sandbox"]["kind"] in ("bubblewrap", "none")  # what this machine would use
    assert after["sandbox"]["detail"].endswith("(no George is running)")
    assert text.splitlines()[1].startswith("sandbox   ")
    assert off["sandbox"]["kind"] == "off"
