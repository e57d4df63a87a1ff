"""`georgebot validate` and `georgebot schema` as an operator or a CI check runs them: exit
codes, the line format, the JSON shape, and the demo manifests passing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from georgebot.cli import main
from georgebot.manifests.schema import schema_text
from tests.manifests.helpers import AGENTS, ROOT, TEMPLATE, GitRepo, job


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("GEORGE_REPO", "GEORGE_BRANCH", "GEORGE_PATH", "GEORGE_DEFAULT_DEADLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GEORGE_HOME", str(tmp_path / "home"))


def georgebot(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def seed(repo: GitRepo) -> str:
    repo.write("manifests/agents.yaml", AGENTS)
    repo.write("manifests/templates.yaml", TEMPLATE)
    repo.write("manifests/jobs.yaml", job("onboard-alice"))
    return repo.commit("onboard alice")


def test_valid_manifests_exit_0_with_a_one_line_summary(repo: GitRepo):
    sha = seed(repo)

    result = georgebot("validate", "--repo", str(repo.root))

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"valid: 1 agent, 1 template, 1 job at {sha[:7]} (onboard alice)\n"
    )


def test_invalid_manifests_exit_1_with_file_line_object_and_message(repo: GitRepo):
    seed(repo)
    repo.write("manifests/jobs.yaml", job("onboard-alice") + "  tempalte: x\n")
    repo.commit("typo")

    result = georgebot("validate", "--repo", str(repo.root))

    assert result.exit_code == 1
    assert result.stdout == (
        "manifests/jobs.yaml:7: Job/onboard-alice: unknown field `spec.tempalte` "
        "(did you mean `template`?)\n"
    )
    assert result.stderr.startswith("invalid: 1 error in 1 file at ")


def test_json_lists_errors_in_the_one_error_shape(repo: GitRepo):
    seed(repo)
    repo.write("manifests/more.yaml", "kind: Jobb\nmetadata: {name: x}\n---\nkind: [\n")
    repo.commit("more")

    result = georgebot("validate", "--repo", str(repo.root), "--json")

    assert result.exit_code == 1
    errors = json.loads(result.stdout)
    shape = ["column", "file", "kind", "line", "message", "name"]
    assert [sorted(e) for e in errors] == [shape, shape]
    assert errors[0] == {
        "file": "manifests/more.yaml", "line": 1, "column": 1, "kind": "-", "name": "x",
        "message": "unknown kind `Jobb` (did you mean `Job`?); kinds are AgentSpec, "
                   "TaskTemplate, Job",
    }
    assert errors[1]["line"] == 4 and errors[1]["message"].startswith("invalid YAML")


def test_json_of_valid_manifests_is_an_empty_list(repo: GitRepo):
    seed(repo)

    result = georgebot("validate", "--repo", str(repo.root), "--json")

    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


def test_worktree_checks_uncommitted_edits(repo: GitRepo):
    seed(repo)
    repo.write("manifests/jobs.yaml", job("onboard-alice", channel="[oops"))

    committed = georgebot("validate", "--repo", str(repo.root))
    on_disk = georgebot("validate", "--repo", str(repo.root), "--worktree")

    assert committed.exit_code == 0
    assert on_disk.exit_code == 1
    assert on_disk.stdout.startswith("manifests/jobs.yaml:7: -/-: invalid YAML")


def test_capability_gaps_are_warnings_on_stderr_and_still_exit_0(repo: GitRepo):
    seed(repo)
    repo.write("manifests/templates.yaml", TEMPLATE.replace("tools/create-account", "tools/nuke"))
    repo.commit()

    result = georgebot("validate", "--repo", str(repo.root))

    assert result.exit_code == 0
    assert "warning: manifests/templates.yaml:12: TaskTemplate/onboard-employee: agent " \
        "`it-helper` is not granted `tools/nuke`" in result.stderr
    assert result.stdout.startswith("valid: ")


def test_a_folder_outside_git_exits_2_saying_what_to_set(tmp_path: Path):
    result = georgebot("validate", "--repo", str(tmp_path))

    assert result.exit_code == 2
    assert result.stdout == ""
    assert "not inside a Git repository" in result.stderr
    assert "GEORGE_REPO" in result.stderr


def test_a_missing_branch_exits_2(repo: GitRepo):
    seed(repo)

    result = georgebot("validate", "--repo", str(repo.root), "--branch", "nope")

    assert result.exit_code == 2
    assert "branch 'nope' not found" in result.stderr


def test_a_detached_checkout_needs_a_branch_and_head_names_its_commit(repo: GitRepo):
    sha = seed(repo)
    repo.git("checkout", "-q", "--detach")

    without = georgebot("validate", "--repo", str(repo.root))
    with_head = georgebot("validate", "--repo", str(repo.root), "--branch", "HEAD")

    assert without.exit_code == 2
    assert "detached" in without.stderr and "GEORGE_BRANCH" in without.stderr
    assert with_head.exit_code == 0
    assert f"at {sha[:7]} " in with_head.stdout


def test_a_bad_setting_in_the_environment_exits_2(repo: GitRepo, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GEORGE_DEFAULT_DEADLINE", "a week")

    result = georgebot("validate", "--repo", str(repo.root))

    assert result.exit_code == 2
    assert "GEORGE_DEFAULT_DEADLINE" in result.stderr


def test_options_override_the_environment(repo: GitRepo, monkeypatch: pytest.MonkeyPatch):
    seed(repo)
    monkeypatch.setenv("GEORGE_REPO", "/nowhere")
    monkeypatch.setenv("GEORGE_PATH", "elsewhere")

    result = georgebot("validate", "--repo", str(repo.root), "--path", "manifests")

    assert result.exit_code == 0, result.stderr


def test_the_demo_manifests_are_valid_on_disk():
    result = georgebot("validate", "--repo", str(ROOT), "--worktree")

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("valid: 3 agents, 2 templates, 3 jobs at worktree")
    assert result.stderr == ""


def test_the_demo_manifests_are_valid_once_committed(tmp_path: Path):
    repo = GitRepo(tmp_path / "demo")
    shutil.copytree(ROOT / "manifests", repo.root / "manifests")
    shutil.copytree(ROOT / "tools", repo.root / "tools")
    sha = repo.commit("demo")

    result = georgebot("validate", "--repo", str(repo.root))

    assert result.exit_code == 0, result.output
    assert result.stdout == f"valid: 3 agents, 2 templates, 3 jobs at {sha[:7]} (demo)\n"


def test_the_demo_tools_are_executable():
    tools = sorted(p.name for p in (ROOT / "tools").iterdir())
    assert tools == ["create-account", "order-laptop", "rotate-credentials", "verify-credentials"]
    assert all((ROOT / "tools" / t).stat().st_mode & 0o111 for t in tools)


def test_schema_is_json_schema_over_the_three_kinds():
    result = georgebot("schema")

    schema = json.loads(result.stdout)
    assert result.exit_code == 0
    assert schema["$schema"].startswith("http://json-schema.org/")
    assert [ref["$ref"] for ref in schema["oneOf"]] == [
        "#/$defs/AgentSpec", "#/$defs/TaskTemplate", "#/$defs/Job"
    ]
    step = schema["$defs"]["Step"]["properties"]
    assert {"run", "http", "ask", "instructions", "done_when", "needs"} <= set(step)
    assert step["backoff"]["default"] == "10s"
    assert "maxConcurrentSteps" in schema["$defs"]["AgentBody"]["properties"]
    assert schema["$defs"]["AgentBody"]["additionalProperties"] is False


def test_the_schema_next_to_the_demo_manifests_is_current():
    committed = (ROOT / "manifests" / "george.schema.json").read_text()
    assert committed == schema_text(), "run: georgebot schema > manifests/george.schema.json"
