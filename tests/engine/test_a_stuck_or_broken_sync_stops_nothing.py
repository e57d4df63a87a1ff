"""A sync that never ends, or that fails in a way nobody foresaw, keeps George on its last
good revision: jobs and approvals go on, and the sync's health says what is wrong."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from georgebot.engine.service import Decision
from georgebot.manifests.snapshot import Snapshot
from georgebot.store import Store
from tests.engine.harness import FakeSource, ScriptedRunner, job, make_engine, request_of, step


@dataclass
class Remote(FakeSource):
    stuck: bool = False
    broken: bool = False
    release: threading.Event = field(default_factory=threading.Event)

    def sync(self) -> Snapshot:
        if self.broken:
            raise RuntimeError("a parser bug")
        if self.stuck:
            self.release.wait(30)
        return super().sync()


async def test_a_stuck_sync_is_reported_and_george_goes_on(sqlite_store: Store, clock, tmp_path: Path):
    source = Remote()
    engine = make_engine(sqlite_store, source, ScriptedRunner(), clock, tmp_path / "home",
                         sync_timeout=timedelta(seconds=0.2))
    await engine.start()
    try:
        source.commit(job("j", step("gate", ask={})))
        await engine.settle()
        source.stuck = True

        await engine.reconcile_once(sync=True)  # returns after the deadline, not after the sync
        verdict = await engine.decide(request_of(sqlite_store, "j", "gate"), user="U01ALEX", approve=True)
        await engine.reconcile_once(sync=True)  # no second sync starts beside the stuck one

        health = engine.git.health.to_json(time.monotonic())
        assert verdict.decision is Decision.APPROVED
        assert health["ok"] is False and "still not done" in health["error"]
        assert sqlite_store.load_runs(["j"])[0].step("gate").status.value == "Succeeded"
        source.stuck = False
        source.release.set()
        deadline = time.monotonic() + 10
        while engine.git.health.error and time.monotonic() < deadline:  # the stuck sync ends
            await engine.reconcile_once(sync=True)
            await asyncio.sleep(0.01)
        assert engine.git.health.to_json(time.monotonic())["ok"] is True
    finally:
        source.release.set()
        await engine.close()


async def test_an_unforeseen_sync_failure_keeps_the_last_revision(sqlite_store: Store, clock, tmp_path: Path):
    source = Remote()
    engine = make_engine(sqlite_store, source, ScriptedRunner(), clock, tmp_path / "home")
    await engine.start()
    try:
        source.commit(job("j", step("gate", ask={})))
        await engine.settle()
        kept = engine.snapshot
        source.broken = True

        await engine.reconcile_once(sync=True)

        assert engine.snapshot is kept
        assert engine.git.health.error == "the sync failed: RuntimeError('a parser bug')"
    finally:
        await engine.close()
