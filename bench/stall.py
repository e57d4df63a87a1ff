"""The event loop's longest stall while George works.

    .venv/bin/python bench/stall.py [--jobs 2000] [--lock-seconds 10] [--check]

A heartbeat task sleeps 10 ms in a loop and records by how much each wake-up came late (the
gap beyond 10 ms): any synchronous work in the loop's thread (SQL, planning, a lock wait)
shows up as a gap. Two scenarios, each in a fresh process, SQLite, the real engine and the
shell executor:

(a) a commit of N jobs (default 2,000) of one `true` step each, settled: from the sync that
    creates them until every job has succeeded;
(b) while George runs jobs (100 jobs x 20 chained `true` steps), another process opens the
    same database file with sqlite3, takes the write lock (`BEGIN IMMEDIATE`), holds it for
    `--lock-seconds` and commits. Figures for the lock (gaps overlapping it) and for the whole
    scenario, until every job has succeeded (passes that fail are retried, as `run` would).

Target: no stall over 100 ms. Reports the longest stall and the 99th percentile gap. Prints
the figures and exits 0; with `--check`, exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import Source, chains, finish, table  # noqa: I001  (bench/ is on the path when a script runs)
from georgebot.agents import StepRunner
from georgebot.engine.ports import SystemClock
from georgebot.engine.service import Engine, EngineSettings
from georgebot.manifests.snapshot import Snapshot
from georgebot.model.status import JobStatus
from georgebot.store import Store, open_database

PERIOD = 0.010  # the heartbeat's sleep
TARGET_STALL = 0.100  # seconds
LOCKED_JOBS, LOCKED_STEPS = 100, 20
GIVE_UP = 120.0  # seconds: scenario (b) stops here even if jobs are left

LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print(time.monotonic(), flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
print(time.monotonic(), flush=True)
"""


def snapshot(sha: str, jobs: int, steps: int) -> Snapshot:
    return chains(jobs, steps, sha=sha * 40, max_steps=16)


class Heartbeat:
    """Sleeps PERIOD in a loop; each wake-up's lateness is a gap, noted with when it ended."""

    def __init__(self) -> None:
        self.gaps: list[tuple[float, float]] = []  # (end, seconds beyond PERIOD)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._beat())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _beat(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(PERIOD)
            after = time.monotonic()
            self.gaps.append((after, max(0.0, after - before - PERIOD)))


