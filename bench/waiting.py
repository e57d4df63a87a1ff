"""Passes over many jobs waiting for people.

    .venv/bin/python bench/waiting.py [--jobs 10000] [--passes 7] [--check]

Sets up N active jobs, each waiting for an approval (one `ask` step, run by the real
`StepRunner`, whose `ask` executor returns a `Wait`), in a SQLite database, through the real
engine, in a fresh process (not measured: it takes a while). Then, in another fresh process
that starts an engine on that database, it times passes:

- an unchanged revision: `reconcile_once(sync=True)` when the source returns the same
  snapshot, and `reconcile_once(sync=False)`; target < 50 ms each;
- a new revision that changes none of the jobs (a new `Snapshot` with a new sha and the same
  jobs); target < 500 ms;

and the peak RSS of that process (target < 250 MB). Each figure is the median of `--passes`
passes. Prints the figures and exits 0; with `--check`, exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import Source, finish, table, verdict  # noqa: I001  (bench/ is on the path when a script runs)
from georgebot.agents import StepRunner
from georgebot.engine.ports import SystemClock
from georgebot.engine.service import Engine, EngineSettings
from georgebot.manifests.snapshot import Revision, Snapshot
from georgebot.model.rendered import RenderedJob
from georgebot.model.specs import Step
from georgebot.model.status import JobStatus, StepStatus
from georgebot.store import Store, open_database

TARGET_UNCHANGED = 0.050  # seconds
TARGET_NEW_REVISION = 0.500  # seconds
TARGET_RSS = 250  # MB (10^6 bytes)


def snapshot(jobs: int) -> Snapshot:
    """N jobs of one `ask` step each (an `ask` needs no agent)."""
    rendered = {}
    for i in range(jobs):
        step = Step.model_validate(
            {"name": "approve", "ask": {"approvers": ["U01ALEX"], "message": f"ok to go ahead with {i}?"}}
        )
        rendered[f"job-{i}"] = RenderedJob(
            name=f"job-{i}",
            template="bench",
            channel="#bench",
            deadline=None,
            params={"n": i},
            fuzzy={},
            steps=[step],
        )
    return Snapshot(
        Revision("a" * 40, "bench"),
        jobs=rendered,
        job_files={n: "manifests/bench.yaml" for n in rendered},
    )


def engine_for(db: Any, source: Source, work: Path, concurrency: int = 16) -> Engine:
    return Engine(
        EngineSettings(home=work / "home", max_concurrent_steps=concurrency),
        store=Store(db),
        source=source,
        runner=StepRunner(),
        clock=SystemClock(),
    )


def waiting(runs: list[Any], jobs: int) -> bool:
    return len(runs) == jobs and all(
        r.status is JobStatus.WAITING and r.steps[0].status is StepStatus.WAITING for r in runs
    )


async def set_up(jobs: int, work: Path) -> dict[str, Any]:
    """Every job created by a sync and its `ask` run at once (no cap: the executor is instant)."""
    db = open_database(f"sqlite:///{work / 'george.db'}")
    engine = engine_for(db, Source(snapshot(jobs), work), work, concurrency=jobs)
    await engine.start()
    started = time.perf_counter()
    await engine.settle(max_passes=100_000)
    elapsed = time.perf_counter() - started
    ok = waiting(engine.store.load_active(), jobs)
    await engine.close()
    db.close()
    assert ok, "not every job is waiting for its approval"
    return {"seconds": elapsed}


async def timed(engine: Engine, sync: bool) -> float:
    started = time.perf_counter()
    await engine.reconcile_once(sync=sync)
    return time.perf_counter() - started


async def passes(jobs: int, work: Path, count: int) -> dict[str, Any]:
    db = open_database(f"sqlite:///{work / 'george.db'}")
    snap = snapshot(jobs)
    source = Source(snap, work)
    engine = engine_for(db, source, work)
    await engine.start()
    figures: dict[str, Any] = {"first": await timed(engine, True)}  # this process's first sync
    figures["unchanged, sync"] = [await timed(engine, True) for _ in range(count)]
    figures["unchanged, no sync"] = [await timed(engine, False) for _ in range(count)]
    new = []
    for i in range(count):
        sha = hashlib.sha1(f"revision {i}".encode()).hexdigest()
        source.snapshot = dataclasses.replace(snap, revision=Revision(sha, f"unrelated change {i}"))
        new.append(await timed(engine, True))
    figures["new revision"] = new
    figures["still waiting"] = waiting(engine.store.load_active(), jobs)
    await engine.close()
    db.close()
    return figures


def measure(which: str, jobs: int, work: str, count: int) -> dict[str, Any]:
    """Runs in a fresh process; adds its peak RSS (MB)."""
    if which == "setup":
        figures = asyncio.run(set_up(jobs, Path(work)))
    else:
        figures = asyncio.run(passes(jobs, Path(work), count))
    figures["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6
    return figures



def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--passes", type=int, default=7, help="passes of each kind (median)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as work, spawn.Pool(1, maxtasksperchild=1) as pool:
        setup = pool.apply(measure, ("setup", args.jobs, work, 0))
        figures = pool.apply(measure, ("passes", args.jobs, work, args.passes))

    missed = []
    rows = [("", "median", "min", "max", "target", "")]
    for label, target in (
        ("unchanged, sync", TARGET_UNCHANGED),
        ("unchanged, no sync", TARGET_UNCHANGED),
        ("new revision", TARGET_NEW_REVISION),
    ):
        times = figures[label]
        ok = statistics.median(times) < target
        if not ok:
            missed.append(label)
        rows.append(
            (
                f"pass, {label}",
                f"{statistics.median(times) * 1000:.1f} ms",
                f"{min(times) * 1000:.1f} ms",
                f"{max(times) * 1000:.1f} ms",
                f"< {target * 1000:.0f} ms",
                verdict(ok),
            )
        )
    rss_ok = figures["rss"] < TARGET_RSS
    if not rss_ok:
        missed.append("peak RSS")
    rss = f"{figures['rss']:.0f} MB"
    rows.append(("peak RSS of the process", rss, "", "", f"< {TARGET_RSS} MB", verdict(rss_ok)))
    print(
        f"waiting.py: {args.jobs} active jobs each waiting for an approval (SQLite); "
        f"{args.passes} passes of each kind"
    )
    table(rows)
    print(
        f"(not measured: setup {setup['seconds']:.1f} s, peak RSS {setup['rss']:.0f} MB; "
        f"the first pass of the measuring process {figures['first'] * 1000:.0f} ms; "
        f"every job still waiting afterwards: {figures['still waiting']})"
    )
    finish(missed, check=args.check)


if __name__ == "__main__":
    main()
