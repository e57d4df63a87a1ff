"""Engine throughput, CPU and SQL per step, and idle cost.

    .venv/bin/python bench/engine.py [--jobs 200] [--serial-jobs 40] [--rounds 3] [--check]

Runs N jobs x 5 chained `run` steps (`true`) through the real engine (SQLite, the shell
executor, leases, the event log) and the same subprocesses through a bare asyncio loop that
commits one SQLite row per step (the floor): first 16 steps at once, then one at a time (40
jobs x 5). Each side runs in a fresh process; wall time and CPU time (the process's own user +
system time plus that of the children it waited for, from `getrusage`) cover the same region
on both sides: from the first pass (George) or the first job (floor) until the last step is
committed. With `--rounds` above 1 the sides alternate and the median of each is shown.

For George it also counts, with SQLAlchemy event listeners on the store's engine, the SQL
statements (`before_cursor_execute`) and transactions committed per step; then it times a
pass over 10,000 finished jobs with nothing to do
(run to the end first, through the engine, with a runner whose steps succeed at once).

Targets: at 16 at once, George within 1.5x of the floor's wall time and 2x of its CPU per
step; one at a time, within 2x of its wall time; an idle pass < 20 ms. Prints the figures and
exits 0; with `--check`, exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import Source, chains, finish, table, verdict  # noqa: I001  (bench/ is on the path when a script runs)
from georgebot.agents import ShellRunner, StepRunner
from georgebot.agents.sandbox import Mode, Sandbox
from georgebot.engine.ports import Done, StepRecorder, StepTask, SystemClock
from georgebot.engine.service import Engine, EngineSettings
from georgebot.manifests.snapshot import Snapshot
from georgebot.model.status import JobStatus
from georgebot.store import Store, open_database

STEPS = 5
CONCURRENCY = 16
TARGET_WALL = 1.5  # George / floor, 16 at once
TARGET_CPU = 2.0  # George / floor, CPU per step, 16 at once
TARGET_SERIAL_WALL = 2.0  # George / floor, one at a time
TARGET_IDLE = 0.020  # seconds


def snapshot(jobs: int, concurrency: int = CONCURRENCY, length: int = STEPS) -> Snapshot:
    return chains(jobs, length, max_steps=concurrency)


def cpu_seconds() -> float:
    """User + system time of this process and of every child it has waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Meter:
    """Wall and CPU time over one region (the same calls on both sides)."""

    def start(self) -> None:
        self._wall, self._cpu = time.perf_counter(), cpu_seconds()

    def stop(self) -> dict[str, float]:
        return {"wall": time.perf_counter() - self._wall, "cpu": cpu_seconds() - self._cpu}


