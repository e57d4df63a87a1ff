"""Three `georgebot run` processes on one database (PostgreSQL, or SQLite on one machine) and
one Slack workspace (the
local Slack, which hands Socket Mode events round-robin to the connections as Slack does):
every job gets one run and one card, every step that succeeded ran once, an approval counts
once, and SIGKILL of the leading George hands its leadership and its steps to the others."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa

from georgebot.devslack import LocalSlack
from georgebot.store import open_database
from tests.devslack.support import ALEX, GEORGE_CHANNEL
from tests.e2e.conftest import MakeRepo
from tests.e2e.running import free_port

pytestmark = pytest.mark.slow
T = TypeVar("T")

JOBS = 12
MANIFESTS = """\
apiVersion: george/v1
kind: AgentSpec
metadata: {name: worker}
spec:
  capabilities: [{shell: {commands: [tools/work]}}]
  maxConcurrentSteps: 50
---
apiVersion: george/v1
kind: TaskTemplate
metadata: {name: three}
spec:
  steps:
    - {name: one, agent: worker, run: [tools/work, one]}
    - {name: two, agent: worker, needs: [one], run: [tools/work, two]}
    - {name: three, agent: worker, needs: [two], run: [tools/work, three]}
---
apiVersion: george/v1
kind: TaskTemplate
metadata: {name: approved}
spec:
  steps:
    - {name: ok, ask: {approvers: [U01ALEX], message: "go ahead?"}}
    - {name: after, agent: worker, needs: [ok], run: [tools/work, after]}
