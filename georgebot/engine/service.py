"""The `Engine` facade: one reconcile pass, the loop around it, and the calls people make
(decide, reply, retry) through Slack or the CLI.

A pass is level-triggered and idempotent: sync Git (a new revision creates, changes and
prunes job runs), recover steps whose lease expired, time out approvals, start every ready
step within capacity, and bring each job's status and conditions up to date. The rules are
`lifecycle`'s; this module reads state, asks `lifecycle` what changes, and commits the answer
with its effects in one transaction, on the store's own thread (`StoreThread`). Anything that
changes state wakes the loop at once; the runtime's scheduler is only the safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from georgebot import errors
from georgebot.engine import lifecycle, planning
from georgebot.engine.chat import ChatDesk
from georgebot.engine.execution import Outcome, run_step_once
from georgebot.engine.leading import Leadership
from georgebot.engine.lifecycle import Decision, RetryPlan, Verdict
from georgebot.engine.ports import (
    AgentRunner,
    ChatPort,
    Clock,
    ContextEntry,
    Keeper,
    StepTask,
    SystemClock,
)
from georgebot.engine.storage import StoreThread, breathe, patiently
from georgebot.engine.supervision import Supervisor
from georgebot.engine.syncing import GitSync, ManifestPort
from georgebot.manifests.snapshot import Snapshot
from georgebot.model.approvals import Request, is_approver
from georgebot.model.attempts import ProcessRecord
from georgebot.model.specs import AgentSpec, StepForm
from georgebot.model.status import JobStatus, Reason, StepStatus
from georgebot.model.views import Usage
from georgebot.store import Claim, Effects, Note, Remark, RunState, StepState, Store

log = logging.getLogger(__name__)

__all__ = ["Decision", "Engine", "EngineSettings", "RetryPlan", "Verdict"]

HEARD_WITHIN = 0.02
"""Seconds from another George's announcement to the pass that reads it: the ones that come
meanwhile share that pass."""


@dataclass(frozen=True)
class EngineSettings:
    home: Path = Path(".george")
    max_concurrent_steps: int = 16
    lease: timedelta = timedelta(seconds=10)
    default_deadline: timedelta = timedelta(days=7)
    full_pass_every: timedelta = timedelta(seconds=10)
    sync_timeout: timedelta = timedelta(seconds=60)  # a sync running longer is reported stuck


@dataclass
class _Recorder:
    """What a running agent writes as it goes: appended at once, and written again later if
    the database is busy (the agent waits; its attempt is not lost and no retry is used)."""

    engine: Engine
    job_id: int
    step_id: int
    step: str
    channel: str
    outputs: list[str] = field(default_factory=list)
    """A command's or a request's output: written with the attempt's outcome, in its transaction."""

    async def note(self, role: str, text: str, data: dict[str, Any] | None = None) -> None:
        text, data = self.engine.clean(text), _masked(data, self.engine.clean)
        if role == "output" and data is None:
            self.outputs.append(text)
            return
        store, at = self.engine.store, self.engine.clock.now()
        await patiently(lambda: self.engine.io(store.add_context, self.job_id, self.step, role, text, at,
                                               data=data), what=f"the context of {self.step}")

    async def usage(self, model: str, usage: Usage) -> None:
        store, at = self.engine.store, self.engine.clock.now()
        await patiently(lambda: self.engine.io(store.add_usage, self.job_id, self.step, model, usage, at),
                        what=f"the usage of {self.step}")

    async def process(self, record: ProcessRecord) -> None:
        engine = self.engine
        await patiently(lambda: engine.io(engine.store.record_process, self.step_id, engine.owner, record),
                        what=f"where {self.step} runs")

    async def post(self, channel: str, text: str) -> None:
        text = self.engine.clean(text)
        store, at = self.engine.store, self.engine.clock.now()
        await patiently(
            lambda: self.engine.io(store.enqueue, self.job_id, channel=channel, text=text, kind="agent",
                                   step=self.step, thread_of_card=channel == self.channel, at=at),
            what=f"a message of {self.step}",
        )
        self.engine.tell(self.job_id)


