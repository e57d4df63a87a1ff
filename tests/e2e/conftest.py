"""A real manifests repository in a temporary folder, committed with git."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

GIT_USER = ["-c", "user.name=Test", "-c", "user.email=test@example.com"]


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *GIT_USER, *args], cwd=repo, check=True, capture_output=True)


MakeRepo = Callable[[dict[str, str]], Path]


@pytest.fixture
def make_repo(tmp_path: Path) -> MakeRepo:
    """Writes the files (executable when under tools/), commits them, returns the repo."""

    def make(files: dict[str, str]) -> Path:
        repo = tmp_path / "ops"
        for name, text in files.items():
            path = repo / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            if name.startswith("tools/"):
                path.chmod(0o755)
        if not (repo / ".git").exists():
            git(repo, "init", "-q", "-b", "main")
        git(repo, "add", ".")
        git(repo, "commit", "-qm", "manifests")
        return repo

    return make
