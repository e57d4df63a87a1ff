"""Git into the store: a new revision is recorded, then applied to job runs by DESIGN.md's
rules (create, a new generation for a changed job, keep a job whose file no longer parses,
cancel one removed from Git, try again a blocked step whose agent changed); the rules of each
change are `lifecycle`'s. The engine owns one `GitSync`: `fetch()` runs without the engine's
lock (a slow remote delays nobody), `apply()` under it, and applying is short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from georgebot import errors
from georgebot.engine import lifecycle
from georgebot.engine.storage import StoreThread, breathe
from georgebot.manifests.snapshot import Snapshot
from georgebot.model.rendered import RenderedJob, digest
from georgebot.model.specs import AgentSpec
from georgebot.model.status import JobStatus, Reason
from georgebot.store import Effects, JobChange, RunState, Store
from georgebot.store.shapes import RunSummary

log = logging.getLogger(__name__)
T = TypeVar("T")


class ManifestPort(Protocol):
    """`manifests.ManifestSource` satisfies this; tests may plug their own."""

    def sync(self) -> Snapshot: ...

    def checkout(self, sha: str) -> Path: ...

    def prune_checkouts(self, keep: set[str]) -> int:
        """Removes the checkouts of revisions not in `keep`; returns how many."""
        ...


@dataclass(frozen=True)
class SyncHealth:
    """How the Git sync goes: when it last succeeded (monotonic), and what is wrong now."""

    ok_at: float | None = None
    error: str | None = None
    stuck_since: float | None = None

    def failed(self, error: str) -> SyncHealth:
        return SyncHealth(ok_at=self.ok_at, error=error)

    def stuck(self, now: float, deadline: float) -> SyncHealth:
        since = self.stuck_since if self.stuck_since is not None else now - deadline
        return SyncHealth(
            ok_at=self.ok_at, stuck_since=since,
            error=f"the Git sync has been running for {now - since:.0f}s (limit {deadline:.0f}s) "
                  "and is still not done",
        )

    def to_json(self, now: float) -> dict[str, Any]:
        age = None if self.ok_at is None else round(now - self.ok_at, 1)
        return {"ok": self.error is None, "age_s": age, "error": self.error}


def in_daemon_thread(fn: Callable[[], T], *, name: str) -> asyncio.Future[T]:
    """`fn()` in a daemon thread: a call stuck forever neither blocks the event loop nor
    George's exit (asyncio's default executor is joined at exit)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        try:
            result = fn()
        except BaseException as e:  # handed to the awaiting task
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(settle, None, e)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=work, name=name, daemon=True).start()
    return future