def _masked(data: Any, mask: Callable[[str], str]) -> Any:
    """Every string in an agent's structured note (a tool result, a model's turn), masked."""
    if isinstance(data, str):
        return mask(data)
    if isinstance(data, dict):
        return {k: _masked(v, mask) for k, v in data.items()}
    if isinstance(data, list):
        return [_masked(v, mask) for v in data]
    return data


class _Quiet:
    def changed(self, run_id: int) -> None:
        pass


@dataclass
class Engine:
    settings: EngineSettings
    store: Store
    source: ManifestPort
    runner: AgentRunner
    clock: Clock = field(default_factory=SystemClock)
    owner: str = field(default_factory=lambda: f"george-{uuid.uuid4().hex[:12]}")
    chat: ChatPort = field(default_factory=_Quiet)
    keeper: Keeper | None = None  # stops the agents' tools when George cannot (none: tests)
    mask: Callable[[str], str] = field(default=lambda text: text)  # hides secrets' values

    def __post_init__(self) -> None:
        self.io = StoreThread(self.store)
        self.desk = ChatDesk(self.store, self.io, self.clock.now)
        self.git = GitSync(self.store, self.io, self.source, cancel_job=self._cancel_job, notify=self._notify,
                           deadline=self.settings.sync_timeout.total_seconds())
        self.supervisor = Supervisor(
            renew=self._renew, lease=self.settings.lease.total_seconds(), keeper=self.keeper,
            on_reaped=self._reaped,
        )
        self.store.announce_as = self.owner
        self.leadership = Leadership(
            "sync", owner=self.owner, store=self.store, io=self.io, now=self.clock.now,
            lease=self.settings.lease, what="the Git sync (creating and cancelling runs)",
        )
        self._followed: str | None = None  # the revision the leader recorded, as last seen
        self._due: tuple[datetime, asyncio.TimerHandle] | None = None
        self._soon: asyncio.TimerHandle | None = None
        self._wake = asyncio.Event()
        self._sync_requested = True
        self._lock = asyncio.Lock()
        self.passes = 0
        self._checkouts: dict[str, Path] = {}
        self._in_use: dict[str, int] = {}  # revision → attempts working in its checkout now
        self._runs: dict[int, RunState] = {}  # active runs as last read
        self._stale: set[int] = set()  # runs to read again before the next pass
        self._dirty: set[int] = set()  # runs changed since their status was last computed
        self._waiting: set[int] = set()  # runs with steps to start once this George has room
        self._dues: list[tuple[datetime, int]] = []  # heap: when a run can move of itself
        self._full_at: datetime | None = None
        self._retry_at: asyncio.TimerHandle | None = None
        self._prune: asyncio.Task[None] | None = None

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        await self.git.restore()
        self.supervisor.start()

    async def close(self) -> None:
        """Cancels running agents; their steps are released so the next start resumes them,
        and another George may lead the sync at once."""
        await self.supervisor.close()
        for timer in (self._retry_at, self._due[1] if self._due else None, self._soon):
            if timer is not None:
                timer.cancel()
        await self.leadership.resign()
        if self._prune is not None:
            await asyncio.gather(self._prune, return_exceptions=True)
        try:
            released = await self.io(self.store.release_leases, self.owner, self.clock.now())
        except errors.StoreBusy as e:
            log.warning("could not release running steps (%s); they run again when their lease ends", e)
        else:
            if released:
                log.info("released %d running step(s) for the next start", released)
        self.io.close()

    def clean(self, text: str) -> str:
        """What an agent or a person produced, as George keeps it: secrets masked, and NUL
        (which PostgreSQL cannot store) as ␀."""
        return self.mask(text.replace("\x00", "\u2400"))

    def attach(self, chat: ChatPort) -> None:
        """The chat adapter that is told about changes (one at a time)."""
        self.chat = chat

    def detach(self, chat: ChatPort) -> None:
        if self.chat is chat:
            self.chat = _Quiet()

    def wake(self, *, sync: bool = False) -> None:
        self._sync_requested = self._sync_requested or sync
        self._wake.set()

    @property
    def leading(self) -> bool:
        """Whether this George leads the Git sync among those sharing its database."""
        return self.leadership.leading

    async def lead(self) -> None:
        """Keeps or takes the lead (every third of a lease): a George that takes it over
        syncs at once."""
        was = self.leading
        with contextlib.suppress(errors.StoreBusy):  # a pass says so, and tries again
            if await self.leadership.hold() and not was:
                self.wake(sync=True)

    def heard(self, payload: str) -> None:
        """Another George's announcement (PostgreSQL's NOTIFY): a run it changed is read
        again and its next steps start here if this George has room; a revision it recorded
        is synced. "gap": announcements may have been missed, so everything is read again."""
        owner, _, what = payload.partition(" ")
        if owner == self.owner:
            return
        if what == "revision":
            self.wake(sync=True)
        elif what.isdigit():
            self._notify(int(what))
            self._wake_soon()
        elif payload == "gap":
            self._full_at = None
            self.wake(sync=True)

    def _wake_soon(self) -> None:
        """One pass for a burst of announcements (they come one per commit), a moment later."""
        if self._soon is None:
            self._soon = asyncio.get_running_loop().call_later(HEARD_WITHIN, self._woken_soon)

    def _woken_soon(self) -> None:
        self._soon = None
        self.wake()

    def tell(self, run_id: int) -> None:
        """The chat owes this run's card an update, or its outbox holds a new message."""
        self.chat.changed(run_id)

    @property
    def writable(self) -> bool:
        """False while the database refuses writes (locked, read-only, full, unreachable)."""
        return self.io.writable

    async def run_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            sync, self._sync_requested = self._sync_requested, False
            try:
                if not self.writable:
                    await self.io(self.store.probe)
                await self.reconcile_once(sync=sync)
            except errors.ConfigError as e:
                log.error("%s", e)
            except errors.StoreBusy as e:
                log.warning("reconcile pass stopped: %s; trying again in 1s", e)
                self._later(1.0, sync=sync)
            except Exception:
                log.exception("reconcile pass failed; the next one will try again")

    def _later(self, seconds: float, *, sync: bool) -> None:
        if self._retry_at is not None:
            self._retry_at.cancel()
        self._retry_at = asyncio.get_running_loop().call_later(seconds, lambda: self.wake(sync=sync))

    async def settle(self, *, max_passes: int = 1000) -> None:
        """Burst mode for tests and `reconcile --wait`: passes until nothing is runnable now
        and no agent task lives (a retry due later does not count)."""
        sync = True
        for _ in range(max_passes):
            self._wake.clear()
            await self.reconcile_once(sync=sync)
            sync = False
            if self.supervisor.count:
                await _first(self._wake.wait(), self.supervisor.idle.wait())
                continue
            runs = await self.io(self.store.load_active)
            now = self.clock.now()
            if not any(planning.ready(r, now) or self._recoverable(r, now) for r in runs):
                return
        raise RuntimeError("settle did not converge")

    # --- one pass -------------------------------------------------------------------

    async def reconcile_once(self, *, sync: bool = True) -> None:
        leading = await self.leadership.hold()
        if leading:
            snapshot = await self.git.fetch() if sync or self.snapshot is None else None  # no lock held
            if snapshot is None and self.git.unapplied:
                snapshot = self.snapshot  # followed while another George led: applied now
        else:  # a follower looks for the leader's revision at a sync (or its announcement) and
            # at each full pass, not at every pass
            due = sync or self.snapshot is None or self._full_due(self.clock.now())
            snapshot = await self._follow() if due else None
        async with self._lock:
            self.passes += 1
            now = self.clock.now()
            applied = None
            if snapshot is not None and not leading:
                self.git.adopt(snapshot)
            elif snapshot is not None:
                fresh = self._full_at is not None and not self._stale  # the copies are current
                applied = await self.git.apply(snapshot, now, self._runs if fresh else None)
            # A full pass reads every active run and looks at time-based conditions (Stalled,
            # approvals' timeouts); in between, a pass looks only at the runs that changed, fell
            # due or wait for room, so its cost does not grow with the number of active jobs.
            full = snapshot is not None or self._full_due(now)  # a new revision reads every run
            if applied is not None:  # the sync read every active run already
                self._runs = {r.id: r for r in applied}
                assert snapshot is not None
                keep = {snapshot.revision.sha, *(r.revision for r in applied), *self._in_use}
                if self._prune is None or self._prune.done():
                    self._prune = asyncio.create_task(self._prune_checkouts(keep), name="george-prune")
            if full:
                self._dues = []
            runs = await self._active_runs(full, reload=applied is None, now=now)
            if full:
                self._full_at = now
            for n, run in enumerate(runs):
                await breathe(n)
                await self._commit(run, lifecycle.on_timers(run, now), now)
            looked = {r.id for r in runs}
            waiting: Iterable[RunState] = ()
            if self.supervisor.count < self.settings.max_concurrent_steps:  # else no room to give them
                waiting = (self._runs[i] for i in sorted(self._waiting - looked) if i in self._runs)
            await self._start_ready(runs, now, waiting=waiting)
            for n, run in enumerate(runs):
                await breathe(n)
                if full or run.id in self._dirty:
                    self._dirty.discard(run.id)
                    await self._refresh(run, now)
            self._wake_when_due(runs, now)

    def _full_due(self, now: datetime) -> bool:
        return self._full_at is None or now - self._full_at >= self.settings.full_pass_every

    async def _follow(self) -> Snapshot | None:
        """While another George leads the sync: the manifests of the revision it recorded
        (fetched from Git once it records a new one), so this George runs steps with that
        revision's agents and tools, but changes no runs because of it."""
        recorded = await self.io(self.store.recorded_revision)
        if self.snapshot is not None and recorded in (None, self._followed):
            return None
        self._followed = recorded
        return await self.git.fetch()

    def _wake_when_due(self, runs: list[RunState], now: datetime) -> None:
        """The next pass runs when a retry falls due or the lease of a step that no agent of
        this George runs lapses (its George may have died), not at the next safety-net pass;
        it looks at the runs due."""
        for run in runs:
            if (t := planning.next_due(run, now, self.supervisor.running)) is not None:
                heapq.heappush(self._dues, (t, run.id))
        if not self._dues:
            return
        due = self._dues[0][0]
        if self._due is not None and self._due[0] <= due and self._due[0] > now:
            return
        if self._due is not None:
            self._due[1].cancel()
        delay = (due - now).total_seconds() + 0.05
        self._due = (due, asyncio.get_running_loop().call_later(delay, self._when_due))

    def _reaped(self, run_id: int) -> None:
        """An agent ended: its slot is free, and a step it left Running (it crashed or was
        cancelled) is looked at again."""
        self._dirty.add(run_id)
        self.wake()

    def _when_due(self) -> None:
        self._due = None
        self.wake()

    async def _prune_checkouts(self, keep: set[str]) -> None:
        """Old revisions' checkouts go once no active run or live attempt uses them."""
        for sha in [s for s in self._checkouts if s not in keep]:
            del self._checkouts[sha]
        try:
            pruned = await asyncio.to_thread(self.source.prune_checkouts, keep)
        except OSError as e:
            log.warning("could not prune old checkouts: %s", e)
        else:
            if pruned:
                log.info("pruned %d checkout(s) of revisions nothing uses", pruned)

    async def _active_runs(self, full: bool, *, reload: bool = True, now: datetime) -> list[RunState]:
        """Every active run at a full pass; otherwise those read again (changed), those this
        George changed and those fallen due."""
        if full and reload:
            runs = {r.id: r for r in await self.io(self.store.load_active)}
            for run_id, run in runs.items():  # what other Georges changed (SQLite has no NOTIFY)
                known = self._runs.get(run_id)
                if known is None or known.updated_at != run.updated_at:
                    self._dirty.add(run_id)
                    self.chat.changed(run_id)
            self._runs = runs
            self._stale.clear()
        looked = set(self._stale) | self._dirty
        if self._stale:
            stale, self._stale = list(self._stale), set()
            for run_id in stale:
                self._runs.pop(run_id, None)
            fresh = await self.io(self.store.load_runs_by_id, stale)
            self._runs.update((r.id, r) for r in fresh if r.active)
        self._waiting.intersection_update(self._runs)
        if full:
            return sorted(self._runs.values(), key=lambda r: r.id)
        while self._dues and self._dues[0][0] <= now:
            looked.add(heapq.heappop(self._dues)[1])
        return [self._runs[i] for i in sorted(looked) if i in self._runs]

    @property
    def snapshot(self) -> Snapshot | None:
        """The manifests as last synced (None before the first sync of this process)."""
        return self.git.snapshot

    @property
    def agents(self) -> dict[str, AgentSpec]:
        return self.git.agents

    async def _cancel_job(self, run_id: int) -> None:
        await self.supervisor.cancel_job(run_id)

    async def _commit(self, run: RunState, effects: Effects, now: datetime) -> bool:
        """Commits a transition and its effects; the cached run follows; the chat is told."""
        if not effects:
            return True
        if not await self.io(self.store.commit, run, effects, now):
            self._notify(run.id)  # someone else moved first: read it again
            return False
        self._committed(run, effects, now)
        return True

    async def _claim(self, run: RunState, effects: Effects, now: datetime,
                     agent: AgentSpec | None) -> Claim:
        """A step's claim, within its agent's cap counted across every George."""
        cap = (agent.metadata.name, agent.spec.max_concurrent_steps) if agent else None
        claimed = await self.io(self.store.claim, run, effects, now, cap=cap)
        if claimed is Claim.CLAIMED:
            self._committed(run, effects, now)
        else:
            self._notify(run.id)  # another George has it, or the agent is at its cap: read again
        return claimed

    def _committed(self, run: RunState, effects: Effects, now: datetime) -> None:
        self.store.follow(run, effects, now)
        cached = self._runs.get(run.id)
        if cached is not None and cached is not run:  # the pass's copy follows too
            self.store.follow(cached, effects, now)
        self._notify(run.id, stale=False)

    # --- starting agents ------------------------------------------------------------

    def _recoverable(self, run: RunState, now: datetime) -> list[StepState]:
        return [
            s
            for s in planning.running(run)
            if not self.supervisor.running(s.id)
            and (s.lease_expires_at is None or s.lease_expires_at <= now)
        ]

    async def _start_ready(self, runs: list[RunState], now: datetime,
                           waiting: Iterable[RunState] = ()) -> None:
        """Starts the ready (and recoverable) steps of `runs`, then of the runs `waiting` for
        room, while this George has room; a run left with steps to start waits for room."""
        if self.snapshot is None and not self.agents:
            return
        full: set[str] = set()  # agents at their cap, counted across Georges
        for n, run in enumerate(runs):
            await breathe(n)
            if await self._start_in(run, now, full):
                self._waiting.add(run.id)
            else:
                self._waiting.discard(run.id)
        for n, run in enumerate(waiting):
            if self.supervisor.count >= self.settings.max_concurrent_steps:
                return
            await breathe(n)
            if not await self._start_in(run, now, full):
                self._waiting.discard(run.id)

    async def _start_in(self, run: RunState, now: datetime, full: set[str]) -> bool:
        """Claims and starts a run's steps that can start; True if some are left for want of
        room (this George's, or their agent's in `full`)."""
        candidates = [(s, True) for s in self._recoverable(run, now)]
        candidates += [(s, False) for s in planning.ready(run, now)]
        left = False
        for step, recovered in candidates:
            if self.supervisor.count >= self.settings.max_concurrent_steps:
                return True
            spec = run.spec.step(step.name)
            agent = self.agents.get(spec.agent) if spec.agent else None
            if agent and (
                agent.metadata.name in full
                or self.supervisor.count_for(agent.metadata.name) >= agent.spec.max_concurrent_steps
            ):
                left = True
                continue
            # The lease runs from now, not from the pass's start: a long pass must not
            # hand out leases that have already run out.
            at = self.clock.now()
            claim = lifecycle.claim(
                run, step, owner=self.owner, now=at, lease=self.settings.lease, recovered=recovered
            )
            since = time.monotonic()
            claimed = await self._claim(run, claim, at, agent)
            if claimed is Claim.FULL and agent is not None:
                full.add(agent.metadata.name)
                left = True
            if claimed is not Claim.CLAIMED:
                continue
            self.supervisor.held(since)
            step = replace(step)  # as claimed: what its outcome will compare-and-set against
            if recovered and step.process is not None:
                await self._stop_leftover(run, step, at)
            if spec.agent and agent is None:
                outcome = Outcome(
                    StepStatus.BLOCKED,
                    Reason.CAPABILITY_MISSING,
                    f"agent {spec.agent} is not defined in Git; add an AgentSpec named {spec.agent}",
                )
                await self._finish(run, step, outcome, locked=True)
                continue
            task = await self._task(run, step, agent)
            self.supervisor.spawn(
                step.id,
                self._attempt(run, step, task),
                name=f"agent:{run.name}/{step.name}#{step.attempts}",
                agent=spec.agent,
                job_id=run.id,
            )
        return left

    async def _stop_leftover(self, run: RunState, step: StepState, now: datetime) -> None:
        """Before a recovered step runs again, what is left of its earlier attempt is stopped
        (on this host), so two attempts never run at once; the audit says what was found."""
        assert step.process is not None
        found = await asyncio.to_thread(self.supervisor.keeper.stop, step.process)
        previous = step.attempts - 1
        note = Note(
            step.name, "engine", Reason.RECOVERED,
            f"the George running attempt {previous} stopped renewing its lease (it was killed or "
            f"paused); {found}; attempt {step.attempts} starts",
        )
        await self._commit(run, Effects(notes=(note,)), now)

    async def _task(self, run: RunState, step: StepState, agent: AgentSpec | None) -> StepTask:
        sha = self.snapshot.revision.sha if self.snapshot else run.revision
        spec = run.spec.step(step.name)
        context: tuple[ContextEntry, ...] = ()
        # Read back by an LLM (its own, the thread's, others' output), and by a step whose
        # agent's `requireApproval` may have decided it.
        if spec.form is StepForm.LLM or (agent is not None and agent.spec.require_approval is not None):
            context = tuple(
                ContextEntry(at=c.at, role=c.role, text=c.text, author=c.author, data=c.data, step=c.step)
                for c in await self.io(self.store.context, run.id)
            )
        return StepTask(
            job=run.spec,
            step=spec,
            attempt=step.attempts,
            agent=agent,
            checkout=Path(),
            output_dir=self.settings.home / "outputs" / run.name,
            channel=run.channel,
            context=context,
            revision=sha,
        )

    async def _attempt(self, run: RunState, step: StepState, task: StepTask) -> None:
        self._in_use[task.revision] = self._in_use.get(task.revision, 0) + 1
        try:
            await self._attempt_in(run, step, task)
        finally:
            left = self._in_use.pop(task.revision) - 1
            if left:
                self._in_use[task.revision] = left

    async def _attempt_in(self, run: RunState, step: StepState, task: StepTask) -> None:
        outputs: tuple[str, ...] = ()
        try:
            task = await self._prepare(task)
        except Exception as e:  # a workspace problem (Git, the disk): try again later
            if not isinstance(e, errors.GeorgeError | OSError):
                log.exception("could not prepare the workspace of %s/%s", run.name, step.name)
            outcome = Outcome(
                StepStatus.FAILED,
                "WorkspaceUnavailable",
                f"could not prepare the step's workspace: {e}",
                temporary=True,
            )
        else:
            recorder = _Recorder(self, run.id, step.id, step.name, run.channel)
            outcome = await run_step_once(self.runner, task, recorder)
            outputs = tuple(recorder.outputs)
        await self._finish(run, step, outcome, outputs=outputs)

    async def _prepare(self, task: StepTask) -> StepTask:
        """The checkout of the synced revision (for commands) and the job's output folder."""
        if task.step.form in (StepForm.RUN, StepForm.LLM):
            checkout = self._checkouts.get(task.revision)
            if checkout is None:
                checkout = await asyncio.to_thread(self.source.checkout, task.revision)
                self._checkouts[task.revision] = checkout
            task = replace(task, checkout=checkout)
        await asyncio.to_thread(task.output_dir.mkdir, parents=True, exist_ok=True)
        return task

    async def _finish(
        self, run: RunState, step: StepState, outcome: Outcome, *, locked: bool = False,
        outputs: tuple[str, ...] = (),
    ) -> None:
        """Commits an attempt's outcome with all it causes. A busy database does not lose it:
        it is written again until it lands (the lease is still ours), so the step never runs
        again because a write failed."""
        spec = run.spec.step(step.name)
        request_id = uuid.uuid4().hex
        digest = self.git.agent_digest(spec.agent)
        outcome = replace(outcome, message=self.clean(outcome.message))

        async def write() -> bool:
            now = self.clock.now()
            effects = lifecycle.on_outcome(
                run, step, outcome, now=now, owner=self.owner, request_id=request_id, agent_digest=digest
            ) + Effects(remarks=tuple(Remark(step.name, "output", text) for text in outputs))
            if locked:
                return await self._commit(run, effects, now)
            async with self._lock:
                return await self._commit(run, effects, now)

        moved = await patiently(write, what=f"the outcome of {run.name}/{step.name}")
        self.supervisor.done(step.id)
        if not moved:
            log.info("step %s/%s lost its lease; its outcome is dropped", run.name, step.name)
            return
        if outcome.status is StepStatus.SUCCEEDED and not locked:
            # The steps that needed this one start now, not at the next pass. Safe on a cached
            # run that may be behind: Succeeded never goes back, and every claim compares-and-sets.
            try:
                async with self._lock:
                    await self._start_ready([self._runs.get(run.id, run)], self.clock.now())
            except errors.StoreBusy:
                pass  # the next pass starts them
        self.wake()

    # --- people ---------------------------------------------------------------------

    async def decide(
        self,
        request_id: str,
        *,
        user: str,
        approve: bool,
        user_groups: frozenset[str] = frozenset(),
        note: str = "",
        user_of: Callable[[str], Awaitable[str | None]] | None = None,
    ) -> Verdict:
        """A person's ✅ or ❌ on one approval request. It counts only on the request the step
        waits on now, once per person, and not from the person who committed the job (the
        four-eyes rule: `user_of` finds the chat user of the job's author by e-mail); the
        verdict says what it did and why."""
        author = None  # looked up before the lock: a chat call must not hold up the passes
        if user_of is not None and (asked := await self.io(self.store.request, request_id)) is not None:
            job = (await self.io(self.store.load_run, asked.job_id)).spec
            if job.author and not job.allow_self_approval:
                author = await user_of(job.author)
        async with self._lock:
            for _ in range(3):  # a step that moved meanwhile (another process) is read again
                now = self.clock.now()
                request = await self.io(self.store.request, request_id)
                if request is None:
                    return Verdict(Decision.UNKNOWN, user=user, why="not an approval request of George's")
                run = await self.io(self.store.load_run, request.job_id)
                verdict, effects = lifecycle.on_ballot(
                    run, request, user=user, approve=approve, groups=user_groups, note=note, now=now,
                    author=author,
                )
                if await self._commit(run, effects, now):
                    break
            else:
                # Not lost: the reaction is still in Slack, and the next sweep counts it.
                raise errors.TemporaryError("the step kept moving while the vote was recorded",
                                            reason="Contended")
        self.wake()
        return verdict

    async def open_requests(self) -> list[tuple[Request, str, str, str]]:
        """Every open request George has posted: (request with its votes, channel, ts, and the
        thread where talk about it goes: the card's when the request is in its thread)."""
        found = await self.io(self.store.open_requests)
        return [
            (request, message.channel_id, message.ts,
             card.ts if card is not None and card.channel_id == message.channel_id else message.ts)
            for request, message, card in found
        ]

    async def ask_again(self, run_id: int, lost_channel: str) -> int:
        """The run's card is gone from Slack: its open requests are queued to be posted again.
        Returns how many."""
        async with self._lock:
            now = self.clock.now()
            run = await self.io(self.store.load_run, run_id)
            requests = await self.io(self.store.open_requests_of, run_id)
            effects = lifecycle.on_card_lost(run, requests, lost_channel)
            await self._commit(run, effects, now)
        return len(effects.messages)

    async def approvers_of(self, request_id: str) -> tuple[str, ...]:
        """Whom a request asks now, an escalation's people included (the chat resolves user
        groups among them before `decide`)."""
        request = await self.io(self.store.request, request_id)
        if request is None:
            return ()
        run = await self.io(self.store.load_run, request.job_id)
        step = run.step(request.step)
        if step is not None and step.waits is not None and step.waits.request == request.id:
            return step.waits.approvers
        return request.approvers

    async def reply(
        self, job: str, *, user: str, text: str, step: str | None = None, run_id: int | None = None
    ) -> int:
        """A person's reply in a job's thread: context for every step of the job (stored as
        given: untrusted text), and the answer to a step waiting on a question, which then
        continues in a fresh attempt. Returns how many steps it resumed. From Slack, `run_id`
        is the run whose thread it is in: a reply in a cancelled run's thread answers nothing
        of the job's newer run."""
        text = self.clean(text)  # a secret a person pasted is not kept or shown to a model
        async with self._lock:
            now = self.clock.now()
            if run_id is not None:
                runs = await self.io(self.store.load_runs_by_id, [run_id])
            else:
                runs = await self.io(self.store.load_runs, [job])
            if not runs:
                return 0
            resumed, effects = lifecycle.on_reply(runs[0], user=user, text=text, step=step)
            await self._commit(runs[0], effects, now)
        if resumed:
            self.wake()
        return resumed

    async def retry(
        self,
        job: str,
        *,
        actor: str,
        groups_of: Callable[[frozenset[str]], Awaitable[frozenset[str]]] | None = None,
        in_channel: Callable[[str], Awaitable[bool]] | None = None,
    ) -> RetryPlan:
        """A person's retry of a job's failed and blocked steps (Slack's `retry`, the CLI). A
        step an approver rejected, or that timed out waiting, is reopened only by one of its
        approvers (`groups_of` resolves the person's user groups among them), the others by the
        template's `retriers` when it names any, else by anyone in the job's channel
        (`in_channel` says whether the person is); `cli:` actors run George and may reopen
        anything."""
        member: bool | None = None  # asked before the lock: a chat call must not hold up passes
        if in_channel is not None and actor.startswith("user:"):
            found = await self.io(self.store.load_runs, [job])
            if found and not found[0].spec.retriers:
                member = await in_channel(found[0].channel)
        async with self._lock:
            now = self.clock.now()
            runs = await self.io(self.store.load_runs, [job])
            if not runs:
                raise errors.InputError(f"there is no job named {job}")
            run = runs[0]
            if run.status is JobStatus.CANCELLED:
                raise errors.InputError(f"{job} was removed from Git; commit it again to run it")
            approvers: dict[int, tuple[str, ...]] = {}
            for state in lifecycle.retryable(run):
                if lifecycle.needs_approver(state):
                    approvers[state.id] = await self.io(self.store.last_approvers, state.id)
            user = actor.removeprefix("user:")
            retriers = run.spec.retriers
            wanted = frozenset(a for names in approvers.values() for a in names) | frozenset(retriers)
            groups: frozenset[str] = frozenset()
            if groups_of is not None and wanted and actor.startswith("user:"):
                groups = await groups_of(wanted)

            def may_reopen(state: StepState) -> bool:
                return actor.startswith("cli:") or is_approver(user, groups, approvers.get(state.id, ()))

            if actor.startswith("cli:"):
                may_retry = True
            elif retriers:
                may_retry = is_approver(user, groups, retriers)
            else:
                may_retry = member is not False
            plan, effects = lifecycle.on_retry(run, actor=actor, may_reopen=may_reopen, may_retry=may_retry)
            await self._commit(run, effects, now)
        if plan.steps:
            self.wake()
        return plan

    # --- status and conditions ------------------------------------------------------

    async def _refresh(self, run: RunState, now: datetime) -> None:
        effects = lifecycle.on_refresh(run, now, default_deadline=self.settings.default_deadline)
        await self._commit(run, effects, now)
        if not run.active:
            self._runs.pop(run.id, None)

    def _renew(self, step_ids: list[int]) -> Awaitable[set[int]]:
        return self.io(self.store.renew_leases, self.owner, step_ids, self.clock.now() + self.settings.lease)

    def _notify(self, run_id: int, *, stale: bool = True) -> None:
        """Tells the chat; `stale` unless the cached run was updated in place."""
        self._dirty.add(run_id)
        if stale:
            self._stale.add(run_id)
        self.chat.changed(run_id)


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