def count_sql(engine: sa.Engine) -> Counter[str]:
    """Statements by their first word, and COMMIT / ROLLBACK of transactions, as they happen."""
    counts: Counter[str] = Counter()

    def statement(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        counts[sql.lstrip().split(None, 1)[0].upper()] += 1

    sa.event.listen(engine, "before_cursor_execute", statement)
    sa.event.listen(engine, "commit", lambda conn: counts.update(["tx COMMIT"]))
    sa.event.listen(engine, "rollback", lambda conn: counts.update(["tx ROLLBACK"]))
    return counts


async def george(jobs: int, concurrency: int, work: Path, sandbox: Mode = "off") -> dict[str, Any]:
    db = open_database(f"sqlite:///{work / 'george.db'}")
    confinement = Sandbox.detect(sandbox)
    runner = StepRunner(shell=ShellRunner(sandbox=confinement))
    await runner.start()
    engine = Engine(
        EngineSettings(home=work / "home", max_concurrent_steps=concurrency),
        store=Store(db),
        source=Source(snapshot(jobs, concurrency), work),
        runner=runner,
        clock=SystemClock(),
    )
    await engine.start()
    sql = count_sql(db.engine)
    sql.clear()
    meter = Meter()
    meter.start()
    await engine.settle(max_passes=100_000)
    figures: dict[str, Any] = meter.stop()
    figures["sql"] = dict(sql)
    figures["passes"] = engine.passes
    runs = engine.store.load_runs()
    assert all(r.status is JobStatus.SUCCEEDED for r in runs), "not every job succeeded"
    await engine.close()
    await runner.close()
    confinement.close()
    db.close()
    return figures


async def floor(jobs: int, concurrency: int, work: Path) -> dict[str, Any]:
    """The same subprocesses, chained per job, `concurrency` at once, one committed row each."""
    conn = sqlite3.connect(work / "floor.db")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS steps (job TEXT, step INTEGER, at TEXT)")
    gate = asyncio.Semaphore(concurrency)

    async def one_job(i: int) -> None:
        for k in range(STEPS):
            async with gate:
                proc = await asyncio.create_subprocess_exec("true", cwd=work)
                await proc.wait()
                conn.execute(
                    "INSERT INTO steps VALUES (?, ?, ?)", (f"job-{i}", k, datetime.now(UTC).isoformat())
                )
                conn.commit()

    meter = Meter()
    meter.start()
    await asyncio.gather(*(one_job(i) for i in range(jobs)))
    figures = meter.stop()
    conn.close()
    return figures


class Instant:
    """An `AgentRunner` whose every step succeeds at once: to set up finished jobs quickly."""

    async def run(self, task: StepTask, recorder: StepRecorder) -> Done:
        return Done("done")


async def idle_pass(finished: int, _concurrency: int, work: Path) -> dict[str, Any]:
    """Jobs run to the end through the engine (not timed), then passes with nothing to do."""
    db = open_database(f"sqlite:///{work / 'idle.db'}")
    store = Store(db)
    snap = snapshot(finished, length=1)
    setup = Engine(
        EngineSettings(home=work / "home", max_concurrent_steps=max(finished, 1)),
        store=store,
        source=Source(snap, work),
        runner=Instant(),
        clock=SystemClock(),
    )
    await setup.start()
    await setup.settle(max_passes=100_000)
    await setup.close()
    assert all(r.status is JobStatus.SUCCEEDED for r in store.load_runs()), "not every job succeeded"
    engine = Engine(
        EngineSettings(home=work / "home"),
        store=store,
        source=Source(snap, work),
        runner=StepRunner(),
        clock=SystemClock(),
    )
    await engine.start()
    await engine.reconcile_once()  # the first sync of this process
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        await engine.reconcile_once()
        timings.append(time.perf_counter() - started)
    await engine.close()
    db.close()
    return {"wall": statistics.median(timings)}


def measure(which: str, n: int, concurrency: int, work: str, sandbox: Mode = "off") -> dict[str, Any]:
    """Runs in a fresh process, so each measurement starts from the same footing (the cost
    of a fork grows with the parent's memory). Adds the process's peak RSS in MiB."""
    if which == "george":
        figures = asyncio.run(george(n, concurrency, Path(work), sandbox))
    else:
        fn = {"floor": floor, "idle": idle_pass}[which]
        figures = asyncio.run(fn(n, concurrency, Path(work)))
    figures["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def median(rounds: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rounds)



def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=200, help="jobs at 16 at once (default 200)")
    parser.add_argument("--serial-jobs", type=int, default=40, help="jobs one at a time (default 40)")
    parser.add_argument("--finished", type=int, default=10_000, help="finished jobs for the idle pass")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each side (median)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--sandbox", choices=["off", "bubblewrap"], default="off",
                        help="George's steps unconfined (default: it measures George) or in bubblewrap")
    args = parser.parse_args()
    spawn = multiprocessing.get_context("spawn")
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp, spawn.Pool(1, maxtasksperchild=1) as pool:
        for _ in range(args.rounds):
            for jobs, concurrency in ((args.jobs, CONCURRENCY), (args.serial_jobs, 1)):
                for which in ("floor", "george"):
                    with tempfile.TemporaryDirectory(dir=tmp) as work:
                        figures = pool.apply(measure, (which, jobs, concurrency, work, args.sandbox))
                    results.setdefault((which, concurrency), []).append(figures)
        with tempfile.TemporaryDirectory(dir=tmp) as work:
            idle = pool.apply(measure, ("idle", args.finished, 1, work))

    missed: list[str] = []
    notes: list[str] = []
    rows: list[tuple[str, ...]] = [("", "floor", "George", "George/floor", "target", "")]
    for label, jobs, concurrency in (
        (f"{CONCURRENCY} at once", args.jobs, CONCURRENCY),
        ("one at a time", args.serial_jobs, 1),
    ):
        steps = jobs * STEPS
        fl, ge = results[("floor", concurrency)], results[("george", concurrency)]
        wall_f, wall_g = median(fl, "wall"), median(ge, "wall")
        cpu_f, cpu_g = median(fl, "cpu") / steps, median(ge, "cpu") / steps
        wall_target = TARGET_WALL if concurrency > 1 else TARGET_SERIAL_WALL
        wall_ok = wall_g / wall_f <= wall_target
        rows.append((f"{label}: {jobs} jobs x {STEPS} steps = {steps} steps",))
        rows.append(
            (
                "  wall time",
                f"{wall_f:.2f} s",
                f"{wall_g:.2f} s",
                f"{wall_g / wall_f:.2f}x",
                f"<= {wall_target}x",
                verdict(wall_ok),
            )
        )
        rows.append(("  steps/s", f"{steps / wall_f:.0f}", f"{steps / wall_g:.0f}"))
        rows.append(("  wall per step", f"{wall_f / steps * 1000:.2f} ms", f"{wall_g / steps * 1000:.2f} ms"))
        cpu_row: tuple[str, ...] = (
            "  CPU per step",
            f"{cpu_f * 1000:.2f} ms",
            f"{cpu_g * 1000:.2f} ms",
            f"{cpu_g / cpu_f:.2f}x",
        )
        if concurrency > 1:
            cpu_ok = cpu_g / cpu_f <= TARGET_CPU
            cpu_row += (f"<= {TARGET_CPU}x", verdict(cpu_ok))
            if not cpu_ok:
                missed.append("CPU per step")
        rows.append(cpu_row)
        if not wall_ok:
            missed.append(f"wall time, {label}")
        sql = Counter(ge[-1]["sql"])
        statements = sum(v for k, v in sql.items() if not k.startswith("tx "))
        kinds = ", ".join(f"{k} {v / steps:.1f}" for k, v in sql.most_common() if not k.startswith("tx "))
        rows.append(("  SQL statements per step", "1", f"{statements / steps:.1f}"))
        notes.append(f"SQL per step, {label}: {kinds}; {sql['tx ROLLBACK'] / steps:.2f} rollbacks (reads)")
        rows.append(("  commits per step", "1", f"{sql['tx COMMIT'] / steps:.2f}"))
        rows.append(("  passes (George)", "", f"{ge[-1]['passes']}"))
        rows.append(("  peak RSS", f"{median(fl, 'rss'):.0f} MiB", f"{median(ge, 'rss'):.0f} MiB"))
    idle_ok = idle["wall"] < TARGET_IDLE
    if not idle_ok:
        missed.append("idle pass")
    rows.append(
        (
            f"idle pass, {args.finished} finished jobs",
            "",
            f"{idle['wall'] * 1000:.1f} ms",
            "",
            f"< {TARGET_IDLE * 1000:.0f} ms",
            verdict(idle_ok),
        )
    )
    print(f"engine.py: median of {args.rounds} round(s), each side in a fresh process; "
          f"George's sandbox: {args.sandbox}")
    table(rows)
    for note in notes:
        print(note)
    finish(missed, check=args.check)


if __name__ == "__main__":
    main()
