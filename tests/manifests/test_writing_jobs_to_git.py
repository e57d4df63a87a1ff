"""Jobs started and cancelled from Slack are commits: written in George's own clone under
GEORGE_HOME (never in the operator's work tree), checked as `validate` checks them, authored
as the person who asked, and pushed to the followed branch or, with a prefix, to a branch for
review. Real repositories, made with the git command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from georgebot import errors
from georgebot.manifests.gitrepo import commit_new_repository
from georgebot.manifests.source import ManifestSource
from georgebot.manifests.writing import Author, JobWriter, review_link
from tests.manifests.helpers import AGENTS, TEMPLATE, GitRepo, job

ALEX = Author("Alex Kim", "alex@example.com")


@pytest.fixture
def remote(tmp_path: Path) -> GitRepo:
    """The team's manifests repository, as a bare remote."""
    work = GitRepo(tmp_path / "seed")
    work.write("manifests/agents.yaml", AGENTS)
    work.write("manifests/templates/onboard.yml", TEMPLATE)
    work.write("manifests/jobs/alice.yaml", job("onboard-alice") + "---\n" + job("onboard-bea", "Bea"))
    work.commit("seed")
    bare = GitRepo(tmp_path / "remote.git", bare=True)
    work.git("push", "-q", str(bare.root), "main")
    return bare


def writer(remote: GitRepo, tmp_path: Path, **kwargs: object) -> JobWriter:
    return JobWriter(str(remote.root), branch="main", path="manifests", home=tmp_path / "home",
                     **kwargs)  # type: ignore[arg-type]


def test_a_job_started_from_slack_is_a_commit_by_that_person_that_george_syncs(
    remote: GitRepo, tmp_path: Path
) -> None:
    written = writer(remote, tmp_path).start(
        name="onboard-carol", template="onboard-employee", params={"name": "Carol Diaz", "team": "payments"},
        author=ALEX,
    )
    assert (written.branch, written.file) == ("main", "manifests/jobs/onboard-carol.yaml")
    assert not written.review
    assert remote.git("log", "-1", "--format=%an <%ae>|%s", "main") == "Alex Kim <alex@example.com>|" \
        "Start job onboard-carol (onboard-employee)"
    with ManifestSource(str(remote.root), home=tmp_path / "george") as source:
        snapshot = source.sync()
    assert snapshot.jobs["onboard-carol"].steps[0].run == ["tools/create-account", "Carol Diaz"]
    assert snapshot.job_authors["onboard-carol"] == "alex@example.com"  # the four-eyes rule's author


def test_a_taken_name_and_an_invalid_job_commit_nothing_and_say_why(remote: GitRepo, tmp_path: Path) -> None:
    jobs = writer(remote, tmp_path)
    head = remote.git("rev-parse", "main")
    with pytest.raises(errors.InputError, match=r"exists already, in manifests/jobs/alice\.yaml"):
        jobs.start(name="onboard-alice", template="onboard-employee", params={"name": "A"}, author=ALEX)
    with pytest.raises(errors.ManifestError, match="onboard-dan"):
        jobs.start(name="onboard-dan", template="onboard-employe", params={"name": "Dan"}, author=ALEX)
    with pytest.raises(errors.InputError, match="not a job name"):
        jobs.start(name="Bad_Name", template="onboard-employee", params={}, author=ALEX)
    assert remote.git("rev-parse", "main") == head
    # the failed write left nothing behind for the next one
    jobs.start(name="onboard-dan", template="onboard-employee", params={"name": "Dan"}, author=ALEX)
    assert "onboard-dan.yaml" in remote.git("show", "--stat", "--format=", "main")


def test_with_a_prefix_the_commit_goes_to_a_branch_for_review(remote: GitRepo, tmp_path: Path) -> None:
    head = remote.git("rev-parse", "main")
    written = writer(remote, tmp_path, branch_prefix="george/").start(
        name="onboard-erin", template="onboard-employee", params={"name": "Erin"}, author=ALEX)
    assert (written.branch, written.review) == ("george/onboard-erin", True)
    assert remote.git("rev-parse", "main") == head
    assert remote.git("log", "-1", "--format=%an", "george/onboard-erin") == "Alex Kim"


def test_cancel_removes_a_job_file_of_its_own_and_refuses_a_shared_one(
    remote: GitRepo, tmp_path: Path
) -> None:
    jobs = writer(remote, tmp_path)
    jobs.start(name="onboard-fay", template="onboard-employee", params={"name": "Fay"}, author=ALEX)
    removed = jobs.cancel("onboard-fay", ALEX)
    assert removed.file == "manifests/jobs/onboard-fay.yaml"
    assert "onboard-fay" not in remote.git("ls-tree", "-r", "--name-only", "main")
    with pytest.raises(errors.InputError, match="holds other documents"):
        jobs.cancel("onboard-alice", ALEX)
    with pytest.raises(errors.InputError, match="no job named nobody"):
        jobs.cancel("nobody", ALEX)


def test_a_repository_made_by_init_takes_the_push_and_its_checkout_follows(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "manifests").mkdir()
    (demo / "manifests" / "agents.yaml").write_text(AGENTS)
    (demo / "manifests" / "onboard.yml").write_text(TEMPLATE)
    commit_new_repository(demo, "demo")
    JobWriter(str(demo), branch="main", path="manifests", home=tmp_path / "home").start(
        name="onboard-gus", template="onboard-employee", params={"name": "Gus"}, author=ALEX)
    assert (demo / "manifests" / "jobs" / "onboard-gus.yaml").is_file()  # the operator's checkout is current


@pytest.mark.parametrize(("repo", "link"), [
    ("https://x-access-token:s3cret@github.com/acme/ops-manifests.git",
     "https://github.com/acme/ops-manifests/compare/main...george/onboard-ivy?expand=1"),
    ("git@github.com:acme/ops-manifests.git",
     "https://github.com/acme/ops-manifests/compare/main...george/onboard-ivy?expand=1"),
    ("https://gitlab.com/acme/platform/ops.git",
     "https://gitlab.com/acme/platform/ops/-/merge_requests/new?merge_request%5Bsource_branch%5D="
     "george%2Fonboard-ivy&merge_request%5Btarget_branch%5D=main"),
    ("https://git.corp.example/ops.git", None),
])
def test_a_branch_for_review_comes_with_the_link_that_opens_its_pull_request(
    repo: str, link: str | None
) -> None:
    assert review_link(repo, "main", "george/onboard-ivy") == link  # never the token


def test_two_georges_sharing_a_home_write_at_once_and_both_commit(remote: GitRepo, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    first, second = writer(remote, tmp_path), writer(remote, tmp_path)  # one GEORGE_HOME, one clone
    names = [f"onboard-{n}" for n in ("jo", "kai", "lu", "mo", "ned", "oz")]
    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(
            lambda n: (first if names.index(n) % 2 else second).start(
                name=n, template="onboard-employee", params={"name": n.title()}, author=ALEX),
            names))
    assert {w.job for w in done} == set(names)
    listed = remote.git("ls-tree", "-r", "--name-only", "main")
    assert all(f"manifests/jobs/{n}.yaml" in listed for n in names)
