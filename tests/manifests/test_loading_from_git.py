"""Loading manifests from Git at a revision: local repositories, clones of URLs, branches,
checkouts, and the configuration errors an operator can fix."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from georgebot.errors import ConfigError, TemporaryError
from georgebot.manifests.source import ManifestSource
from tests.manifests.helpers import AGENTS, TEMPLATE, GitRepo, job

MakeSource = Callable[..., ManifestSource]


def seed(repo: GitRepo, message: str = "add onboarding") -> str:
    repo.write("manifests/agents.yaml", AGENTS)
    repo.write("manifests/templates/onboard.yml", TEMPLATE)
    repo.write("manifests/jobs/alice.yaml", job("onboard-alice"))
    return repo.commit(message)


def test_loads_the_valid_objects_and_names_the_revision(repo: GitRepo, make_source: MakeSource):
    sha = seed(repo)

    snapshot = make_source(repo.root).sync()

    assert snapshot.valid
    assert snapshot.revision.sha == sha
    assert snapshot.revision.message == "add onboarding"
    assert snapshot.revision.committed_at is not None
    assert snapshot.revision.committed_at.utcoffset() is not None
    assert set(snapshot.agents) == {"it-helper"}
    assert set(snapshot.templates) == {"onboard-employee"}
    alice = snapshot.jobs["onboard-alice"]
    assert alice.steps[0].run == ["tools/create-account", "Alice Smith"]
    assert alice.channel == "#onboarding"
    assert snapshot.job_files == {"onboard-alice": "manifests/jobs/alice.yaml"}


def test_uncommitted_edits_are_not_desired_state(repo: GitRepo, make_source: MakeSource):
    seed(repo)
    repo.write("manifests/jobs/alice.yaml", job("onboard-alice", person="Mallory"))
    repo.write("manifests/jobs/bob.yaml", job("onboard-bob"))

    snapshot = make_source(repo.root).sync()

    assert set(snapshot.jobs) == {"onboard-alice"}
    assert snapshot.jobs["onboard-alice"].params["name"] == "Alice Smith"


def test_only_yaml_files_under_the_manifests_path_are_read(repo: GitRepo, make_source: MakeSource):
    seed(repo)
    repo.write("manifests/README.md", "not: [a manifest")
    repo.write("manifests/jobs/notes.txt", "kind: Nonsense")
    repo.write("elsewhere/job.yaml", job("onboard-elsewhere"))
    repo.commit("other files")

    snapshot = make_source(repo.root).sync()

    assert snapshot.valid
    assert set(snapshot.jobs) == {"onboard-alice"}


def test_repo_dot_finds_the_work_tree_from_a_subfolder(
    repo: GitRepo, make_source: MakeSource, monkeypatch: pytest.MonkeyPatch
):
    seed(repo)
    monkeypatch.chdir(repo.root / "manifests" / "jobs")

    assert set(make_source(".").sync().jobs) == {"onboard-alice"}


def test_follows_the_branch_it_is_given(repo: GitRepo, make_source: MakeSource):
    seed(repo)
    repo.git("checkout", "-q", "-b", "staging")
    repo.write("manifests/jobs/bob.yaml", job("onboard-bob", person="Bob Jones"))
    repo.commit("bob, on staging only")
    repo.git("checkout", "-q", "main")

    assert set(make_source(repo.root, branch="staging").sync().jobs) == {
        "onboard-alice", "onboard-bob"
    }
    assert set(make_source(repo.root).sync().jobs) == {"onboard-alice"}


def test_a_url_is_cloned_and_fetched_on_each_sync(tmp_path: Path, make_source: MakeSource):
    remote = GitRepo(tmp_path / "remote.git", bare=True)
    work = GitRepo(tmp_path / "work")
    work.git("remote", "add", "origin", str(remote.root))
    seed(work)
    work.git("push", "-q", "origin", "main")
    source = make_source(f"file://{remote.root}")

    first = source.sync()
    work.write("manifests/jobs/bob.yaml", job("onboard-bob", person="Bob Jones"))
    pushed = work.commit("add bob")
    work.git("push", "-q", "origin", "main")
    second = source.sync()

    assert set(first.jobs) == {"onboard-alice"}
    assert second.revision.sha == pushed
    assert set(second.jobs) == {"onboard-alice", "onboard-bob"}
    assert list((tmp_path / "home" / "clones").iterdir())


def test_a_failed_fetch_after_a_clone_is_temporary(tmp_path: Path, make_source: MakeSource):
    remote = GitRepo(tmp_path / "remote.git", bare=True)
    work = GitRepo(tmp_path / "work")
    work.git("remote", "add", "origin", str(remote.root))
    seed(work)
    work.git("push", "-q", "origin", "main")
    make_source(f"file://{remote.root}").sync()
    remote.root.rename(tmp_path / "gone.git")

    with pytest.raises(TemporaryError, match="cannot fetch"):
        make_source(f"file://{remote.root}").sync()


def test_a_url_that_cannot_be_cloned_is_a_config_error(tmp_path: Path, make_source: MakeSource):
    with pytest.raises(ConfigError, match=r"cannot clone .*GEORGE_REPO"):
        make_source(f"file://{tmp_path}/missing.git").sync()


def test_a_folder_outside_git_is_a_config_error(tmp_path: Path, make_source: MakeSource):
    (tmp_path / "plain").mkdir()
    with pytest.raises(ConfigError, match=r"not inside a Git repository.*GEORGE_REPO"):
        make_source(tmp_path / "plain").sync()


def test_a_missing_branch_is_a_config_error_naming_the_branches(
    repo: GitRepo, make_source: MakeSource
):
    seed(repo)
    words = r"'release' not found .*branches are: main.*GEORGE_BRANCH"
    with pytest.raises(ConfigError, match=words):
        make_source(repo.root, branch="release").sync()


def test_a_repository_without_commits_says_to_commit(repo: GitRepo, make_source: MakeSource):
    with pytest.raises(ConfigError, match="no commits yet"):
        make_source(repo.root).sync()


def test_a_missing_manifests_folder_is_a_config_error(repo: GitRepo, make_source: MakeSource):
    seed(repo)
    with pytest.raises(ConfigError, match=r"no folder 'deploy'.*GEORGE_PATH"):
        make_source(repo.root, path="deploy").sync()


def test_checkout_materialises_the_commit_with_executable_tools(
    repo: GitRepo, make_source: MakeSource, tmp_path: Path
):
    repo.write("tools/create-account", "#!/bin/sh\necho created\n", mode=0o755)
    first = seed(repo)
    repo.write("tools/create-account", "#!/bin/sh\necho changed\n", mode=0o755)
    source = make_source(repo.root)

    folder = source.checkout(first)

    assert folder == tmp_path / "home" / "checkouts" / first
    tool = folder / "tools" / "create-account"
    assert tool.read_text() == "#!/bin/sh\necho created\n"
    assert os.access(tool, os.X_OK)
    assert (folder / "manifests" / "agents.yaml").is_file()
    assert source.checkout(first) == folder
    assert [p.name for p in folder.parent.iterdir()] == [first]


def test_checkout_of_an_unknown_commit_is_a_config_error(repo: GitRepo, make_source: MakeSource):
    seed(repo)
    with pytest.raises(ConfigError, match="cannot check out"):
        make_source(repo.root).checkout("0" * 40)
