"""Templates name George's own server as `{{ george.url }}` and agents grant it as `self`, so
the demo's health checks reach the George that runs them on whatever PORT, never whatever
listens on 8080."""

from __future__ import annotations

from pathlib import Path

from georgebot.config import Settings
from georgebot.manifests.source import load_worktree
from tests.manifests.helpers import ROOT


def test_the_demo_checks_the_george_that_runs_it_on_any_port(monkeypatch) -> None:
    monkeypatch.setenv("PORT", "9191")
    monkeypatch.delenv("GEORGE_HOST", raising=False)
    monkeypatch.delenv("GEORGE_URL", raising=False)
    url = Settings().george_url
    assert url == "http://127.0.0.1:9191"  # PORT set: George listens on 0.0.0.0, reached locally
    snapshot = load_worktree(ROOT, "manifests", "#george", george_url=url)
    assert snapshot.valid, snapshot.errors
    checks = {(job, s.http.url) for job, j in snapshot.jobs.items() for s in j.steps if s.http}
    assert checks == {
        ("onboard-alice", "http://127.0.0.1:9191/healthz?user=Alice%20Smith"),
        ("onboard-omar", "http://127.0.0.1:9191/healthz?user=Omar%20Haddad"),
        ("rotate-billing-api", "http://127.0.0.1:9191/healthz"),
    }
    for agent in ("it-helper", "secrets-bot"):
        spec = snapshot.agents[agent].spec
        assert spec.allows_url("http://127.0.0.1:9191/healthz")
        assert not spec.allows_url("http://127.0.0.1:8080/healthz")


def test_george_url_names_the_server_behind_a_proxy(monkeypatch) -> None:
    monkeypatch.setenv("GEORGE_URL", "https://george.corp.example/")
    assert Settings().george_url == "https://george.corp.example"


def test_a_variable_may_not_be_named_george(tmp_path: Path) -> None:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "t.yaml").write_text(
        "apiVersion: george/v1\nkind: TaskTemplate\nmetadata: {name: t}\nspec:\n"
        "  variables: {george: {type: string}}\n"
        "  steps: [{name: a, ask: {message: hi, approvers: [U1]}}]\n"
    )
    snapshot = load_worktree(tmp_path, "manifests", "#george")
    assert any("variable `george` is George's own" in e.message for e in snapshot.errors)
