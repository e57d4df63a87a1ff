"""The four-eyes rule: whoever committed a job (the Git author of its file, matched to a chat
user by e-mail) cannot approve its steps, unless its template says `allowSelfApproval: true`;
they are told why and who else can. The author comes from Git: the last commit that changed
the job's file."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from georgebot.engine.service import Decision, Engine
from georgebot.manifests.source import ManifestSource
from georgebot.model.status import StepStatus
from georgebot.store import Store
from tests.engine.harness import FakeSource, job, request_of, step
from tests.manifests.helpers import AGENTS, TEMPLATE, GitRepo
from tests.manifests.helpers import job as job_document

ALEX, SAM = "U01ALEX", "U01SAM"
PEOPLE = {"alex@example.com": ALEX, "sam@example.com": SAM}


async def user_of(email: str) -> str | None:
    return PEOPLE.get(email)


def commit_by_alex(source: FakeSource, *, allow: bool = False) -> None:
    rendered = job("j", step("gate", ask={"approvers": [ALEX, SAM]}))
    source.commit(rendered.model_copy(update={"allow_self_approval": allow}))
    source.snapshot = replace(source.snapshot, job_authors={"j": "alex@example.com"})


async def test_the_author_of_a_job_cannot_approve_its_steps_and_is_told_who_can(
    engine: Engine, source: FakeSource, sqlite_store: Store
) -> None:
    commit_by_alex(source)
    await engine.settle()
    request = request_of(sqlite_store, "j", "gate")

    refused = await engine.decide(request, user=ALEX, approve=True, user_of=user_of)
    assert refused.decision is Decision.OWN_JOB
    assert "four-eyes" in refused.why and SAM in refused.why and "alex@example.com" in refused.why
    assert sqlite_store.load_runs(["j"])[0].step("gate").status is StepStatus.WAITING
    assert "SelfApproval" in [e.reason for e in sqlite_store.events("j")]

    counted = await engine.decide(request, user=SAM, approve=True, user_of=user_of)
    assert counted.decision is Decision.APPROVED


async def test_a_template_may_allow_self_approval(
    engine: Engine, source: FakeSource, sqlite_store: Store
) -> None:
    commit_by_alex(source, allow=True)
    await engine.settle()
    verdict = await engine.decide(request_of(sqlite_store, "j", "gate"), user=ALEX, approve=True,
                                  user_of=user_of)
    assert verdict.decision is Decision.APPROVED


def test_a_jobs_author_is_the_last_committer_of_its_file(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    repo.write("manifests/agents.yaml", AGENTS)
    repo.write("manifests/templates/onboard.yml", TEMPLATE)
    repo.write("manifests/jobs/alice.yaml", job_document("onboard-alice"))
    repo.commit("add onboarding")
    repo.write("manifests/jobs/bob.yaml", job_document("onboard-bob"))
    repo.git("add", "-A")
    repo.git("-c", "user.name=Sam", "-c", "user.email=sam@example.com", "commit", "-q",
             "--author", "Sam <sam@example.com>", "-m", "add bob")
    with ManifestSource(str(repo.root), home=tmp_path / "home") as source:
        snapshot = source.sync()
    assert snapshot.job_authors == {"onboard-alice": "test@example.invalid", "onboard-bob": "sam@example.com"}


async def test_a_template_that_names_retriers_lets_only_them_retry(
    engine: Engine, source: FakeSource, runner, sqlite_store: Store
) -> None:
    from tests.engine.harness import fail

    runner.on("deploy", fail("exit 1"))
    rendered = job("j", step("deploy", retries=0))
    source.commit(rendered.model_copy(update={"retriers": ("S0SRE",)}))
    await engine.settle()

    async def sre(wanted: frozenset[str]) -> frozenset[str]:
        return frozenset({"S0SRE"}) & wanted

    async def nobody(wanted: frozenset[str]) -> frozenset[str]:
        return frozenset()

    refused = await engine.retry("j", actor=f"user:{ALEX}", groups_of=nobody)
    assert (refused.steps, refused.message) == ((), "j: only S0SRE can retry deploy")
    allowed = await engine.retry("j", actor=f"user:{SAM}", groups_of=sre)
    assert allowed.steps == ("deploy",)


async def test_without_retriers_only_people_in_the_jobs_channel_retry(
    engine: Engine, source: FakeSource, runner, sqlite_store: Store
) -> None:
    from tests.engine.harness import fail

    runner.on("deploy", fail("exit 1"))
    source.commit(job("j", step("deploy", retries=0), channel="#deploys"))
    await engine.settle()
    asked: list[str] = []

    async def not_a_member(channel: str) -> bool:
        asked.append(channel)
        return False

    refused = await engine.retry("j", actor=f"user:{ALEX}", in_channel=not_a_member)
    assert (refused.steps, refused.message) == ((), "j: only people in #deploys can retry deploy")
    assert asked == ["#deploys"]

    async def member(channel: str) -> bool:
        return True

    assert (await engine.retry("j", actor=f"user:{SAM}", in_channel=member)).steps == ("deploy",)
