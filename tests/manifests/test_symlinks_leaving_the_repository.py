"""Symlinks whose target leaves the repository (DESIGN.md): left out of the checkout, reported
as a manifest error naming the link at every sync of the revision, and harmless to the rest —
the files, the links that stay inside, the jobs."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from georgebot.cli import main
from georgebot.manifests import links
from georgebot.manifests.snapshot import Snapshot
from georgebot.manifests.source import ManifestSource, load_worktree
from tests.manifests.helpers import AGENTS, TEMPLATE, GitRepo, job

MakeSource = Callable[..., ManifestSource]

BAD = {  # link → target, each one leading out of the repository
    "tools/evil": "/etc/passwd",
    "tools/up": "../../outside",
    "a": "b",  # through b
    "b": "../x",
}
GOOD = {  # link → target, each one staying inside (`back` only through the folder link `nest`)
    "tools/alias": "create-account",
    "nest": "sub/inner",
    "back": "nest/../../tools",
}


def link(repo: GitRepo, path: str, target: str) -> None:
    file = repo.root / path
    file.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, file)


def seed(repo: GitRepo, *, bad: dict[str, str] = BAD) -> str:
    repo.write("manifests/agents.yaml", AGENTS)
    repo.write("manifests/templates/onboard.yaml", TEMPLATE)
    repo.write("manifests/jobs/alice.yaml", job("onboard-alice"))
    repo.write("tools/create-account", "#!/bin/sh\necho created\n", mode=0o755)
    repo.write("sub/inner/readme", "inside\n")
    for path, target in {**GOOD, **bad}.items():
        link(repo, path, target)
    return repo.commit("links in and out")


def errors_by_file(snapshot: Snapshot) -> dict[str, str]:
    return {e.file: e.message for e in snapshot.errors}


def test_checkout_keeps_the_files_and_inner_links_and_leaves_out_the_others(
    repo: GitRepo, make_source: MakeSource
):
    sha = seed(repo)

    folder = make_source(repo.root).checkout(sha)

    assert (folder / "tools" / "create-account").read_text() == "#!/bin/sh\necho created\n"
    assert os.access(folder / "tools" / "create-account", os.X_OK)
    assert (folder / "manifests" / "jobs" / "alice.yaml").is_file()
    for path, target in GOOD.items():
        assert os.readlink(folder / path) == target
    assert (folder / "tools" / "alias").read_text() == "#!/bin/sh\necho created\n"
    assert (folder / "back").resolve() == (folder / "tools").resolve()
    assert (folder / "nest" / "readme").read_text() == "inside\n"
    for path in BAD:
        assert not os.path.lexists(folder / path), f"{path} should be left out"


def test_sync_names_each_link_that_leaves_and_the_revision_still_applies(
    repo: GitRepo, make_source: MakeSource
):
    seed(repo)

    snapshot = make_source(repo.root).sync()

    found = errors_by_file(snapshot)
    assert set(found) == set(BAD)
    assert found["tools/evil"] == (
        "tools/evil is a symlink to /etc/passwd, outside the repository: it is left out of the "
        "checkout, so a step that runs or reads it fails; make it a relative link to a file "
        "inside the repository, or remove it"
    )
    assert found["tools/up"].startswith("tools/up is a symlink to ../../outside, outside the repository")
    assert found["b"].startswith("b is a symlink to ../x, outside the repository")
    assert found["a"].startswith(
        "a is a symlink to b, which leads outside the repository through b (a symlink to ../x)"
    )
    for error in snapshot.errors:
        assert (error.line, error.column, error.kind, error.name) == (None, None, "-", "-")
    # Nothing of the manifests is affected: no job is invalid and no file is held back.
    assert set(snapshot.jobs) == {"onboard-alice"}
    assert set(snapshot.templates) == {"onboard-employee"}
    assert snapshot.invalid_jobs == {}
    assert snapshot.broken_files == frozenset()


def test_the_errors_follow_each_revision_whatever_changed(repo: GitRepo, make_source: MakeSource):
    seed(repo, bad={})
    source = make_source(repo.root)
    assert source.sync().errors == ()

    # Only a tool changes, so the manifests' own snapshot is reused: the link is still seen.
    link(repo, "tools/evil", "/etc/passwd")
    repo.commit("a stray link")
    assert set(errors_by_file(source.sync())) == {"tools/evil"}

    repo.write("manifests/jobs/bob.yaml", job("onboard-bob", person="Bob"))
    repo.commit("another job")
    snapshot = source.sync()
    assert set(errors_by_file(snapshot)) == {"tools/evil"}
    assert set(snapshot.jobs) == {"onboard-alice", "onboard-bob"}

    repo.remove("tools/evil")
    repo.commit("remove the link")
    assert source.sync().errors == ()


def test_links_are_errors_beside_the_manifests_own_in_file_order(repo: GitRepo, make_source: MakeSource):
    seed(repo, bad={"tools/evil": "/etc/passwd"})
    repo.write("manifests/jobs/broken.yaml", "kind: [unclosed\n")
    repo.commit("a broken job file")

    snapshot = make_source(repo.root).sync()

    files = [e.file for e in snapshot.errors]
    assert files == ["manifests/jobs/broken.yaml", "tools/evil"]
    assert snapshot.broken_files == frozenset({"manifests/jobs/broken.yaml"})


def test_a_link_git_stores_but_no_file_system_can_make_does_not_stop_the_checkout(
    repo: GitRepo, make_source: MakeSource
):
    seed(repo, bad={})
    empty = repo.git("hash-object", "-w", "--stdin")  # the empty blob: a link to nothing
    repo.git("update-index", "--add", "--cacheinfo", f"120000,{empty},tools/nothing")
    repo.git("commit", "-q", "-m", "a link to nothing")
    sha = repo.git("rev-parse", "HEAD")

    folder = make_source(repo.root).checkout(sha)

    assert not os.path.lexists(folder / "tools" / "nothing")
    assert os.readlink(folder / "tools" / "alias") == "create-account"


def test_validate_shows_the_link_and_exits_1(
    repo: GitRepo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    seed(repo, bad={"tools/evil": "/etc/passwd"})
    monkeypatch.setenv("GEORGE_HOME", str(tmp_path / "home"))
    for name in ("GEORGE_REPO", "GEORGE_BRANCH", "GEORGE_PATH"):
        monkeypatch.delenv(name, raising=False)

    result = CliRunner().invoke(main, ["validate", "--repo", str(repo.root), "--json"])

    assert result.exit_code == 1
    [error] = json.loads(result.stdout)
    assert error == {
        "file": "tools/evil", "line": None, "column": None, "kind": "-", "name": "-",
        "message": links.issue(links.Escape("tools/evil", "/etc/passwd")).message,
    }


def test_worktree_reports_links_on_disk_but_not_ignored_ones(repo: GitRepo):
    seed(repo, bad={})
    repo.write(".gitignore", "venv/\n")
    link(repo, "venv/bin/python", "/usr/bin/python3")  # ignored: never committed
    link(repo, "tools/evil", "/etc/shadow")  # not committed yet

    snapshot = load_worktree(repo.root, "manifests", "#george")

    assert set(errors_by_file(snapshot)) == {"tools/evil"}
    assert errors_by_file(snapshot)["tools/evil"].startswith("tools/evil is a symlink to /etc/shadow")
    assert set(snapshot.jobs) == {"onboard-alice"}


def test_worktree_of_a_plain_folder_reports_its_links(tmp_path: Path):
    root = tmp_path / "plain"
    (root / "manifests").mkdir(parents=True)
    (root / "manifests" / "agents.yaml").write_text(AGENTS)
    os.symlink("../..", root / "manifests" / "up")

    snapshot = load_worktree(root, "manifests", "#george")

    assert set(errors_by_file(snapshot)) == {"manifests/up"}


@pytest.mark.parametrize(
    ("tree", "leaving"),
    [
        ({"x": "/abs"}, {"x"}),
        ({"x": ".."}, {"x"}),
        ({"d/x": ".."}, set()),  # the root itself is inside
        ({"d/x": "../../y"}, {"d/x"}),
        ({"d/x": "./e/../../f/"}, set()),
        ({"x": "y", "y": "z", "z": "/etc"}, {"x", "y", "z"}),
        ({"x": "x"}, set()),  # a loop reaches nothing
        ({"x": "y", "y": "x"}, set()),
        ({"n": "a/b/c", "x": "n/../../../y"}, set()),  # `..` after a folder link climbs from its target
        ({"n": "a/b", "x": "n/../../../y"}, {"x"}),
        ({"n": "..", "d/x": "../n/y"}, {"n", "d/x"}),
        ({"f": "file.txt/../.."}, {"f"}),  # as realpath judges it: a file is walked like a folder
    ],
)
def test_links_are_followed_through_the_tree_as_the_kernel_would(
    tree: dict[str, str], leaving: set[str]
):
    assert {escape.link for escape in links.leaving(tree)} == leaving


def test_an_escape_blames_the_link_whose_target_climbs_out():
    tree = {"n": "a/b", "x": "n/../../../y", "u": "..", "d/z": "../u/y"}

    found = {escape.link: escape for escape in links.leaving(tree)}

    assert found["x"] == links.Escape("x", "n/../../../y")  # n stays inside; x's own `..` leaves
    assert found["d/z"] == links.Escape("d/z", "../u/y", via="u", via_target="..")
    assert set(found) == {"x", "u", "d/z"}
