"""The `Engine` facade: one reconcile pass, the loop around it, and the calls people make
(retry, approve / reject) through Slack or the CLI.

A pass is level-triggered and idempotent: sync Git (a new revision creates, changes and
prunes job runs), recover steps whose lease expired, time out approvals, start every ready
step within capacity, and bring each job's status and conditions up to date. Anything that
changes state wakes the loop at once; the runtime's scheduler is only the safety net.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from georgebot import errors
from georgebot.engine import planning
from georgebot.engine.conditions import has_condition, set_condition
from georgebot.engine.execution import Outcome, run_step_once
from georgebot.engine.ports import (
    AgentRunner,
    Clock,
    ContextEntry,
    Done,
    StepTask,
    SystemClock,
    Wait,
)
from georgebot.engine.supervision import Supervisor
from georgebot.engine.syncing import GitSync, ManifestPort
from georgebot.manifests.snapshot import Snapshot
from georgebot.model.specs import AgentSpec, StepForm
from georgebot.model.status import JobStatus, Reason, StepStatus
from georgebot.model.views import Usage
from georgebot.store import RunState, StepState, StepUpdate, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineSettings:
    home: Path = Path(".george")
    max_concurrent_steps: int = 16
    lease: timedelta = timedelta(seconds=10)
    default_deadline: timedelta = timedelta(days=7)
    full_pass_every: timedelta = timedelta(seconds=10)


class Decision(StrEnum):
    RECORDED = "recorded"  # counted; the quorum is not reached yet
    APPROVED = "approved"  # the step succeeded
    REJECTED = "rejected"  # the step failed
    NOT_APPROVER = "not-approver"
    NOT_WAITING = "not-waiting"
    OUTDATED = "outdated"  # the request asked about an older definition of the step
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class RetryResult:
    job: str
    steps: tuple[str, ...]
    message: str


@dataclass
class _Recorder:
    store: Store
    job_id: int
    step: str
    clock: Clock
    channel: str

    async def note(self, role: str, text: str, data: dict[str, Any] | None = None) -> None:
        self.store.add_context(self.job_id, self.step, role, text, self.clock.now(), data=data)

    async def usage(self, model: str, usage: Usage) -> None:
        self.store.add_usage(self.job_id, self.step, model, usage, self.clock.now())

    async def post(self, channel: str, text: str) -> None:
        self.store.enqueue(
            self.job_id,
            channel=channel,
            text=text,
            kind="agent",
            step=self.step,
            thread_of_card=channel == self.channel,
            at=self.clock.now(),
        )


@dataclass
class Engine:
    settings: EngineSettings
    store: Store
    source: ManifestPort
    runner: AgentRunner
    clock: Clock = field(default_factory=SystemClock)
    owner: str = field(default_factory=lambda: f"george-{uuid.uuid4().hex[:12]}")
    listeners: list[Callable[[int], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.git = GitSync(self.store, self.source, cancel_job=self._cancel_job, notify=self._notify)
        self.supervisor = Supervisor(
            renew=self._renew, renew_every=self.settings.lease.total_seconds() / 3, on_reaped=self.wake
        )
        self._wake = asyncio.Event()
        self._sync_requested = True
        self._lock = asyncio.Lock()
        self.passes = 0
        self._checkouts: dict[str, Path] = {}
        self._runs: dict[int, RunState] = {}  # active runs as last read
        self._stale: set[int] = set()  # runs to read again before the next pass
        self._dirty: set[int] = set()  # runs changed since their status was last computed
        self._full_at: datetime | None = None

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        self.git.restore()
        self.supervisor.start()

    async def close(self) -> None:
        """Cancels running agents; their steps are released so the next start resumes them."""
        await self.supervisor.close()
        released = self.store.release_leases(self.owner, self.clock.now())
        if released:
            log.info("released %d running step(s) for the next start", released)

    def wake(self, *, sync: bool = False) -> None:
        self._sync_requested = self._sync_requested or sync
        self._wake.set()

    async def run_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            sync, self._sync_requested = self._sync_requested, False
            try:
                await self.reconcile_once(sync=sync)
            except errors.ConfigError as e:
                log.error("%s", e)
            except Exception:
                log.exception("reconcile pass failed; the next one will try again")

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
            runs = self.store.load_active()
            now = self.clock.now()
            if not any(planning.ready(r, now) or self._recoverable(r, now) for r in runs):
                return
        raise RuntimeError("settle did not converge")

    # --- one pass -------------------------------------------------------------------

    async def reconcile_once(self, *, sync: bool = True) -> None:
        async with self._lock:
            self.passes += 1
            now = self.clock.now()
            if sync or self.snapshot is None:
                await self.git.sync(now)
            # A full pass reads every active run and looks at time-based conditions (Stalled);
            # in between, a pass reads again only the runs that changed since the last one.
            full = sync or self._full_at is None or now - self._full_at >= self.settings.full_pass_every
            runs = self._active_runs(full)
            if full:
                self._full_at = now
            for run in runs:
                self._check_waiting(run, now)
            self._start_ready(runs, now)
            for run in runs:
                if full or run.id in self._dirty:
                    self._dirty.discard(run.id)
                    self._refresh(run, now)

    def _active_runs(self, full: bool) -> list[RunState]:
        if full:
            self._runs = {r.id: r for r in self.store.load_active()}
            self._stale.clear()
        if self._stale:
            for run_id in self._stale:
                self._runs.pop(run_id, None)
            self._runs.update((r.id, r) for r in self.store.load_runs_by_id(list(self._stale)) if r.active)
            self._stale.clear()
        return sorted(self._runs.values(), key=lambda r: r.id)

    @property
    def snapshot(self) -> Snapshot | None:
        """The manifests as last synced (None before the first sync of this process)."""
        return self.git.snapshot

    @property
    def agents(self) -> dict[str, AgentSpec]:
        return self.git.agents

    async def _cancel_job(self, run_id: int) -> None:
        await self.supervisor.cancel_job(run_id)

    # --- starting agents ------------------------------------------------------------

    def _recoverable(self, run: RunState, now: datetime) -> list[StepState]:
        return [
            s
            for s in run.steps
            if s.status is StepStatus.RUNNING
            and not self.supervisor.running(s.id)
            and (s.lease_expires_at is None or s.lease_expires_at < now)
        ]

    def _start_ready(self, runs: list[RunState], now: datetime) -> None:
        if self.snapshot is None and not self.agents:
            return
        for run in runs:
            candidates = [(s, True) for s in self._recoverable(run, now)]
            candidates += [(s, False) for s in planning.ready(run, now)]
            for step, recovered in candidates:
                if self.supervisor.count >= self.settings.max_concurrent_steps:
                    return
                spec = run.spec.step(step.name)
                agent = self.agents.get(spec.agent) if spec.agent else None
                if (
                    agent
                    and self.supervisor.count_for(agent.metadata.name) >= agent.spec.max_concurrent_steps
                ):
                    continue
                timeout = spec.effective_timeout
                if not self.store.claim(
                    step,
                    owner=self.owner,
                    until=now + self.settings.lease,
                    at=now,
                    run=run,
                    deadline=None if timeout is None or spec.form is StepForm.ASK else now + timeout,
                    recovered=recovered,
                ):
                    continue
                self._notify(run.id, stale=False)  # the claim updated the cached run
                if spec.agent and agent is None:
                    self._finish(
                        run,
                        step,
                        Outcome(
                            StepStatus.BLOCKED,
                            Reason.CAPABILITY_MISSING,
                            f"agent {spec.agent} is not defined in Git; add an AgentSpec named {spec.agent}",
                        ),
                    )
                    continue
                task = self._task(run, step, agent)
                self.supervisor.spawn(
                    step.id,
                    self._attempt(run, step, task),
                    name=f"agent:{run.name}/{step.name}#{step.attempts}",
                    agent=spec.agent,
                    job_id=run.id,
                )

    def _task(self, run: RunState, step: StepState, agent: AgentSpec | None) -> StepTask:
        sha = self.snapshot.revision.sha if self.snapshot else run.revision
        spec = run.spec.step(step.name)
        context = (
            ()
            if spec.form is not StepForm.LLM
            else tuple(  # only an LLM reads it back
                ContextEntry(at=c.at, role=c.role, text=c.text, author=c.author, data=c.data, step=c.step)
                for c in self.store.context(run.id)  # its own, the thread's and other steps' output
            )
        )
        return StepTask(
            job=run.spec,
            step=run.spec.step(step.name),
            attempt=step.attempts,
            agent=agent,
            checkout=Path(),
            output_dir=self.settings.home / "outputs" / run.name,
            channel=run.channel,
            context=context,
            revision=sha,
        )

    async def _attempt(self, run: RunState, step: StepState, task: StepTask) -> None:
        try:
            task = await self._prepare(task)
        except (errors.GeorgeError, OSError) as e:  # a workspace problem: try again later
            self._finish(
                run,
                step,
                Outcome(
                    StepStatus.FAILED,
                    "WorkspaceUnavailable",
                    f"could not prepare the step's workspace: {e}",
                    temporary=True,
                ),
            )
            return
        recorder = _Recorder(self.store, run.id, step.name, self.clock, run.channel)
        outcome = await run_step_once(self.runner, task, recorder)
        self._finish(run, step, outcome)

    async def _prepare(self, task: StepTask) -> StepTask:
        """The checkout of the synced revision (for commands) and the job's output folder."""
        if task.step.form in (StepForm.RUN, StepForm.LLM):
            checkout = self._checkouts.get(task.revision)
            if checkout is None:
                checkout = await asyncio.to_thread(self.source.checkout, task.revision)
                self._checkouts[task.revision] = checkout
            task = replace(task, checkout=checkout)
        task.output_dir.mkdir(parents=True, exist_ok=True)
        return task

    def _finish(self, run: RunState, step: StepState, outcome: Outcome) -> None:
        now = self.clock.now()
        spec = run.spec.step(step.name)
        actor = f"agent:{step.name}"
        fields: dict[str, Any] = {}
        to = outcome.status
        message = outcome.message
        if to is StepStatus.SUCCEEDED:
            pass
        elif to is StepStatus.WAITING:
            assert isinstance(outcome.result, Wait)
            request = outcome.result.request
            fields["waits_for"] = {
                "channel": request.channel,
                "text": request.text,
                "approvers": list(request.approvers),
                "quorum": request.quorum,
                "kind": request.kind,
                "pinged": False,
            }
            fields["deadline_at"] = now + spec.timeout if spec.timeout else None
            fields["started_at"] = now
        elif to is StepStatus.BLOCKED:
            fields["agent_digest"] = self.git.agent_digest(spec.agent)
        elif outcome.temporary:
            to = StepStatus.RETRYING
            delay = outcome.temporary_delay or spec.retry_delay(max(step.attempts, 1))
            fields["next_attempt_at"] = now + delay
            message = f"{message} (trying again at {fields['next_attempt_at']:%H:%M:%S} UTC)"
        else:
            failures = step.failures + 1
            fields["failures"] = failures
            if failures <= spec.retries and not outcome.final:
                to = StepStatus.RETRYING
                fields["next_attempt_at"] = now + spec.retry_delay(failures)
        moved = self.store.transition(
            run,
            step,
            StepUpdate(to, outcome.reason, message, actor=actor, fields=fields),
            now,
            owner=self.owner,
        )
        if not moved:
            log.info("step %s/%s lost its lease; its outcome is dropped", run.name, step.name)
            return
        result = outcome.result
        if to is StepStatus.WAITING and isinstance(result, Wait):
            self.store.enqueue(
                run.id,
                channel=result.request.channel,
                text=result.request.text,
                kind="approval",
                step=step.name,
                at=now,
                thread_of_card=result.request.channel in (run.channel, ""),
                meta={"digest": step.digest, "wait": result.request.kind},
            )
        elif isinstance(result, Done) and result.output:
            self.store.enqueue(
                run.id, channel=run.channel, kind="output", step=step.name, at=now, text=result.output
            )
        self._notify(run.id)
        if to is StepStatus.SUCCEEDED:
            # The steps that needed this one start now, not at the next pass. Safe on a cached
            # run that may be behind: Succeeded never goes back, and every claim compares-and-sets.
            self._start_ready([run], now)
        self.wake()

    # --- waiting for people ---------------------------------------------------------

    def _check_waiting(self, run: RunState, now: datetime) -> None:
        """An approval past its timeout pings once; at twice the timeout it fails."""
        for step in run.steps:
            if step.status is not StepStatus.WAITING or step.deadline_at is None or not step.waits_for:
                continue
            started = step.started_at or now
            if now >= started + 2 * (step.deadline_at - started):
                self.store.transition(
                    run,
                    step,
                    StepUpdate(
                        StepStatus.FAILED,
                        Reason.APPROVAL_TIMED_OUT,
                        f"no decision by {', '.join(step.waits_for.get('approvers', []))} in time",
                    ),
                    now,
                )
                self._notify(run.id)
            elif now >= step.deadline_at and not step.waits_for.get("pinged"):
                waits = {**step.waits_for, "pinged": True}
                who = " ".join(
                    f"<@{a}>" if a.startswith("U") else f"<!subteam^{a}>" for a in waits.get("approvers", [])
                )
                self.store.enqueue(
                    run.id,
                    channel=run.channel,
                    kind="ping",
                    step=step.name,
                    at=now,
                    text=f"{who or 'Anyone here:'} still waiting for your answer on {step.name}",
                )
                self.store.transition(
                    run,
                    step,
                    StepUpdate(
                        StepStatus.WAITING, None, "reminded the approvers", fields={"waits_for": waits}
                    ),
                    now,
                    progress=False,
                )
                self._notify(run.id)

    async def decide(
        self,
        job: str,
        step_name: str,
        *,
        user: str,
        approve: bool,
        user_groups: frozenset[str] = frozenset(),
        note: str = "",
        digest: str | None = None,
    ) -> Decision:
        """A person's ✅ or ❌ on an approval request; only listed approvers count."""
        async with self._lock:
            now = self.clock.now()
            runs = self.store.load_runs([job])
            run = runs[0] if runs else None
            step = run.step(step_name) if run else None
            if run is None or step is None:
                return Decision.UNKNOWN
            refused = _refusal(step, user=user, user_groups=user_groups, digest=digest)
            if refused is not None:
                decision, reason, message = refused
                self.store.log(
                    run, job=job, step=step_name, actor=f"user:{user}", at=now, reason=reason, message=message
                )
                return decision
            assert step.waits_for is not None
            kind = step.waits_for.get("kind", "ask")
            self.store.add_vote(run, step, user=user, approve=approve, at=now, note=note)
            approved_by = self.store.approvers_so_far(step)
            reached = approve and len(approved_by) >= int(step.waits_for.get("quorum", 1))
            who = ", ".join(f"<@{u}>" for u in approved_by)
            rejected = f"rejected by <@{user}>" + (f": {note}" if note else "")
            if kind == "tool" and (reached or not approve):
                # The agent continues in a fresh attempt and reads the decision from its context.
                self.store.add_context(
                    run.id,
                    step_name,
                    "approval",
                    rejected if not approve else f"approved by {who}",
                    now,
                    author=user,
                    data={"approved": approve, "by": approved_by if approve else [user], "note": note},
                )
                self.store.transition(
                    run,
                    step,
                    StepUpdate(
                        StepStatus.PENDING,
                        "ToolApproved" if approve else "ToolRejected",
                        f"approved by {who}" if approve else rejected,
                        actor=f"user:{user}",
                    ),
                    now,
                )
                decision = Decision.APPROVED if approve else Decision.REJECTED
            elif not approve:
                self.store.transition(
                    run,
                    step,
                    StepUpdate(StepStatus.FAILED, Reason.REJECTED, rejected, actor=f"user:{user}"),
                    now,
                )
                decision = Decision.REJECTED
            elif reached:
                self.store.transition(
                    run,
                    step,
                    StepUpdate(StepStatus.SUCCEEDED, None, f"approved by {who}", actor=f"user:{user}"),
                    now,
                )
                decision = Decision.APPROVED
            else:
                decision = Decision.RECORDED
            self._notify(run.id)
        self.wake()
        return decision

    async def reply(self, job: str, *, user: str, text: str, step: str | None = None) -> int:
        """A person's reply in a job's thread: context for every step of the job (stored as
        given: untrusted text), and the answer to a step waiting on a question, which then
        continues in a fresh attempt. Returns how many steps it resumed."""
        async with self._lock:
            now = self.clock.now()
            runs = self.store.load_runs([job])
            if not runs:
                return 0
            run = runs[0]
            self.store.add_context(run.id, step, "user", text, now, author=user)
            resumed = [
                s
                for s in planning.live_steps(run)
                if s.status is StepStatus.WAITING
                and (s.waits_for or {}).get("kind") == "question"
                and step in (None, s.name)
            ]
            for waiting in resumed:
                self.store.transition(
                    run,
                    waiting,
                    StepUpdate(StepStatus.PENDING, "Answered", f"<@{user}> answered", actor=f"user:{user}"),
                    now,
                )
            if resumed:
                self._notify(run.id)
        if resumed:
            self.wake()
        return len(resumed)

    async def retry(self, job: str, *, actor: str) -> RetryResult:
        """Resets a job's failed and blocked steps (Slack's `retry`, the CLI)."""
        async with self._lock:
            now = self.clock.now()
            runs = self.store.load_runs([job])
            if not runs:
                raise errors.InputError(f"there is no job named {job}")
            run = runs[0]
            if run.status is JobStatus.CANCELLED:
                raise errors.InputError(f"{job} was removed from Git; commit it again to run it")
            names = [
                s.name
                for s in planning.live_steps(run)
                if s.status in (StepStatus.FAILED, StepStatus.BLOCKED)
            ]
            if not names:
                return RetryResult(job, (), f"{job} has no failed or blocked step to retry")
            self.store.reset_steps(
                run,
                names,
                actor=actor,
                reason="RetryRequested",
                at=now,
                message=f"retry requested by {actor}",
            )
            if not run.active:
                self.store.set_job_status(
                    run, JobStatus.PENDING, actor=actor, at=now, message="retry requested", active=True
                )
            self._notify(run.id)
        self.wake()
        return RetryResult(job, tuple(names), f"retrying {', '.join(names)} of {job}")

    # --- status and conditions ------------------------------------------------------

    def _refresh(self, run: RunState, now: datetime) -> None:
        fresh = run  # current: read again at the start of this pass if it had changed
        status = planning.job_status(fresh, now)
        if status is not fresh.status:
            self.store.set_job_status(
                fresh,
                status,
                actor="engine",
                at=now,
                message=planning.waits_on(fresh)
                if status in (JobStatus.WAITING, JobStatus.BLOCKED, JobStatus.FAILED)
                else "",
                active=status is not JobStatus.SUCCEEDED,
            )
            self._notify(run.id, stale=False)
            if not run.active:
                self._runs.pop(run.id, None)
        deadline = fresh.spec.deadline or self.settings.default_deadline
        stalled = status is not JobStatus.SUCCEEDED and now - fresh.progress_at > deadline
        if stalled != has_condition(fresh, Reason.STALLED):
            self._set_condition(
                fresh,
                Reason.STALLED,
                stalled,
                Reason.STALLED if stalled else "Progressing",
                f"no progress for {deadline}: {planning.waits_on(fresh)}" if stalled else "",
                now,
            )

    def _set_condition(
        self, run: RunState, type_: str, status: bool, reason: str, message: str, now: datetime
    ) -> None:
        if set_condition(self.store, run, type_, status, reason, message, now):
            self._notify(run.id)

    def _renew(self, step_ids: list[int]) -> None:
        self.store.renew_leases(self.owner, step_ids, self.clock.now() + self.settings.lease)

    def _notify(self, run_id: int, *, stale: bool = True) -> None:
        """Tells the Slack layer; `stale` unless the cached run was updated in place."""
        self._dirty.add(run_id)
        if stale:
            self._stale.add(run_id)
        for listener in self.listeners:
            listener(run_id)


def _refusal(
    step: StepState, *, user: str, user_groups: frozenset[str], digest: str | None
) -> tuple[Decision, str, str] | None:
    """Why a person's decision does not count, if it does not: (decision, reason, message)."""
    waits = step.waits_for
    if step.status is not StepStatus.WAITING or not waits:
        return Decision.NOT_WAITING, "Ignored", "a decision on a step that is not waiting"
    if digest is not None and digest != step.digest:
        return (
            Decision.OUTDATED,
            "StaleRequest",
            f"a decision on a request for an older definition of {step.name}; ignored",
        )
    approvers = set(waits.get("approvers", []))
    if user not in approvers and not (user_groups & approvers):
        return (
            Decision.NOT_APPROVER,
            "NotAnApprover",
            f"{user} is not among the approvers {sorted(approvers)}; ignored",
        )
    if waits.get("kind") == "question":
        return Decision.NOT_WAITING, "Ignored", "a question is answered by a reply in the thread"
    return None


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
