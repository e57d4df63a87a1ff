"""Two Georges started at the same moment on one empty database, SQLite or PostgreSQL: both
upgrade the schema without a crash, and every job gets one run whose step runs once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from georgebot.model.status import JobStatus
from georgebot.store import Store, open_database
from georgebot.store.database import create
from tests.e2e.conftest import MakeRepo

pytestmark = pytest.mark.slow

JOBS = 30
AGENT = """\
apiVersion: george/v1
kind: AgentSpec
metadata: {name: worker}
spec:
  capabilities: [{shell: {commands: [tools/work]}}]
  maxConcurrentSteps: 16
---
apiVersion: george/v1
kind: TaskTemplate
metadata: {name: once}
spec:
  steps: [{name: work, agent: worker, run: [tools/work]}]
"""
TOOL = '#!/bin/sh\necho "ran $GEORGE_ATTEMPT" >> "$GEORGE_OUTPUT_DIR/ran"\n'


def test_two_georges_at_once_make_one_run_per_job_and_run_each_step_once(
    make_repo: MakeRepo, database_url: str, tmp_path: Path
) -> None:
    jobs = "---\n".join(f"apiVersion: george/v1\nkind: Job\nmetadata: {{name: job-{i}}}\n"
                        f"spec: {{template: once}}\n" for i in range(JOBS))
    repo = make_repo({"manifests/all.yaml": AGENT, "manifests/jobs.yaml": jobs, "tools/work": TOOL})
    env = {**os.environ, "GEORGE_REPO": str(repo), "GEORGE_DATABASE_URL": database_url,
           "GEORGE_HOME": str(tmp_path / "home"), "GEORGE_SANDBOX": "off"}
    command = [sys.executable, "-m", "georgebot", "reconcile", "--wait", "--timeout", "60"]
    georges = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    ended = [g.communicate(timeout=120) for g in georges]

    for george, (_, err) in zip(georges, ended, strict=True):
        assert george.returncode == 0, err
    db = open_database(database_url)
    try:
        with db.engine.connect() as conn:
            runs = Counter(name for (name,) in conn.execute(sa.text("SELECT name FROM job_runs")))
        finished = Store(db).load_runs()
    finally:
        db.close()
    assert runs == {f"job-{i}": 1 for i in range(JOBS)}
    assert {r.name: r.status for r in finished} == {f"job-{i}": JobStatus.SUCCEEDED for i in range(JOBS)}
    for i in range(JOBS):
        assert (tmp_path / "home" / "outputs" / f"job-{i}" / "ran").read_text() == "ran 1\n"


def test_a_database_from_a_newer_george_is_a_one_line_error(database_url: str, tmp_path: Path) -> None:
    open_database(database_url).close()
    db = create(database_url)
    with db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    db.close()

    shown = subprocess.run([sys.executable, "-m", "georgebot", "reconcile"], cwd=tmp_path,
                           env={**os.environ, "GEORGE_DATABASE_URL": database_url,
                                "GEORGE_REPO": str(tmp_path)},
                           capture_output=True, text=True, timeout=60)

    assert shown.returncode == 2, shown.stderr
    assert "Traceback" not in shown.stderr
    assert "was upgraded by a newer George (schema 9999; this one knows up to 0005)" in shown.stderr
