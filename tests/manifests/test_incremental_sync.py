"""Syncing is incremental: an unchanged revision parses nothing, a new one parses only the
files that changed, and jobs whose job and template did not change are not rendered again."""

from __future__ import annotations

from collections.abc import Callable

from georgebot.manifests.source import ManifestSource
from tests.manifests.helpers import AGENTS, TEMPLATE, GitRepo, job

MakeSource = Callable[..., ManifestSource]


def seed(repo: GitRepo, jobs: int = 5) -> None:
    repo.write("manifests/agents.yaml", AGENTS)
    repo.write("manifests/templates/onboard.yaml", TEMPLATE)
    for n in range(jobs):
        repo.write(f"manifests/jobs/job-{n}.yaml", job(f"onboard-{n}", person=f"Person {n}"))
    repo.commit("seed")


def test_an_unchanged_revision_returns_the_same_snapshot_without_parsing(
    repo: GitRepo, make_source: MakeSource
):
    seed(repo)
    source = make_source(repo.root)
    first = source.sync()
    parsed = source.parsed_files

    again = source.sync()

    assert again is first
    assert source.parsed_files == parsed == 7


def test_a_new_commit_parses_only_the_changed_file(repo: GitRepo, make_source: MakeSource):
    seed(repo)
    source = make_source(repo.root)
    first = source.sync()
    parsed, renders = source.parsed_files, source.renders
    repo.write("manifests/jobs/job-3.yaml", job("onboard-3", person="Someone Else"))
    sha = repo.commit("rename person 3")

    second = source.sync()

    assert second.revision.sha == sha
    assert source.parsed_files == parsed + 1
    assert source.renders == renders + 1
    assert second.jobs["onboard-3"].params["name"] == "Someone Else"
    assert second.jobs["onboard-1"] is first.jobs["onboard-1"]


def test_a_template_change_renders_its_jobs_again(repo: GitRepo, make_source: MakeSource):
    seed(repo, jobs=3)
    source = make_source(repo.root)
    source.sync()
    renders = source.renders
    repo.write("manifests/templates/onboard.yaml", TEMPLATE.replace("Welcome", "Hello"))
    repo.commit("friendlier")

    snapshot = source.sync()

    assert source.renders == renders + 3
    assert snapshot.jobs["onboard-0"].steps[1].instructions == (
        "Hello Person 0 to <person_value name=\"team\">payments</person_value>.")


def test_a_commit_outside_the_manifests_reuses_everything_with_the_new_revision(
    repo: GitRepo, make_source: MakeSource
):
    seed(repo)
    source = make_source(repo.root)
    first = source.sync()
    repo.write("tools/create-account", "#!/bin/sh\n")
    sha = repo.commit("a tool")

    second = source.sync()

    assert second.revision.sha == sha
    assert second.jobs is first.jobs
    assert source.parsed_files == 7


def test_a_deleted_file_removes_its_jobs_and_a_new_one_adds_them(
    repo: GitRepo, make_source: MakeSource
):
    seed(repo, jobs=2)
    source = make_source(repo.root)
    source.sync()
    repo.remove("manifests/jobs/job-0.yaml")
    repo.write("manifests/jobs/job-9.yml", job("onboard-9"))
    repo.commit("swap")

    snapshot = source.sync()

    assert set(snapshot.jobs) == {"onboard-1", "onboard-9"}
    assert "manifests/jobs/job-0.yaml" not in snapshot.broken_files


def test_fixing_a_file_clears_its_errors(repo: GitRepo, make_source: MakeSource):
    seed(repo, jobs=1)
    repo.write("manifests/jobs/job-0.yaml", "kind: Job\nmetadata: {name: onboard-0\n")
    repo.commit("typo")
    source = make_source(repo.root)
    broken = source.sync()
    seed(repo, jobs=1)

    fixed = source.sync()

    assert broken.broken_files == {"manifests/jobs/job-0.yaml"}
    assert fixed.valid and not fixed.broken_files
    assert set(fixed.jobs) == {"onboard-0"}
