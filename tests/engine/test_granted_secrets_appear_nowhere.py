"""A secret an AgentSpec grants reaches its steps' tools and nothing else George keeps: the whole
George (`runtime.George`, built from Settings: a real Git repository, SQLite or PostgreSQL, the
sandboxed shell executor) runs tools that print their secrets everywhere they can, then every
row of every table and every log record is searched for the values. A step whose agent is not
granted a secret never sees it; one George lacks, or holds too short to mask, is Blocked and
says why; a person's retry runs it once the secret exists; `validate` warns and exits 0."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from georgebot.cli import main
from georgebot.config import Settings
from georgebot.model.status import JobStatus, Reason, StepStatus
from georgebot.runtime import George
from georgebot.secrets import MASK, MIN_LENGTH
from georgebot.store import StepState
from tests.manifests.helpers import GitRepo

TOKEN = "tok-3f9a-very-secret-value"  # CREATE_ACCOUNT_TOKEN, a file in GEORGE_SECRETS_DIR
DIRECTORY = "dir-81c2-qM7vX9pL4kT2wZ"  # DIRECTORY_TOKEN, George's GEORGE_SECRET_DIRECTORY_TOKEN
VALUES = (TOKEN, DIRECTORY)
JOB = "onboard-alice"


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# The tools prove they got the right value by its hash, so the value is in no file of the
# repository or of its checkouts: wherever it turns up, George put it there.
CREATE_ACCOUNT = f"""#!/bin/sh
got=$(printf %s "$CREATE_ACCOUNT_TOKEN" | sha256sum | cut -d' ' -f1)
[ "$got" = "{sha256(TOKEN)}" ] || {{ echo "CREATE_ACCOUNT_TOKEN is not the secret" >&2; exit 3; }}
echo "created the account with $CREATE_ACCOUNT_TOKEN"
echo "debug: token=$CREATE_ACCOUNT_TOKEN" >&2
echo "$CREATE_ACCOUNT_TOKEN" > "$GEORGE_OUTPUT_DIR/token.txt"
"""
SYNC_DIRECTORY = f"""#!/bin/sh
got=$(printf %s "$DIRECTORY_TOKEN" | sha256sum | cut -d' ' -f1)
[ "$got" = "{sha256(DIRECTORY)}" ] || {{ echo "DIRECTORY_TOKEN is not the secret" >&2; exit 3; }}
echo "synced with $DIRECTORY_TOKEN and $CREATE_ACCOUNT_TOKEN"
echo "$DIRECTORY_TOKEN" >&2
echo "$DIRECTORY_TOKEN" > "$GEORGE_OUTPUT_DIR/directory.txt"
"""
REVOKED = """#!/bin/sh
echo "checking the token"
echo "the directory refused token $CREATE_ACCOUNT_TOKEN: revoked" >&2
exit 1
"""
# A long error line whose first bytes are the secret: the tail George keeps of stderr cuts it.
LONG_ERROR = """#!/bin/sh
printf '%s' "$CREATE_ACCOUNT_TOKEN" >&2
head -c 1010 /dev/zero | tr '\\0' 'x' >&2
echo >&2
exit 1
"""
SHOW_ENV = """#!/bin/sh
echo "token=${CREATE_ACCOUNT_TOKEN:-unset}"
echo "george=${GEORGE_SECRET_DIRECTORY_TOKEN:-unset}"
env
"""
TOOLS = {
    "tools/create-account": CREATE_ACCOUNT,
    "tools/sync-directory": SYNC_DIRECTORY,
    "tools/revoked": REVOKED,
    "tools/long-error": LONG_ERROR,
    "tools/show-env": SHOW_ENV,
}


def manifests(*steps: str, secrets: tuple[str, ...] = ("CREATE_ACCOUNT_TOKEN",)) -> str:
    """Agent it-helper (granted `secrets`) and agent plain (granted none), both may run every
    tool; a template with `steps` (flow-style YAML lines) and job onboard-alice."""
    commands = ", ".join(TOOLS)
    lines = "\n".join(f"    - {s}" for s in steps)
    return f"""\
apiVersion: george/v1
kind: AgentSpec
metadata: {{name: it-helper}}
spec:
  secrets: [{", ".join(secrets)}]
  capabilities:
    - shell: {{commands: [{commands}]}}
---
apiVersion: george/v1
kind: AgentSpec
metadata: {{name: plain}}
spec:
  capabilities:
    - shell: {{commands: [{commands}]}}