class GitSync:
    def __init__(
        self,
        store: Store,
        io: StoreThread,
        source: ManifestPort,
        *,
        cancel_job: Callable[[int], Awaitable[None]],
        notify: Callable[[int], None],
        deadline: float = 60.0,
    ) -> None:
        self.store = store
        self.io = io
        self.source = source
        self._cancel_job = cancel_job
        self._notify = notify
        self.snapshot: Snapshot | None = None
        self.applied: Snapshot | None = None  # differs from `snapshot` after following a leader
        self.agents: dict[str, AgentSpec] = {}
        self._fetching: asyncio.Lock = asyncio.Lock()
        self._running: asyncio.Future[Snapshot] | None = None
        self.deadline = deadline
        self.health = SyncHealth()

    async def restore(self) -> None:
        """Before the first sync of a start: the agents of the last revision synced."""
        current = await self.io(self.store.current_revision)
        if current is not None:
            self.agents = {n: AgentSpec.model_validate(a) for n, a in current[2].items()}

    async def fetch(self) -> Snapshot | None:
        """The manifests at the followed branch's head; None when unchanged, unreachable or
        too slow (a failed or stuck sync keeps the last revision, and `health` says so). The
        sync runs in a thread of its own that George does not wait for at exit, and only one
        at a time: while one is stuck, no other starts."""
        async with self._fetching:
            if self._running is not None and not self._running.done():
                self.health = self.health.stuck(time.monotonic(), self.deadline)
                return None
            if self._running is None:  # else one that was stuck has finished: its result counts
                self._running = in_daemon_thread(self.source.sync, name="george-git-sync")
            try:
                async with asyncio.timeout(self.deadline):
                    snapshot = await asyncio.shield(self._running)
            except TimeoutError:
                self.health = self.health.stuck(time.monotonic(), self.deadline)
                log.error("%s; George goes on with revision %s", self.health.error, self._kept())
                return None
            except errors.TemporaryError as e:
                self.health = self.health.failed(str(e))
                log.warning("Git sync failed, keeping revision %s: %s", self._kept(), e)
                return None
            except errors.ConfigError as e:
                self.health = self.health.failed(str(e))
                raise
            except Exception as e:  # a bug on one revision must not stop the engine
                self.health = self.health.failed(f"the sync failed: {e!r}")
                log.exception("Git sync failed, keeping revision %s", self._kept())
                return None
            finally:
                if self._running.done():
                    self._running = None
        self.health = SyncHealth(ok_at=time.monotonic())
        return None if snapshot is self.snapshot else snapshot

    def _kept(self) -> str:
        return self.snapshot.revision.sha[:12] if self.snapshot else "none"

    async def apply(
        self, snap: Snapshot, now: datetime, cached: Mapping[int, RunState] | None = None
    ) -> list[RunState]:
        """Records a new revision and applies it to job runs (under the engine's lock).
        `cached`: the engine's copies of the active runs, read again only where the database
        says they are not current. Returns the active runs as they now stand (those it changed
        are announced stale)."""
        if snap is self.applied:
            return await self.io(self.store.load_active)
        current = await self.io(self.store.current_revision)
        if current is None or current[0].sha != snap.revision.sha:
            await self.io(
                self.store.record_revision,
                snap.revision.sha,
                snap.revision.message,
                [e.model_dump() for e in snap.errors],
                {n: a.model_dump(mode="json", by_alias=True) for n, a in snap.agents.items()},
                now,
            )
        agents = dict(snap.agents)
        runs = await self._apply(snap, agents, now, cached)
        self.snapshot, self.agents = snap, agents  # only once applied: a busy database tries again
        self.applied = snap
        return runs

    def adopt(self, snap: Snapshot) -> None:
        """The manifests another George (the leader) applies: agents and tools, no runs."""
        self.snapshot, self.agents = snap, dict(snap.agents)

    @property
    def unapplied(self) -> bool:
        """A snapshot followed while another George led, not applied by this one yet."""
        return self.snapshot is not None and self.snapshot is not self.applied

    async def _commit(self, run: RunState, effects: Effects, now: datetime) -> None:
        if not effects:
            return
        if await self.io(self.store.commit, run, effects, now):
            self.store.follow(run, effects, now)
            self._notify(run.id)

    async def _active(
        self, cached: Mapping[int, RunState] | None
    ) -> tuple[dict[str, RunState], dict[str, RunSummary]]:
        """Every active run by job name, and the latest run of every job: the engine's copies
        where the database's summary agrees with them, the others read again."""
        known = await self.io(self.store.latest_runs)
        if cached is None:
            return {r.name: r for r in await self.io(self.store.load_active)}, known
        current = {s.id for s in known.values() if s.active}
        kept = [r for r in cached.values() if r.id in current]
        missing = sorted(current - {r.id for r in kept})
        fresh = await self.io(self.store.load_runs_by_id, missing) if missing else []
        return {r.name: r for r in [*kept, *fresh]}, known

    async def _apply(
        self, snap: Snapshot, agents: dict[str, AgentSpec], now: datetime,
        cached: Mapping[int, RunState] | None,
    ) -> list[RunState]:
        actor = f"git:{snap.revision.sha[:12]}"
        active, known = await self._active(cached)
        fresh: list[RunState] = []
        for n, (name, job) in enumerate(snap.jobs.items()):
            await breathe(n)
            file = snap.job_files.get(name, "")
            if (author := snap.job_authors.get(name)) is not None:
                job = job.model_copy(update={"author": author})  # not part of its digest
            run = active.get(name)
            if run is None:
                latest = known.get(name)
                if latest is not None and latest.status is not JobStatus.CANCELLED:
                    if latest.digest != job.digest:  # a finished job changed: its new steps run
                        old = await self.io(self.store.load_run, latest.id)
                        effects = lifecycle.on_generation(old, job, actor=actor, now=now) + Effects(
                            job=JobChange(JobStatus.PENDING, True, actor=actor, reason="SpecChanged",
                                          message="changed in Git")
                        )
                        await self._generation(old, job, effects, file=file, sha=snap.revision.sha, now=now)
                    continue
                created = await self.io(
                    self.store.create_run, job, file=file, revision=snap.revision.sha, actor=actor, at=now,
                    after=latest.id if latest is not None else 0,
                )
                if created is None:  # another George created it a moment ago: read it next pass
                    continue
                fresh.append(created)
                self._notify(created.id)
            elif run.digest != job.digest:
                effects = lifecycle.on_generation(run, job, actor=actor, now=now)
                await self._generation(run, job, effects, file=file, sha=snap.revision.sha, now=now)
            else:
                await self._commit(run, _invalid(run, False, "", now), now)
        for name, issue in snap.invalid_jobs.items():
            if (run := active.get(name)) is not None:
                message = f"{issue}; keeping generation {run.generation}"
                await self._commit(run, _invalid(run, True, message, now), now)
        for name, run in active.items():
            if name in snap.jobs or name in snap.invalid_jobs:
                continue
            if run.file in snap.broken_files:
                message = f"{run.file} does not parse; keeping generation {run.generation}"
                await self._commit(run, _invalid(run, True, message, now), now)
                continue
            await self._cancel_job(run.id)
            message = f"removed from Git in {snap.revision.sha[:12]}"
            await self._commit(run, lifecycle.on_cancel(run, actor=actor, message=message, now=now), now)
        runs = [r for r in [*active.values(), *fresh] if r.active]
        digests = {name: _digest(agent) for name, agent in agents.items()}
        for n, run in enumerate(runs):
            await breathe(n)
            await self._commit(run, lifecycle.on_agents_changed(run, digests, actor=actor), now)
        return runs

    async def _generation(
        self, run: RunState, job: RenderedJob, effects: Effects, *, file: str, sha: str, now: datetime
    ) -> None:
        if await self.io(self.store.apply_generation, run, job, effects, file=file, revision=sha, at=now):
            self._notify(run.id)
        else:
            log.info("job %s moved while its new generation was applied; the next sync tries again", run.name)

    def agent_digest(self, name: str | None) -> str:
        agent = self.agents.get(name or "")
        return _digest(agent) if agent else "missing"


def _digest(agent: AgentSpec) -> str:
    return digest(agent.model_dump(mode="json"))


def _invalid(run: RunState, status: bool, message: str, now: datetime) -> Effects:
    """Sets or clears `InvalidSpec` (a job whose file or spec is broken keeps its generation)."""
    return lifecycle.set_condition(run, Reason.INVALID_SPEC, status, Reason.INVALID_SPEC, message, now)
