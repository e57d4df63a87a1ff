"""A database that another process holds locked is a temporary condition: a step whose tool
finished keeps its outcome and writes it once the lock is gone, runs only once and uses up no
retry, and the event loop keeps turning meanwhile (store work runs on its own thread)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from georgebot.engine.ports import Done
from georgebot.model.status import JobStatus, StepStatus
from georgebot.store import Store, open_database
from tests.engine.at_rest import eventually
from tests.engine.harness import FakeSource, ScriptedRunner, job, make_engine, step


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "george.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    db = open_database(f"sqlite:///{db_path}", busy_ms=50)  # give up on a lock quickly
    yield Store(db)
    db.close()


HOLDER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=5)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("COMMIT")
"""


class Lock:
    """Another process holding SQLite's write lock until `release()`."""

    def __init__(self, db_path: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", HOLDER, str(db_path)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None and self.process.stdout.readline().strip() == "locked"

    def release(self) -> None:
        assert self.process.stdin is not None
        self.process.communicate("\n", timeout=10)  # closes both pipes
        assert self.process.returncode == 0


def lock(db_path: Path) -> Lock:
    return Lock(db_path)


@pytest.mark.parametrize("writes_output", [True, False], ids=["its-output-waits", "its-outcome-waits"])
async def test_an_outcome_that_meets_a_locked_database_is_written_later_not_run_again(
        store: Store, db_path: Path, clock, tmp_path: Path, writes_output: bool) -> None:
    source, runner = FakeSource(), ScriptedRunner()
    if not writes_output:
        runner.on("a", lambda task: Done("ok"))  # nothing written before the outcome
    gate = runner.gates["a"] = asyncio.Event()
    engine = make_engine(store, source, runner, clock, tmp_path / "home")
    await engine.start()
    try:
        source.commit(job("j", step("a", retries=0), step("b", needs=("a",))))
        await engine.reconcile_once()
        assert engine.supervisor.count == 1

        other = lock(db_path)
        gate.set()  # the tool finishes while the database is locked
        beats = 0
        while engine.writable:  # the loop turns while the write waits on the store's thread
            beats += 1
            await asyncio.sleep(0.01)
        assert beats > 0
        assert store.load_runs(["j"])[0].step("a").status is StepStatus.RUNNING  # type: ignore[union-attr]
        other.release()

        await eventually(lambda: engine.writable and engine.supervisor.count == 0, what="written")
        await engine.settle()
    finally:
        await engine.close()
    run = store.load_runs(["j"])[0]
    a = run.step("a")
    assert a is not None and (a.status, a.attempts, a.failures) == (StepStatus.SUCCEEDED, 1, 0)
    assert run.status is JobStatus.SUCCEEDED
    assert runner.order("j") == ["a", "b"]  # each ran once
    if writes_output:
        assert [c.text for c in store.context(run.id) if c.step == "a"] == ["a attempt 1"]


async def test_a_pass_that_meets_a_locked_database_tries_again(
        store: Store, db_path: Path, clock, tmp_path: Path) -> None:
    source = FakeSource()
    engine = make_engine(store, source, ScriptedRunner(), clock, tmp_path / "home")
    await engine.start()
    loop = asyncio.create_task(engine.run_forever())
    try:
        other = lock(db_path)
        source.commit(job("j", step("a")))
        engine.wake(sync=True)
        await eventually(lambda: not engine.writable, what="told the database is busy")
        other.release()
        await eventually(lambda: engine.writable and bool(store.load_runs(["j"]))
                         and store.load_runs(["j"])[0].status is JobStatus.SUCCEEDED, what="done")
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await engine.close()
