"""The Git fetch runs without the engine's lock: a decision made while a slow remote is being
fetched is recorded at once, not after the fetch."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path

from georgebot.engine.service import Decision
from georgebot.manifests.snapshot import Snapshot
from georgebot.store import Store
from tests.engine.harness import FakeSource, ScriptedRunner, job, make_engine, request_of, step


@dataclass
class SlowRemote(FakeSource):
    """A fetch that takes as long as the test says."""

    slow: bool = False
    fetching: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def sync(self) -> Snapshot:
        if self.slow:
            self.fetching.set()
            self.done.wait(30)
        return super().sync()


async def test_a_decision_during_a_slow_fetch_is_recorded_at_once(
        sqlite_store: Store, clock, tmp_path: Path) -> None:
    source = SlowRemote()
    engine = make_engine(sqlite_store, source, ScriptedRunner(), clock, tmp_path / "home")
    await engine.start()
    try:
        source.commit(job("j", step("gate", ask={})))
        await engine.settle()
        source.slow = True
        fetch = asyncio.create_task(engine.reconcile_once(sync=True))
        await asyncio.to_thread(source.fetching.wait, 10)

        verdict = await asyncio.wait_for(
            engine.decide(request_of(sqlite_store, "j", "gate"), user="U01ALEX", approve=True), 5)

        assert verdict.decision is Decision.APPROVED
        assert not fetch.done()  # the fetch is still under way
        source.done.set()
        await fetch
    finally:
        source.done.set()
        await engine.close()
