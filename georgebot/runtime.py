"""The composition root: builds the store, the manifest source, the step runner and the
engine from `Settings`, owns APScheduler (the safety-net pass and the Git poll), and shuts
everything down cleanly. Commands in `cli.py` call `George`; nothing else wires parts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from georgebot.agents import StepRunner
from georgebot.config import Settings
from georgebot.engine import planning
from georgebot.engine.ports import Clock, SystemClock
from georgebot.engine.service import Engine, EngineSettings
from georgebot.manifests.source import ManifestSource
from georgebot.store import RunState, Store, open_database

log = logging.getLogger(__name__)


def engine_settings(settings: Settings) -> EngineSettings:
    return EngineSettings(
        home=settings.home.resolve(),
        max_concurrent_steps=settings.max_concurrent_steps,
        lease=timedelta(seconds=settings.lease_seconds),
        default_deadline=settings.default_deadline,
    )


def manifest_source(settings: Settings) -> ManifestSource:
    return ManifestSource(
        settings.repo,
        branch=settings.branch,
        path=settings.path,
        home=settings.home.resolve(),
        default_channel=settings.default_channel,
    )


@dataclass
class George:
    """One George process: start it, use it, close it."""

    settings: Settings
    clock: Clock = field(default_factory=SystemClock)

    def __post_init__(self) -> None:
        self.source = manifest_source(self.settings)
        self.db = open_database(self.settings.database_url)
        self.store = Store(self.db)
        self.runner = StepRunner()
        self.engine = Engine(
            engine_settings(self.settings),
            store=self.store,
            source=self.source,
            runner=self.runner,
            clock=self.clock,
        )
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self._loop_task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Enough for headless passes: the step runner and the engine."""
        await self.runner.start()
        await self.engine.start()

    async def start(self) -> None:
        """The long-running form: passes on every wake, the safety net and the Git poll."""
        await self.open()
        self.scheduler.add_job(
            self.engine.wake,
            "interval",
            seconds=self.settings.reconcile_seconds,
            id="reconcile",
            coalesce=True,
            max_instances=1,
        )
        self.scheduler.add_job(
            lambda: self.engine.wake(sync=True),
            "interval",
            seconds=self.settings.git_poll_seconds,
            id="git-poll",
            coalesce=True,
            max_instances=1,
        )
        self.scheduler.start()
        self._loop_task = asyncio.create_task(self.engine.run_forever(), name="george-reconcile")
        self.engine.wake(sync=True)

    async def close(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        await self.engine.close()
        await self.runner.close()
        self.db.close()

    async def reconcile(self, *, wait: bool, limit: float | None) -> bool:
        """Headless passes. Without `wait`, until nothing is runnable now; with it, until every
        job is finished, waiting for people or blocked. False when `limit` seconds end it."""
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            await self.engine.settle()
            runs = self.store.load_active()
            if not wait or planning.at_rest(runs, self.clock.now()):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(self._until_next_due(runs))

    def _until_next_due(self, runs: list[RunState]) -> float:
        now = self.clock.now()
        due = [s.next_attempt_at for r in runs for s in r.steps if s.next_attempt_at is not None]
        leases = [
            s.lease_expires_at
            for r in runs
            for s in r.steps
            if s.lease_expires_at is not None and not self.engine.supervisor.running(s.id)
        ]
        soonest = min([*due, *leases], default=None)
        if soonest is None:
            return 0.5
        return min(max((soonest - now).total_seconds(), 0.05), 1.0)
