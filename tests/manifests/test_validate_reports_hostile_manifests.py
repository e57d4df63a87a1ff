"""`georgebot validate` on a repository holding a YAML bomb or a runaway template: it exits 1
with the errors in the usual `file:line: kind/name: message` form, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from georgebot.cli import main
from tests.manifests.helpers import AGENTS, TEMPLATE, GitRepo, job
from tests.manifests.test_hostile_manifests_stay_errors_within_limits import BOMB, one_step


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("GEORGE_REPO", "GEORGE_BRANCH", "GEORGE_PATH", "GEORGE_DEFAULT_DEADLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GEORGE_HOME", str(tmp_path / "home"))


def georgebot(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def seed(repo: GitRepo, **files: str) -> None:
    repo.write("manifests/agents.yaml", AGENTS)
    repo.write("manifests/templates.yaml", TEMPLATE)
    repo.write("manifests/jobs.yaml", job("onboard-alice"))
    for name, text in files.items():
        repo.write(f"manifests/{name}", text)
    repo.commit("manifests")


def test_a_bomb_exits_1_with_its_error(repo: GitRepo):
    seed(repo, **{"bomb.yaml": BOMB})

    result = georgebot("validate", "--repo", str(repo.root))

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    [line] = result.stdout.splitlines()
    assert line.startswith("manifests/bomb.yaml:6: -/-: the document has more than 100000 values")
    assert "GEORGE_LIMIT_NODES" in line
    assert result.stderr.startswith("invalid: 1 error in 1 file at ")


def test_a_bomb_on_disk_is_reported_as_json(repo: GitRepo):
    seed(repo)
    repo.write("manifests/bomb.yaml", BOMB)

    result = georgebot("validate", "--repo", str(repo.root), "--worktree", "--json")

    assert result.exit_code == 1
    [error] = json.loads(result.stdout)
    where = (error["file"], error["line"], error["kind"], error["name"])
    assert where == ("manifests/bomb.yaml", 6, "-", "-")


def test_a_runaway_template_exits_1_naming_the_job_and_the_limit(repo: GitRepo):
    loops = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    seed(repo, **{"loops.yaml": one_step(loops)})

    result = georgebot("validate", "--repo", str(repo.root))

    assert result.exit_code == 1
    [line] = result.stdout.splitlines()
    assert line.startswith("manifests/loops.yaml:16: Job/t-job: template `t`, step `go`, `run[1]` cannot be")
    assert "GEORGE_LIMIT_RENDER_WORK" in line
