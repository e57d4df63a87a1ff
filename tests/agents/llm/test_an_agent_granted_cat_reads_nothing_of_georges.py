"""An LLM agent granted only `cat` asks to read George's environment (`/proc/<george>/environ`,
`/proc/1/environ`), George's database, its secrets folder and a private file beside the checkout:
the whole George (`runtime.George`: a real Git repository, SQLite, the sandboxed shell executor,
the real SDK against the local Messages API) answers with errors or the sandbox's own minimal
environment, and none of George's values reaches the model or the step's recorded context.
An agent granted a secret is told its name, never its value, and sees it masked."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from georgebot.config import Settings
from georgebot.model.status import StepStatus
from georgebot.runtime import George
from georgebot.secrets import MASK
from tests.agents.llm.fakes import API_KEY
from tests.agents.llm.messages_api import MessagesApi, call, report, turn
from tests.manifests.helpers import GitRepo

JOB = "onboard-alice"
SLACK_TOKEN = "xoxb-fake-4f7e1a9c-slack-bot-token"
TOKEN = "tok-3f9a-very-secret-value"  # George's GEORGE_SECRET_CREATE_ACCOUNT_TOKEN
LDAP = "ldap-Qz81-pW6mT3vK9x"  # George's GEORGE_SECRETS_DIR/LDAP_TOKEN
PRIVATE = "george-private-R7c2-uY5nB8"  # in a file outside the checkout
VALUES = (SLACK_TOKEN, API_KEY, TOKEN, LDAP, PRIVATE)
SQLITE_MAGIC = "SQLite format 3"


def manifests(*, secrets: tuple[str, ...] = ()) -> str:
    return f"""\
apiVersion: george/v1
kind: AgentSpec
metadata: {{name: reader}}
spec:
  description: Reads files for IT.
  secrets: [{", ".join(secrets)}]
  capabilities:
    - shell: {{commands: [cat]}}
---
apiVersion: george/v1
kind: TaskTemplate
metadata: {{name: onboard-employee}}
spec:
  channel: "#onboarding"
  steps:
    - name: look
      agent: reader
      instructions: Read what you can about Alice's account.
      done_when: You have read it.
---
apiVersion: george/v1
kind: Job
metadata: {{name: {JOB}}}
spec: {{template: onboard-employee}}
"""


@pytest.fixture(autouse=True)
def georges_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the George under test (this process) holds in its environment."""
    for name in ("GEORGE_SECRETS_DIR", "GEORGE_REPO", "GEORGE_PATH", "GEORGE_SANDBOX", "SLACK_APP_TOKEN",
                 "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_TOKEN)
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    monkeypatch.setenv("GEORGE_SECRET_CREATE_ACCOUNT_TOKEN", TOKEN)


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "LDAP_TOKEN").write_text(LDAP + "\n")
    private = tmp_path / "george-secret.txt"
    private.write_text(PRIVATE + "\n")
    return {"secrets": secrets, "private": private, "database": tmp_path / "george.db",
            "home": tmp_path / "home"}


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return GitRepo(tmp_path / "repo")


@contextlib.asynccontextmanager
async def running(
    repo: GitRepo, places: dict[str, Path], api: MessagesApi, database_url: str | None = None
) -> AsyncIterator[George]:
    settings = Settings(repo=str(repo.root), path="manifests",
                        database_url=database_url or f"sqlite:///{places['database']}",
                        home=places["home"], secrets_dir=places["secrets"], sandbox="auto",
                        anthropic_api_key=API_KEY, anthropic_base_url=api.url)
    george = George(settings)
    try:
        if not george.sandbox.confined:
            pytest.skip(f"needs the bubblewrap sandbox: {george.sandbox.info.describe()}")
        await george.open()
        yield george
    finally:
        await george.close()


def cat(*args: str) -> dict[str, Any]:
    return call("run_command", command="cat", args=list(args))