---
apiVersion: george/v1
kind: TaskTemplate
metadata: {{name: onboard-employee}}
spec:
  channel: "#onboarding"
  steps:
{lines}
---
apiVersion: george/v1
kind: Job
metadata: {{name: {JOB}}}
spec: {{template: onboard-employee}}
"""


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """George's own environment: one secret as GEORGE_SECRET_*, no LLM, nothing else of the host's."""
    for name in ("ANTHROPIC_API_KEY", "GEORGE_SECRETS_DIR", "GEORGE_REPO", "GEORGE_BRANCH", "GEORGE_PATH",
                 "GEORGE_SANDBOX", "GEORGE_SECRET_CREATE_ACCOUNT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GEORGE_SECRET_DIRECTORY_TOKEN", DIRECTORY)


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "CREATE_ACCOUNT_TOKEN").write_text(TOKEN + "\n")  # as a platform mounts it
    return folder


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "repo")
    for path, text in TOOLS.items():
        repo.write(path, text, mode=0o755)
    return repo


@pytest.fixture
def settings(repo: GitRepo, database_url: str, secrets_dir: Path, tmp_path: Path) -> Settings:
    return Settings(repo=str(repo.root), path="manifests", database_url=database_url,
                    home=tmp_path / "home", secrets_dir=secrets_dir, sandbox="auto")


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[George]:
    george = George(settings)
    try:
        await george.open()
        yield george
    finally:
        await george.close()


def steps_of(george: George) -> dict[str, StepState]:
    [run] = george.store.load_runs([JOB])
    return {s.name: s for s in run.steps}


def pieces(value: str) -> set[str]:
    """The value and every part of it long enough to give it away (as long as the shortest
    secret George accepts)."""
    return {value[i:i + MIN_LENGTH] for i in range(len(value) - MIN_LENGTH + 1)}


def everything_stored(george: George) -> list[tuple[str, str, str]]:
    """(table, column, text) for every non-empty value of every row of every table."""
    engine = george.db.engine
    metadata = sa.MetaData()
    metadata.reflect(bind=engine)
    assert {"events", "context", "outbox", "step_runs", "job_runs"} <= set(metadata.tables)
    found = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                for column, value in row._mapping.items():
                    if value is None:
                        continue
                    if isinstance(value, bytes | memoryview):
                        text = bytes(value).decode("utf-8", errors="replace")
                    elif isinstance(value, dict | list):
                        text = json.dumps(value, ensure_ascii=False, default=str)
                    else:
                        text = str(value)
                    found.append((table.name, str(column), text))
    return found


def assert_stored_nowhere(george: George, *values: str) -> list[tuple[str, str, str]]:
    stored = everything_stored(george)
    for value in values:
        leaks = [(t, c, text) for t, c, text in stored if any(p in text for p in pieces(value))]
        assert not leaks, f"a secret (or part of it) is stored in: {leaks}"
    return stored


def assert_logged_nowhere(caplog: pytest.LogCaptureFixture, *values: str) -> None:
    for record in caplog.records:
        message = record.getMessage()
        assert not any(v in message for v in values), f"logged: {message}"
    assert not any(v in caplog.text for v in values), caplog.text


async def test_a_granted_secret_reaches_the_tool_and_is_masked_in_all_george_keeps(
    settings: Settings, repo: GitRepo, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    repo.write("manifests/all.yaml", manifests(
        "{name: create-account, agent: it-helper, run: [tools/create-account, Alice]}",
        "{name: sync-directory, agent: it-helper, needs: [create-account], run: [tools/sync-directory]}",
        secrets=("CREATE_ACCOUNT_TOKEN", "DIRECTORY_TOKEN"),
    ))
    repo.commit("onboard alice")
    caplog.set_level(logging.DEBUG)

    async with running(settings) as george:
        await george.engine.settle()

        steps = steps_of(george)
        assert {n: s.status for n, s in steps.items()} == {
            "create-account": StepStatus.SUCCEEDED, "sync-directory": StepStatus.SUCCEEDED,
        }, {n: s.message for n, s in steps.items()}
        stored = assert_stored_nowhere(george, *VALUES)
        [run] = george.store.load_runs([JOB])
        outputs = {c.step: c.text for c in george.store.context(run.id) if c.role == "output"}
        assert outputs["create-account"] == (
            f"created the account with {MASK}\ndebug: token={MASK}"
        )
        assert outputs["sync-directory"] == f"synced with {MASK} and {MASK}\n{MASK}"
        assert any(t == "outbox" and f"created the account with {MASK}" in text for t, _, text in stored)

        # George's own log records pass the same mask, whoever writes them.
        logging.getLogger("georgebot.engine.service").warning("a tool said %s", TOKEN)
        try:
            raise RuntimeError(f"the directory said {DIRECTORY}")
        except RuntimeError:
            logging.getLogger("georgebot.agents.shell").exception("a step failed")
    assert_logged_nowhere(caplog, *VALUES)
    assert f"a tool said {MASK}" in caplog.text and f"the directory said {MASK}" in caplog.text

    # The tools had the real values: they wrote them where a tool may write.
    outputs_dir = tmp_path / "home" / "outputs"
    assert [p.read_text() for p in outputs_dir.rglob("token.txt")] == [TOKEN + "\n"]
    assert [p.read_text() for p in outputs_dir.rglob("directory.txt")] == [DIRECTORY + "\n"]


async def test_a_tool_that_fails_printing_its_secret_fails_with_the_secret_masked(
    settings: Settings, repo: GitRepo, caplog: pytest.LogCaptureFixture
) -> None:
    repo.write("manifests/all.yaml", manifests(
        "{name: create-account, agent: it-helper, retries: 0, run: [tools/revoked]}",
    ))
    repo.commit("onboard alice")
    caplog.set_level(logging.DEBUG)

    async with running(settings) as george:
        await george.engine.settle()

        step = steps_of(george)["create-account"]
        assert (step.status, step.reason) == (StepStatus.FAILED, Reason.EXIT_CODE)
        assert step.message == f"tools/revoked exited with 1: the directory refused token {MASK}: revoked"
        failed = [e for e in george.store.events(JOB) if e.to_status == StepStatus.FAILED.value]
        assert failed and all(f"token {MASK}: revoked" in e.message for e in failed)
        assert george.store.load_runs([JOB])[0].status is JobStatus.FAILED
        stored = assert_stored_nowhere(george, *VALUES)
        printed = f"checking the token\nthe directory refused token {MASK}: revoked"
        assert ("context", "text", printed) in stored
    assert_logged_nowhere(caplog, *VALUES)


async def test_a_secret_cut_by_the_error_line_limit_leaves_no_part_of_it(
    settings: Settings, repo: GitRepo
) -> None:
    repo.write("manifests/all.yaml", manifests(
        "{name: create-account, agent: it-helper, retries: 0, run: [tools/long-error]}",
    ))
    repo.commit("onboard alice")

    async with running(settings) as george:
        await george.engine.settle()

        step = steps_of(george)["create-account"]
        assert (step.status, step.reason) == (StepStatus.FAILED, Reason.EXIT_CODE)
        assert step.message == "tools/long-error exited with 1"  # the cut line is left out whole
        assert_stored_nowhere(george, *VALUES)


async def test_a_step_whose_agent_is_not_granted_the_secret_does_not_get_it(
    settings: Settings, repo: GitRepo
) -> None:
    repo.write("manifests/all.yaml", manifests(
        "{name: look, agent: plain, run: [tools/show-env]}",
        "{name: look-granted, agent: it-helper, run: [tools/show-env]}",
    ))
    repo.commit("look around")

    async with running(settings) as george:
        await george.engine.settle()

        steps = steps_of(george)
        assert {s.status for s in steps.values()} == {StepStatus.SUCCEEDED}
        [run] = george.store.load_runs([JOB])
        outputs = {c.step: c.text for c in george.store.context(run.id) if c.role == "output"}
        plain = outputs["look"].splitlines()
        assert plain[:2] == ["token=unset", "george=unset"]
        assert not [line for line in plain if "SECRET" in line or "TOKEN" in line or MASK in line]
        # The same tool, run by the granted agent: the grant is what made the difference.
        granted = outputs["look-granted"].splitlines()
        assert granted[:2] == [f"token={MASK}", "george=unset"]
        assert f"CREATE_ACCOUNT_TOKEN={MASK}" in granted
        assert not [line for line in granted if "DIRECTORY_TOKEN" in line or "GEORGE_SECRET" in line]
        assert_stored_nowhere(george, *VALUES)


async def test_a_secret_george_lacks_blocks_the_step_until_it_exists_and_a_person_retries(
    settings: Settings, repo: GitRepo, secrets_dir: Path, tmp_path: Path
) -> None:
    (secrets_dir / "CREATE_ACCOUNT_TOKEN").unlink()
    repo.write("manifests/all.yaml", manifests(
        "{name: create-account, agent: it-helper, run: [tools/create-account, Alice]}",
    ))
    repo.commit("onboard alice")

    async with running(settings) as george:
        await george.engine.settle()

        step = steps_of(george)["create-account"]
        assert (step.status, step.reason) == (StepStatus.BLOCKED, Reason.CAPABILITY_MISSING)
        assert "secret CREATE_ACCOUNT_TOKEN" in step.message
        assert str(secrets_dir / "CREATE_ACCOUNT_TOKEN") in step.message
        assert "GEORGE_SECRET_CREATE_ACCOUNT_TOKEN" in step.message
        assert step.attempts == 1 and step.next_attempt_at is None
        assert george.store.load_runs([JOB])[0].status is JobStatus.BLOCKED
        assert not list((tmp_path / "home").rglob("token.txt"))  # the tool never ran

        (secrets_dir / "CREATE_ACCOUNT_TOKEN").write_text(TOKEN + "\n")
        await george.engine.retry(JOB, actor="cli:test")
        await george.engine.settle()

        step = steps_of(george)["create-account"]
        assert step.status is StepStatus.SUCCEEDED, step.message
        assert george.store.load_runs([JOB])[0].status is JobStatus.SUCCEEDED
        assert any(e.actor == "cli:test" for e in george.store.events(JOB))
        [run] = george.store.load_runs([JOB])
        outputs = [c.text for c in george.store.context(run.id, "create-account") if c.role == "output"]
        assert outputs == [f"created the account with {MASK}\ndebug: token={MASK}"]
        assert_stored_nowhere(george, *VALUES)


async def test_a_secret_too_short_to_mask_is_refused(
    settings: Settings, repo: GitRepo, secrets_dir: Path, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    short = "Sh0rt!7"
    assert len(short) == MIN_LENGTH - 1
    (secrets_dir / "CREATE_ACCOUNT_TOKEN").write_text(short + "\n")
    repo.write("manifests/all.yaml", manifests(
        "{name: create-account, agent: it-helper, run: [tools/create-account, Alice]}",
    ))
    repo.commit("onboard alice")
    caplog.set_level(logging.INFO)

    async with running(settings) as george:
        refused_at_start = [m for r in caplog.records if "CREATE_ACCOUNT_TOKEN" in (m := r.getMessage())]
        await george.engine.settle()

        step = steps_of(george)["create-account"]
        assert (step.status, step.reason) == (StepStatus.BLOCKED, Reason.CAPABILITY_MISSING)
        assert f"shorter than {MIN_LENGTH} characters, too short to be masked safely" in step.message
        assert "secret CREATE_ACCOUNT_TOKEN" in step.message and short not in step.message
        assert not list((tmp_path / "home").rglob("token.txt"))  # the tool never ran
    assert len(refused_at_start) == 1 and f"shorter than {MIN_LENGTH} characters" in refused_at_start[0]
    assert_logged_nowhere(caplog, short)


def test_validate_warns_of_a_granted_secret_george_lacks_and_exits_0(
    repo: GitRepo, secrets_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GEORGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GEORGE_SECRETS_DIR", str(secrets_dir))
    (secrets_dir / "SHORT_TOKEN").write_text("Zq9!x\n")
    repo.write("manifests/all.yaml", manifests(
        "{name: create-account, agent: it-helper, run: [tools/create-account, Alice]}",
        secrets=("CREATE_ACCOUNT_TOKEN", "DIRECTORY_TOKEN", "LDAP_TOKEN", "SHORT_TOKEN"),
    ))
    repo.commit("onboard alice")

    result = CliRunner().invoke(main, ["validate", "--repo", str(repo.root)], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("valid: 2 agents, 1 template, 1 job at ")
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2, result.stderr
    missing, short = warnings
    assert "AgentSpec/it-helper" in missing and "George has no secret LDAP_TOKEN" in missing
    assert str(secrets_dir / "LDAP_TOKEN") in missing and "GEORGE_SECRET_LDAP_TOKEN" in missing
    assert "Blocked: CapabilityMissing (secret LDAP_TOKEN)" in missing
    assert "AgentSpec/it-helper" in short and "secret SHORT_TOKEN" in short
    assert f"shorter than {MIN_LENGTH} characters" in short
    for value in (*VALUES, "Zq9!x"):
        assert value not in result.stdout and value not in result.stderr
