"""Owns every agent task: starts, names, caps, cancels and reaps them, and keeps their
step leases alive while they live (STYLE rule 5). Only this module creates agent tasks.

A lease is also a promise to stop: an agent whose lease another George took is cancelled,
and once renewals have failed so long that the leases may have run out, every agent is
(its tools with it) before another George may claim their steps. The `Keeper` is told how
long the leases hold, so it stops the tools itself when George is paused or stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from georgebot.engine.ports import Keeper

log = logging.getLogger(__name__)


class _NoKeeper:
    def hold(self, seconds: float) -> None:
        pass

    def stop(self, previous: Any) -> str:
        return "no keeper could look for its processes"


@dataclass
class _Live:
    task: asyncio.Task[None]
    agent: str | None
    job_id: int


class Supervisor:
    def __init__(
        self,
        *,
        renew: Callable[[list[int]], Awaitable[set[int]]],  # → the steps others run now
        lease: float,
        keeper: Keeper | None = None,
        on_reaped: Callable[[int], None] = lambda job_id: None,
    ) -> None:
        self._live: dict[int, _Live] = {}
        self._ending: dict[int, asyncio.Task[None]] = {}  # outcomes committed, tasks winding down
        self._on_reaped = on_reaped  # (the job's id) a freed slot may let a waiting step start
        self._renew = renew
        self._lease = lease
        self._renew_every = lease / 3
        # Tools stop this long before a lease runs out, so no one else has claimed it yet.
        self._margin = lease / 5
        self.keeper: Keeper = keeper if keeper is not None else _NoKeeper()
        self._held_until = 0.0  # monotonic: when the leases last renewed may run out
        self._renewer: asyncio.Task[None] | None = None
        self.idle = asyncio.Event()
        self.idle.set()

    def start(self) -> None:
        if self._renewer is None:
            self._renewer = asyncio.create_task(self._renew_loop(), name="george-lease-renewer")

    async def close(self) -> None:
        """Cancels every agent (their steps stay Running with a lease another start resumes)."""
        await self.cancel_all()
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None

    def spawn(
        self, step_id: int, coro: Coroutine[Any, Any, None], *, name: str, agent: str | None, job_id: int
    ) -> None:
        task = asyncio.create_task(coro, name=name)
        self._live[step_id] = _Live(task, agent, job_id)
        self.idle.clear()
        task.add_done_callback(functools.partial(self._reap, step_id))

    def _reap(self, step_id: int, task: asyncio.Task[None]) -> None:
        if self._ending.get(step_id) is task:
            del self._ending[step_id]
        live = self._live.get(step_id)
        if live is not None and live.task is task:
            del self._live[step_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("agent task %s ended with an error", task.get_name(), exc_info=task.exception())
        if not self._live and not self._ending:
            self.idle.set()
        if live is not None:
            self._on_reaped(live.job_id)

    def done(self, step_id: int) -> None:
        """The step's outcome is committed: its slot is free at once (the next step of its job
        can start in it), while its task winds down."""
        live = self._live.pop(step_id, None)
        if live is not None:
            self._ending[step_id] = live.task

    def running(self, step_id: int) -> bool:
        return step_id in self._live

    @property
    def count(self) -> int:
        return len(self._live)

    def count_for(self, agent: str) -> int:
        return sum(1 for live in self._live.values() if live.agent == agent)

    def by_agent(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for live in self._live.values():
            if live.agent:
                out[live.agent] = out.get(live.agent, 0) + 1
        return out

    async def cancel(self, step_ids: list[int]) -> None:
        tasks = [self._live[i].task for i in step_ids if i in self._live]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def cancel_job(self, job_id: int) -> None:
        await self.cancel([sid for sid, live in self._live.items() if live.job_id == job_id])

    async def cancel_all(self) -> None:
        ending = list(self._ending.values())
        for task in ending:
            task.cancel()
        await self.cancel(list(self._live))
        await asyncio.gather(*ending, return_exceptions=True)

    def held(self, since: float) -> None:
        """Leases were written at monotonic time `since` (a claim or a renewal)."""
        until = since + self._lease - self._margin
        if until > self._held_until:
            self._held_until = until
        self.keeper.hold(self._held_until - time.monotonic())

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self._renew_every)
            if self._live:
                await self.renew()

    async def renew(self) -> None:
        asked, since = list(self._live), time.monotonic()
        try:
            taken = await self._renew(asked)
        except Exception:  # a busy database must not kill the renewer
            log.warning("could not renew step leases", exc_info=True)
            if time.monotonic() >= self._held_until:
                log.error("George's step leases ran out unrenewed; stopping its %d agent(s), whose "
                          "steps another George may now run", len(self._live))
                await self.cancel_all()
            return
        self.held(since)
        lost = [i for i in taken if i in self._live]
        if lost:
            log.warning("another George took over %d step(s) whose lease ran out; their agents "
                        "here are stopped", len(lost))
            await self.cancel(lost)
