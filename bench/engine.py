"""Engine throughput and idle cost.

    python bench/engine.py [--jobs 200]

Runs N jobs x 5 chained `run` steps (`true`) through the real engine (SQLite, the shell
executor, leases, the event log) and, in the same run, the same subprocesses through a bare
asyncio loop that commits one SQLite row per step (the floor). Reports steps/s, George's
overhead per step above the floor, peak RSS, and the cost of a pass over 10,000 finished
jobs with nothing to do. Targets: within 1.5x of the floor at N=200; idle pass < 20 ms.
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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from georgebot.agents import StepRunner
from georgebot.engine.ports import SystemClock
from georgebot.engine.service import Engine, EngineSettings
from georgebot.manifests.snapshot import Revision, Snapshot
from georgebot.model.rendered import RenderedJob
from georgebot.model.specs import AgentSpec, Step
from georgebot.model.status import JobStatus
from georgebot.store import Store, open_database

STEPS = 5
CONCURRENCY = 16


@dataclass
class Source:
    snapshot: Snapshot
    root: Path

    def sync(self) -> Snapshot:
        return self.snapshot

    def checkout(self, sha: str) -> Path:
        return self.root


def snapshot(jobs: int) -> Snapshot:
    agent = AgentSpec.model_validate(
        {
            "apiVersion": "george/v1",
            "kind": "AgentSpec",
            "metadata": {"name": "bench"},
            "spec": {"capabilities": [{"shell": {"commands": ["true"]}}], "maxConcurrentSteps": CONCURRENCY},
        }
    )
    rendered = {}
    for i in range(jobs):
        steps = [
            Step.model_validate(
                {"name": f"s{k}", "agent": "bench", "run": ["true"], "needs": [f"s{k - 1}"] if k else []}
            )
            for k in range(STEPS)
        ]
        rendered[f"job-{i}"] = RenderedJob(
            name=f"job-{i}",
            template="bench",
            channel="#bench",
            deadline=None,
            params={},
            fuzzy={},
            steps=steps,
        )
    return Snapshot(
        Revision("b" * 40, "bench"),
        agents={"bench": agent},
        jobs=rendered,
        job_files={n: "manifests/bench.yaml" for n in rendered},
    )


async def george(jobs: int, work: Path) -> float:
    db = open_database(f"sqlite:///{work / 'george.db'}")
    runner = StepRunner()
    await runner.start()
    engine = Engine(
        EngineSettings(home=work / "home", max_concurrent_steps=CONCURRENCY),
        store=Store(db),
        source=Source(snapshot(jobs), work),
        runner=runner,
        clock=SystemClock(),
    )
    await engine.start()
    started = time.perf_counter()
    await engine.settle(max_passes=100_000)
    elapsed = time.perf_counter() - started
    runs = engine.store.load_runs()
    assert all(r.status is JobStatus.SUCCEEDED for r in runs), "not every job succeeded"
    await engine.close()
    await runner.close()
    db.close()
    return elapsed


async def floor(jobs: int, work: Path) -> float:
    """The same subprocesses, chained per job, CONCURRENCY at once, one committed row each."""
    conn = sqlite3.connect(work / "floor.db")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE steps (job TEXT, step INTEGER, at TEXT)")
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one_job(i: int) -> None:
        for k in range(STEPS):
            async with gate:
                proc = await asyncio.create_subprocess_exec("true", cwd=work)
                await proc.wait()
                conn.execute(
                    "INSERT INTO steps VALUES (?, ?, ?)", (f"job-{i}", k, datetime.now(UTC).isoformat())
                )
                conn.commit()

    started = time.perf_counter()
    await asyncio.gather(*(one_job(i) for i in range(jobs)))
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


async def idle_pass(finished: int, work: Path) -> float:
    db = open_database(f"sqlite:///{work / 'idle.db'}")
    store = Store(db)
    now = datetime.now(UTC)
    snap = snapshot(0)
    for i in range(finished):
        job = RenderedJob(
            name=f"done-{i}",
            template="bench",
            channel="#bench",
            deadline=None,
            params={},
            fuzzy={},
            steps=[Step(name="s0", agent="bench", run=["true"])],
        )
        run = store.create_run(job, file="x.yaml", revision=snap.revision.sha, actor="bench", at=now)
        store.set_job_status(run, JobStatus.SUCCEEDED, actor="bench", message="", at=now, active=False)
    engine = Engine(
        EngineSettings(home=work / "home"),
        store=store,
        source=Source(snap, work),
        runner=StepRunner(),
        clock=SystemClock(),
    )
    await engine.start()
    await engine.reconcile_once()  # the first sync of this revision
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        await engine.reconcile_once()
        timings.append(time.perf_counter() - started)
    await engine.close()
    db.close()
    return statistics.median(timings)


def measure(which: str, n: int, work: str) -> tuple[float, float]:
    """Runs in a fresh process, so each measurement starts from the same footing (the cost
    of a fork grows with the parent's memory). Returns (seconds, peak RSS in MiB)."""
    fn = {"floor": floor, "george": george, "idle": idle_pass}[which]
    seconds = asyncio.run(fn(n, Path(work)))
    return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--finished", type=int, default=10_000)
    args = parser.parse_args()
    steps = args.jobs * STEPS
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp, spawn.Pool(1, maxtasksperchild=1) as pool:
        floor_s, _ = pool.apply(measure, ("floor", args.jobs, tmp))
        george_s, rss_mb = pool.apply(measure, ("george", args.jobs, tmp))
        idle_s, _ = pool.apply(measure, ("idle", args.finished, tmp))
    ratio = george_s / floor_s
    print(
        f"steps                 {steps} ({args.jobs} jobs x {STEPS} chained `true` steps, "
        f"{CONCURRENCY} at once)"
    )
    print(f"floor                 {floor_s:.2f} s  {steps / floor_s:.0f} steps/s")
    print(f"george                {george_s:.2f} s  {steps / george_s:.0f} steps/s")
    print(f"overhead per step     {(george_s - floor_s) / steps * 1000:.2f} ms above the floor")
    print(f"ratio to floor        {ratio:.2f}x  (target <= 1.5x: {'met' if ratio <= 1.5 else 'MISSED'})")
    print(f"peak RSS (george)     {rss_mb:.0f} MiB")
    print(
        f"idle pass, {args.finished} finished jobs  {idle_s * 1000:.1f} ms  "
        f"(target < 20 ms: {'met' if idle_s < 0.020 else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
