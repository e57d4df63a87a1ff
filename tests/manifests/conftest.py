"""Fixtures of the manifests tests: a Git repository in tmp_path, and sources to sync it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from georgebot.manifests.source import ManifestSource
from tests.manifests.helpers import GitRepo


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return GitRepo(tmp_path / "repo")


@pytest.fixture
def make_source(tmp_path: Path) -> Iterator[Callable[..., ManifestSource]]:
    """Builds sources with their home in tmp_path, and closes them after the test."""
    made: list[ManifestSource] = []

    def make(repo: str | Path, **kwargs: Any) -> ManifestSource:
        kwargs.setdefault("home", tmp_path / "home")
        source = ManifestSource(str(repo), **kwargs)
        made.append(source)
        return source

    yield make
    for source in made:
        source.close()