---
apiVersion: george/v1
kind: Job
metadata: {name: asks}
spec: {template: approved}
"""
# Each attempt leaves a line, so a step that ran twice shows it.
TOOL = '#!/bin/sh\necho "$GEORGE_ATTEMPT" >> "$GEORGE_OUTPUT_DIR/$1"\nsleep 1.5\n'


def health_of(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return dict(json.load(answer))
    except urllib.error.HTTPError as e:  # 503: not ready, and says why
        return dict(json.load(e))


async def until(predicate: Callable[[], T | None], what: str, within: float = 60) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not (found := predicate()):
        if loop.time() > deadline:
            raise AssertionError(f"not {what} within {within}s")
        await asyncio.sleep(0.2)
    return found


@pytest.fixture
async def slack() -> AsyncIterator[LocalSlack]:
    async with LocalSlack(port=free_port()) as local:
        yield local


async def test_three_georges_share_the_work_and_survive_the_leaders_sigkill(
    make_repo: MakeRepo, database_url: str, slack: LocalSlack, tmp_path: Path
) -> None:
    jobs = "".join(f"---\napiVersion: george/v1\nkind: Job\nmetadata: {{name: job-{i:02d}}}\n"
                   f"spec: {{template: three}}\n" for i in range(JOBS))
    repo = make_repo({"manifests/all.yaml": MANIFESTS + jobs, "tools/work": TOOL})
    home = tmp_path / "home"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "GEORGE_", "ANTHROPIC_"))}
    base |= {"GEORGE_REPO": str(repo), "GEORGE_DATABASE_URL": database_url, "GEORGE_HOME": str(home),
             "GEORGE_SANDBOX": "off", "GEORGE_LEASE_SECONDS": "2", "GEORGE_RECONCILE_SECONDS": "5",
             "SLACK_BOT_TOKEN": slack.bot_token, "SLACK_APP_TOKEN": slack.app_token,
             "SLACK_API_URL": slack.api_url}
    logs = [(tmp_path / f"george-{n}.log").open("w") for n in range(3)]
    ports = [free_port() for _ in logs]
    georges = [await asyncio.to_thread(
        subprocess.Popen, [sys.executable, "-m", "georgebot", "run"], cwd=tmp_path,
        env={**base, "PORT": str(port)}, stdout=subprocess.DEVNULL, stderr=log)
        for log, port in zip(logs, ports, strict=True)]
    db = open_database(database_url)

    def rows(query: str) -> list[sa.Row[tuple[object, ...]]]:
        with db.engine.connect() as conn:
            return list(conn.execute(sa.text(query)))

    def cards() -> Counter[str]:
        names = [f"job-{i:02d}" for i in range(JOBS)] + ["asks"]
        return Counter(n for m in slack.messages(GEORGE_CHANNEL) for n in names
                       if (m.text or "").startswith(f"{n}: "))  # a card's text: "job-01: Running — …"

    try:
        await until(lambda: slack.connections == 3, "all connected", within=90)
        await until(lambda: len(cards()) == JOBS + 1, "every job's card posted")
        await until(lambda: rows("SELECT 1 FROM step_runs WHERE status = 'Succeeded'"), "a step done")

        [(leader,)] = rows("SELECT holder FROM leases WHERE name = 'sync'")
        [(pid,)] = rows(f"SELECT pid FROM replicas WHERE id = '{leader}'")
        killed = next(g for g in georges if g.pid == pid)
        killed.send_signal(signal.SIGKILL)
        await asyncio.to_thread(killed.wait, 10)

        await until(lambda: rows(f"SELECT 1 FROM leases WHERE name = 'sync' AND holder <> '{leader}'"),
                    "the Git sync led by another George")
        await until(lambda: len(rows("SELECT 1 FROM job_runs WHERE status = 'Succeeded'")) == JOBS,
                    "every job of three steps done")
        health = [await asyncio.to_thread(health_of, port)
                  for george, port in zip(georges, ports, strict=True) if george is not killed]
        assert sorted(h["leader"] for h in health) == [False, True], health
        assert all(h["ok"] for h in health), health
        shown = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "georgebot", "status"], cwd=tmp_path, env=base,
            capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        [new_leader] = [h["replica"] for h in health if h["leader"]]
        mine = [line for line in shown.stdout.splitlines() if line.startswith(f"george    {new_leader} on")]
        assert len(mine) == 1 and "; leads the Git sync" in mine[0], shown.stdout

        request = await until(lambda: next(
            (m for card in slack.messages(GEORGE_CHANNEL) for m in slack.replies(GEORGE_CHANNEL, card.ts)
             if "go ahead?" in (m.text or "")), None), "the approval request posted")
        await slack.react(ALEX, GEORGE_CHANNEL, request.ts, "white_check_mark")
        await until(lambda: rows("SELECT 1 FROM job_runs WHERE name = 'asks' AND status = 'Succeeded'"),
                    "the approved job done")

        assert rows("SELECT name, count(*) FROM job_runs GROUP BY name HAVING count(*) > 1") == []
        assert set(cards().values()) == {1}, cards()
        # One request message, the one approved (edited in place since: its text now says so).
        asked = [m.ts for m in slack.replies(GEORGE_CHANNEL, request.thread_ts or request.ts)
                 if "go ahead?" in json.dumps(m.blocks or []) + (m.text or "")]
        assert asked == [request.ts]
        assert rows("SELECT count(*) FROM votes") == [(1,)]
        recovered = {(job, step) for job, step in rows(
            "SELECT job, step FROM events WHERE reason = 'Recovered' AND step IS NOT NULL")}
        for job, step, attempts in rows("SELECT j.name, s.name, s.attempts FROM step_runs s "
                                        "JOIN job_runs j ON j.id = s.job_id WHERE s.name <> 'ok'"):
            ran = [int(n) for n in (home / "outputs" / str(job) / str(step)).read_text().split()]
            # Each attempt ran at most once, and the one that succeeded is the last. (An attempt
            # claimed by the killed George may never have started its tool.)
            assert sorted(set(ran)) == ran and ran[-1] == attempts, (job, step, ran, attempts)
            assert attempts == 1 or (job, step) in recovered, (job, step, attempts)
    finally:
        db.close()
        for george in georges:
            if george.poll() is None:
                george.send_signal(signal.SIGTERM)
        for george in georges:
            try:
                await asyncio.to_thread(george.wait, 30)
            except subprocess.TimeoutExpired:
                george.kill()
        for log in logs:
            log.close()
            told = await asyncio.to_thread(Path(log.name).read_text)
            assert "Traceback" not in told, told