class Counting(logging.Handler):
    """Counts George's warnings and errors instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[f"{record.levelname}: {record.getMessage()[:60]}"] += 1


def quiet() -> Counting:
    handler = Counting()
    root = logging.getLogger("georgebot")
    root.addHandler(handler)
    root.propagate = False
    return handler


async def engine_on(work: Path, source: Source) -> tuple[Engine, StepRunner, Any]:
    db = open_database(f"sqlite:///{work / 'george.db'}")
    runner = StepRunner()
    await runner.start()
    engine = Engine(
        EngineSettings(home=work / "home"), store=Store(db), source=source, runner=runner, clock=SystemClock()
    )
    await engine.start()
    await engine.settle()  # the empty revision
    return engine, runner, db


async def many_jobs(jobs: int, work: Path, _lock_seconds: float) -> dict[str, Any]:
    source = Source(snapshot("0", 0, 1), work)
    engine, runner, db = await engine_on(work, source)
    commit = snapshot("1", jobs, 1)  # built by Git's side, off the loop in George
    heartbeat = Heartbeat()
    heartbeat.start()
    started = time.monotonic()
    source.snapshot = commit
    engine.wake(sync=True)
    await engine.settle(max_passes=100_000)
    elapsed = time.monotonic() - started
    await heartbeat.stop()
    ok = all(r.status is JobStatus.SUCCEEDED for r in engine.store.load_runs())
    await engine.close()
    await runner.close()
    db.close()
    return {"gaps": heartbeat.gaps, "seconds": elapsed, "ok": ok}


async def locked(jobs: int, work: Path, lock_seconds: float) -> dict[str, Any]:
    logged = quiet()
    source = Source(snapshot("0", 0, 1), work)
    engine, runner, db = await engine_on(work, source)
    commit = snapshot("2", LOCKED_JOBS, LOCKED_STEPS)
    heartbeat = Heartbeat()
    heartbeat.start()
    started = time.monotonic()
    source.snapshot = commit
    failed_passes: Counter[str] = Counter()

    async def drive() -> None:
        """Settles until no job is left, as `run` would keep passing after a failed one."""
        while time.monotonic() - started < GIVE_UP:
            try:
                await engine.settle(max_passes=100_000)
                if not engine.store.load_active():
                    return
            except Exception as e:
                failed_passes[f"{type(e).__name__}: {str(e).splitlines()[0][:60]}"] += 1
            await asyncio.sleep(0.2)

    driving = asyncio.create_task(drive())
    await asyncio.sleep(1.0)  # jobs under way
    locker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LOCKER,
        str(work / "george.db"),
        str(lock_seconds),
        stdout=asyncio.subprocess.PIPE,
    )
    assert locker.stdout is not None
    # The locker's own clock (system-wide): this loop may be too stalled to see the lines at once.
    lock_at = float(await locker.stdout.readline())
    release_at = float(await locker.stdout.readline())
    await locker.wait()
    await driving
    elapsed = time.monotonic() - started
    await heartbeat.stop()
    runs = engine.store.load_runs()
    await engine.close()
    await runner.close()
    db.close()
    return {
        "gaps": heartbeat.gaps,
        "lock": (lock_at, release_at),
        "seconds": elapsed,
        "after_release": elapsed - (release_at - started),
        "ok": all(r.status is JobStatus.SUCCEEDED for r in runs),
        "succeeded": sum(r.status is JobStatus.SUCCEEDED for r in runs),
        "failed_passes": dict(failed_passes),
        "logged": dict(logged.counts),
    }


def measure(which: str, jobs: int, work: str, lock_seconds: float) -> dict[str, Any]:
    """Runs in a fresh process."""
    fn = {"many": many_jobs, "locked": locked}[which]
    return asyncio.run(fn(jobs, Path(work), lock_seconds))


def summary(gaps: list[float]) -> tuple[float, float]:
    """(longest, 99th percentile)."""
    if len(gaps) < 2:
        return (max(gaps, default=0.0), max(gaps, default=0.0))
    return max(gaps), statistics.quantiles(gaps, n=100, method="inclusive")[98]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2000, help="jobs committed at once in (a)")
    parser.add_argument("--lock-seconds", type=float, default=10.0, help="how long (b) holds the lock")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp, spawn.Pool(1, maxtasksperchild=1) as pool:
        with tempfile.TemporaryDirectory(dir=tmp) as work:
            many = pool.apply(measure, ("many", args.jobs, work, args.lock_seconds))
        with tempfile.TemporaryDirectory(dir=tmp) as work:
            lock = pool.apply(measure, ("locked", 0, work, args.lock_seconds))

    lock_at, release_at = lock["lock"]
    during = [g for end, g in lock["gaps"] if end >= lock_at and end - g - PERIOD <= release_at]
    windows = [
        (
            f"(a) {args.jobs} jobs committed, until all succeeded ({many['seconds']:.1f} s)",
            [g for _, g in many["gaps"]],
        ),
        (f"(b) during the {args.lock_seconds:.0f} s write lock", during),
        (f"(b) whole scenario, until all succeeded ({lock['seconds']:.1f} s)", [g for _, g in lock["gaps"]]),
    ]
    rows = [("", "longest stall", "p99 gap", "beats", "target", "")]
    missed = []
    for label, gaps in windows:
        longest, p99 = summary(gaps)
        ok = longest <= TARGET_STALL
        if not ok:
            missed.append(label.split(",")[0].split(" (")[0])
        rows.append(
            (
                label,
                f"{longest * 1000:.0f} ms",
                f"{p99 * 1000:.1f} ms",
                f"{len(gaps)}",
                f"<= {TARGET_STALL * 1000:.0f} ms",
                "met" if ok else "MISSED",
            )
        )
    print(f"stall.py: a heartbeat every {PERIOD * 1000:.0f} ms; a gap is how late it woke (SQLite)")
    table(rows)
    print(f"(a) every job succeeded: {many['ok']}")
    print(
        f"(b) {LOCKED_JOBS} jobs x {LOCKED_STEPS} steps; every job succeeded: {lock['ok']} "
        f"({lock['succeeded']}); done {lock['after_release']:.1f} s after the lock was released"
    )
    for what, counts in (("failed passes", lock["failed_passes"]), ("logged", lock["logged"])):
        for text, n in sorted(counts.items(), key=lambda kv: -kv[1]):
            print(f"    {what}: {n} x {text}")
    finish(missed, check=args.check)


if __name__ == "__main__":
    main()
