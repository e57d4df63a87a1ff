"""Git into the store: a new revision is recorded, then applied to job runs by DESIGN.md's
rules (create, a new generation for a changed job, keep a job whose file no longer parses,
cancel one removed from Git, try again a blocked step whose agent changed). The engine owns
one `GitSync` and calls `sync()` at the start of a pass.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Protocol

from georgebot import errors
from georgebot.engine import planning
from georgebot.engine.conditions import has_condition, set_condition, without
from georgebot.manifests.snapshot import Snapshot
from georgebot.model.rendered import digest
from georgebot.model.specs import AgentSpec
from georgebot.model.status import JobStatus, Reason, StepStatus
from georgebot.store import RunState, Store

log = logging.getLogger(__name__)


class ManifestPort(Protocol):
    """`manifests.ManifestSource` satisfies this; tests may plug their own."""

    def sync(self) -> Snapshot: ...

    def checkout(self, sha: str) -> Path: ...


class GitSync:
    def __init__(
        self,
        store: Store,
        source: ManifestPort,
        *,
        cancel_job: Callable[[int], Awaitable[None]],
        notify: Callable[[int], None],
    ) -> None:
        self.store = store
        self.source = source
        self._cancel_job = cancel_job
        self._notify = notify
        self.snapshot: Snapshot | None = None
        self.agents: dict[str, AgentSpec] = {}

    def restore(self) -> None:
        """Before the first sync of a start: the agents of the last revision synced."""
        current = self.store.current_revision()
        if current is not None:
            self.agents = {n: AgentSpec.model_validate(a) for n, a in current[2].items()}

    def _condition(
        self, run: RunState, type_: str, status: bool, reason: str, message: str, now: datetime
    ) -> None:
        if set_condition(self.store, run, type_, status, reason, message, now):
            self._notify(run.id)

    async def sync(self, now: datetime) -> None:
        """Fetches; a new revision is recorded and applied. A failed fetch keeps the last one."""
        try:
            snapshot = await asyncio.to_thread(self.source.sync)
        except errors.TemporaryError as e:
            log.warning(
                "Git sync failed, keeping revision %s: %s",
                self.snapshot.revision.sha[:12] if self.snapshot else "none",
                e,
            )
            return
        if snapshot is self.snapshot:
            return
        self.snapshot = snapshot
        self.agents = dict(snapshot.agents)
        current = self.store.current_revision()
        if current is None or current[0].sha != snapshot.revision.sha:
            self.store.record_revision(
                snapshot.revision.sha,
                snapshot.revision.message,
                [e.model_dump() for e in snapshot.errors],
                {n: a.model_dump(mode="json", by_alias=True) for n, a in snapshot.agents.items()},
                now,
            )
        await self._apply(snapshot, now)

    async def _apply(self, snap: Snapshot, now: datetime) -> None:
        actor = f"git:{snap.revision.sha[:12]}"
        active = {r.name: r for r in self.store.load_active()}
        known = self.store.latest_runs()
        for name, job in snap.jobs.items():
            file = snap.job_files.get(name, "")
            run = active.get(name)
            if run is None:
                latest = known.get(name)
                if latest is not None and latest.status is not JobStatus.CANCELLED:
                    if latest.digest != job.digest:  # a finished job changed: its new steps run
                        old = self.store.load_run(latest.id)
                        self.store.apply_generation(
                            old, job, file=file, revision=snap.revision.sha, actor=actor, at=now
                        )
                        self.store.set_job_status(
                            old, JobStatus.PENDING, actor=actor, at=now, message="changed in Git", active=True
                        )
                        self._notify(old.id)
                    continue
                created = self.store.create_run(
                    job, file=file, revision=snap.revision.sha, actor=actor, at=now
                )
                self._notify(created.id)
            elif run.digest != job.digest:
                self.store.apply_generation(
                    run, job, file=file, revision=snap.revision.sha, actor=actor, at=now
                )
                self._notify(run.id)
            elif has_condition(run, Reason.INVALID_SPEC):
                self.store.set_conditions(run, without(run.conditions, Reason.INVALID_SPEC), now)
        for name, issue in snap.invalid_jobs.items():
            if (run := active.get(name)) is not None:
                self._condition(
                    run,
                    Reason.INVALID_SPEC,
                    True,
                    Reason.INVALID_SPEC,
                    f"{issue}; keeping generation {run.generation}",
                    now,
                )
        for name, run in active.items():
            if name in snap.jobs or name in snap.invalid_jobs:
                continue
            if run.file in snap.broken_files:
                self._condition(
                    run,
                    Reason.INVALID_SPEC,
                    True,
                    Reason.INVALID_SPEC,
                    f"{run.file} does not parse; keeping generation {run.generation}",
                    now,
                )
                continue
            await self._cancel_job(run.id)
            self.store.cancel_run(
                run, actor=actor, at=now, message=f"removed from Git in {snap.revision.sha[:12]}"
            )
            self._notify(run.id)
        self._unblock_changed_agents(actor, now)

    def _unblock_changed_agents(self, actor: str, now: datetime) -> None:
        for run in self.store.load_active():
            names = [
                s.name
                for s in planning.live_steps(run)
                if s.status is StepStatus.BLOCKED
                and s.agent_digest
                and s.agent_digest != self.agent_digest(run.spec.step(s.name).agent)
            ]
            if names:
                self.store.reset_steps(
                    run,
                    names,
                    actor=actor,
                    reason="AgentChanged",
                    at=now,
                    message="the agent's spec changed; trying again",
                )
                self._notify(run.id)

    def agent_digest(self, name: str | None) -> str:
        agent = self.agents.get(name or "")
        return digest(agent.model_dump(mode="json")) if agent else "missing"
