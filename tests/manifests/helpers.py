"""Helpers for the manifests tests: real Git repositories made with the git command line,
and small manifests to commit into them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


class GitRepo:
    def __init__(self, root: Path, *, bare: bool = False) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main", *(["--bare"] if bare else []))

    def git(self, *args: str) -> str:
        env = {**os.environ, **GIT_ENV}
        done = subprocess.run(
            ["git", "-c", "commit.gpgsign=false", *args],
            cwd=self.root, env=env, check=True, capture_output=True, text=True,
        )
        return done.stdout.strip()

    def write(self, path: str, text: str, *, mode: int | None = None) -> None:
        file = self.root / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
        if mode is not None:
            file.chmod(mode)

    def remove(self, path: str) -> None:
        (self.root / path).unlink()

    def commit(self, message: str = "change manifests") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")


AGENTS = """\
apiVersion: george/v1
kind: AgentSpec
metadata: {name: it-helper}
spec:
  capabilities:
    - shell: {commands: [tools/create-account]}
    - http: {hosts: [127.0.0.1]}
    - slack: {channels: ["#it"]}
"""

TEMPLATE = """\
apiVersion: george/v1
kind: TaskTemplate
metadata: {name: onboard-employee}
spec:
  channel: "#onboarding"
  variables:
    name: {type: string, required: true}
    team: {fuzzy: true}
  steps:
    - name: create-account
      agent: it-helper
      run: [tools/create-account, "{{ name }}"]
    - name: welcome
      agent: it-helper
      needs: [create-account]
      instructions: Welcome {{ name }} to {{ team }}.
      done_when: A welcome for {{ name }} is posted.
"""


def job(name: str, person: str = "Alice Smith", **extra: str) -> str:
    lines = [
        "apiVersion: george/v1",
        "kind: Job",
        f"metadata: {{name: {name}}}",
        "spec:",
        "  template: onboard-employee",
        f"  params: {{name: {person}, team: payments}}",
        *(f"  {k}: {v}" for k, v in extra.items()),
    ]
    return "\n".join(lines) + "\n"