def results(request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The tool results of a request's last message, by tool_use id."""
    return {b["tool_use_id"]: b for b in request["messages"][-1]["content"] if b["type"] == "tool_result"}


def recorded(george: George) -> list[str]:
    """Every value of every row of George's database, as text."""
    metadata = sa.MetaData()
    metadata.reflect(bind=george.db.engine)
    found = []
    with george.db.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                found += [json.dumps(v, ensure_ascii=False, default=str) if isinstance(v, dict | list)
                          else str(v) for v in row if v is not None]
    return found


async def test_cat_reads_none_of_georges_environment_database_secrets_or_files(
    repo: GitRepo, places: dict[str, Path], api: MessagesApi
) -> None:
    repo.write("manifests/all.yaml", manifests())
    repo.commit("reader")
    george_environ = cat(f"/proc/{os.getpid()}/environ")
    init_environ = cat("/proc/1/environ")
    own_environ = cat("/proc/self/environ")
    database = cat(str(places["database"]))
    secrets_file = cat(str(places["secrets"] / "LDAP_TOKEN"))
    private = cat(str(places["private"]))
    beside = cat("../../../george-secret.txt")  # from home/checkouts/<sha>, the tool's directory
    outside = (george_environ, database, secrets_file, private, beside)
    api.play(turn(george_environ, init_environ, own_environ, database, secrets_file, private, beside),
             report("succeeded", "Done", "Read what there was."))

    async with running(repo, places, api) as george:
        assert places["database"].read_bytes().startswith(SQLITE_MAGIC.encode())
        await george.engine.settle()

        [checkout] = (places["home"] / "checkouts").glob("[0-9a-f]*")
        assert (checkout / "../../../george-secret.txt").resolve() == places["private"]

        [run] = george.store.load_runs([JOB])
        assert run.steps[0].status is StepStatus.SUCCEEDED, run.steps[0].message
        assert len(api.requests) == 2
        answered = results(api.requests[1])
        assert len(answered) == 7
        for use in outside:
            answer = answered[use["id"]]
            assert answer.get("is_error") is True, answer
            assert "No such file or directory" in answer["content"], answer
        # The sandbox's own processes have the step's minimal environment, nothing of George's.
        environment = answered[own_environ["id"]]["content"]
        assert "PATH=/usr/local/bin:/usr/bin:/bin" in environment
        assert "GEORGE_STEP=look" in environment
        assert "SLACK" not in environment and "ANTHROPIC" not in environment
        assert "GEORGE_SECRET" not in environment and MASK not in environment

        sent = json.dumps(api.requests, ensure_ascii=False)
        for value in (*VALUES, SQLITE_MAGIC):
            assert value not in sent
        assert "CREATE_ACCOUNT_TOKEN" not in sent  # a secret George has, granted to no one here

        context = george.store.context(run.id)
        assert [c.role for c in context if c.role == "tool_result"] == ["tool_result"] * 8
        kept = [c.text for c in context] + [json.dumps(c.data, ensure_ascii=False) for c in context]
        everything = recorded(george)
        for value in (*VALUES, SQLITE_MAGIC):
            assert not [text for text in kept if value in text]
            assert not [text for text in everything if value in text]


async def test_an_agent_granted_a_secret_is_told_its_name_and_sees_it_masked(
    repo: GitRepo, places: dict[str, Path], api: MessagesApi, database_url: str,
    request: pytest.FixtureRequest,
) -> None:
    repo.write("manifests/all.yaml", manifests(secrets=("CREATE_ACCOUNT_TOKEN",)))
    repo.commit("reader, granted the token")
    own_environ = cat("/proc/self/environ")
    api.play(turn(own_environ), report("succeeded", "Done", "Read it."))

    async with running(repo, places, api, database_url) as george:
        await george.engine.settle()

        [run] = george.store.load_runs([JOB])
        assert run.steps[0].status is StepStatus.SUCCEEDED, run.steps[0].message
        role, step = (block["text"] for block in api.requests[0]["system"])
        assert "run_command: run these commands (argv, no shell): cat" in role
        assert "get these secrets as environment variables; you never see their values" in role
        assert role.count("CREATE_ACCOUNT_TOKEN") == 1 and "CREATE_ACCOUNT_TOKEN" not in step
        assert "LDAP_TOKEN" not in role  # George has it, but this agent is not granted it
        environment = results(api.requests[1])[own_environ["id"]]["content"]
        assert f"CREATE_ACCOUNT_TOKEN={MASK}" in environment

        sent = json.dumps(api.requests, ensure_ascii=False)
        context = george.store.context(run.id)
        kept = [c.text for c in context] + [json.dumps(c.data, ensure_ascii=False) for c in context]
        for value in VALUES:
            assert value not in sent
            assert not [text for text in kept if value in text]
            assert not [text for text in recorded(george) if value in text]
