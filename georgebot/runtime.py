"""The composition root: builds the store, the manifest source, the step runner and the
engine from `Settings`, owns APScheduler (the safety-net pass and the Git poll), and shuts
everything down cleanly. Commands in `cli.py` call `George`; nothing else wires parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from pydantic import SecretStr

from georgebot import __version__
from georgebot.agents import Executor, ShellRunner, StepRunner
from georgebot.agents.keeper import this_host
from georgebot.agents.sandbox import Sandbox
from georgebot.config import Settings, environment_limits, environment_secrets
from georgebot.devslack import LocalSlack
from georgebot.engine import planning
from georgebot.engine.ports import Clock, SystemClock
from georgebot.engine.service import Engine, EngineSettings
from georgebot.engine.syncing import in_daemon_thread
from georgebot.errors import ConfigError, StoreBusy
from georgebot.manifests.limits import Limits
from georgebot.manifests.source import ManifestSource
from georgebot.manifests.writing import JobWriter
from georgebot.model.attempts import Replica
from georgebot.secrets import MaskingFilter, Secrets
from georgebot.slack import SlackSurface
from georgebot.slack.app import SEEN_EVENTS_TTL
from georgebot.store import RunState, Store, open_database

if TYPE_CHECKING:
    from georgebot.store.notices import Notices

log = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4


def engine_settings(settings: Settings) -> EngineSettings:
    return EngineSettings(
        home=settings.home.resolve(),
        max_concurrent_steps=settings.max_concurrent_steps,
        lease=timedelta(seconds=settings.lease_seconds),
        default_deadline=settings.default_deadline,
    )


def llm_runner(settings: Settings, shell: ShellRunner, mask: Callable[[str], str] = str) -> Executor | None:
    """Claude runs `instructions` steps when ANTHROPIC_API_KEY is set; without it they are
    Blocked: CapabilityMissing (llm), saying how to enable them."""
    if settings.anthropic_api_key is None:
        return None
    from georgebot.agents.llm import LlmRunner  # the SDK is loaded only when it is used

    return LlmRunner(api_key=settings.anthropic_api_key.get_secret_value(), shell=shell, mask=mask,
                     base_url=settings.anthropic_base_url, default_model=settings.default_model)


def harden_process() -> None:
    """No other process of George's user may read George's memory or `/proc/<pid>/environ`
    (where its tokens are): a second line of defence behind the steps' sandbox."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            log.warning("could not make George undumpable (errno %d)", ctypes.get_errno())
    except (OSError, AttributeError):
        log.warning("could not make George undumpable: prctl is not available")


def job_writer(settings: Settings, source: ManifestSource) -> JobWriter:
    """Commits the jobs people start and cancel from Slack, on the branch George follows."""
    return JobWriter(
        settings.repo, branch=settings.branch or source.branch or "main", path=settings.path,
        home=settings.home.resolve(), branch_prefix=settings.write_branch_prefix,
        default_channel=settings.default_channel, limits=Limits.from_environment(environment_limits()),
        george_url=settings.george_url,
    )


def manifest_source(settings: Settings) -> ManifestSource:
    return ManifestSource(
        settings.repo,
        branch=settings.branch,
        path=settings.path,
        home=settings.home.resolve(),
        default_channel=settings.default_channel,
        limits=Limits.from_environment(environment_limits()),
        george_url=settings.george_url,
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
        self.sandbox = Sandbox.detect(self.settings.sandbox)
        self.secrets = Secrets(self.settings.secrets_dir, environment_secrets())
        self.secrets.also_mask(own.get_secret_value() for own in (
            self.settings.slack_bot_token, self.settings.slack_app_token,
            self.settings.slack_signing_secret, self.settings.anthropic_api_key) if own is not None)
        shell = ShellRunner(sandbox=self.sandbox, secrets=self.secrets)
        self.runner = StepRunner(shell=shell, llm=llm_runner(self.settings, shell, self.secrets.mask))
        self.engine = Engine(
            engine_settings(self.settings),
            store=self.store,
            source=self.source,
            runner=self.runner,
            clock=self.clock,
            keeper=self.sandbox.keeper,
            mask=self.secrets.mask,
        )
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self.notices: Notices | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self.replica: Replica | None = None
        self._masking = MaskingFilter(self.secrets)
        for handler in logging.getLogger().handlers:
            handler.addFilter(self._masking)

    async def open(self) -> None:
        """Enough for headless passes: the step runner and the engine. Says once whether
        steps are sandboxed, and which secrets George refuses."""
        if self.sandbox.confined:
            log.info("%s", self.sandbox.info.describe())
        else:
            log.warning("%s; see README, Sandbox", self.sandbox.info.describe())
        for why in self.secrets.refused():
            log.warning("%s", why)
        await self.runner.start()
        await self.engine.start()
        now = self.clock.now()
        info = self.sandbox.info
        self.replica = Replica(id=self.engine.owner, host=this_host().split("/")[0], pid=os.getpid(),
                               version=__version__, sandbox=f"{info.kind}: {info.detail}",
                               started_at=now, heartbeat_at=now)
        try:
            await self.engine.io(self.store.register_replica, self.replica)
        except StoreBusy as e:
            log.warning("could not record this George in the database yet (%s)", e)

    async def heartbeat(self) -> None:
        """Says this George lives; the leader also forgets Georges silent for an hour and Slack
        events older than Slack's retries."""
        with contextlib.suppress(StoreBusy):
            now = self.clock.now()
            await self.engine.io(self.store.heartbeat, self.engine.owner, now, self.engine.git.health.error)
            if self.engine.leading:
                await self.engine.io(self.store.forget_replicas, now - timedelta(hours=1))
                await self.engine.io(self.store.forget_slack_events, now - SEEN_EVENTS_TTL)

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
        self.scheduler.add_job(
            _until_stopped(self.heartbeat), "interval", seconds=self.settings.lease_seconds, id="heartbeat",
            coalesce=True, max_instances=1,
        )
        self.scheduler.add_job(
            _until_stopped(self.engine.lead), "interval", seconds=self.settings.lease_seconds / 3, id="lead",
            coalesce=True, max_instances=1,
        )
        if not self.db.is_sqlite:
            from georgebot.store.notices import Notices

            loop = asyncio.get_running_loop()

            def heard(payload: str) -> None:
                with contextlib.suppress(RuntimeError):  # the loop closed as George stopped
                    loop.call_soon_threadsafe(self.engine.heard, payload)

            self.notices = Notices(self.settings.database_url, heard)
            self.notices.start()
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
        if self.notices is not None:
            await asyncio.to_thread(self.notices.close)
        if self.replica is not None:
            with contextlib.suppress(StoreBusy):
                await self.engine.io(self.store.remove_replica, self.replica.id)
        await self.engine.close()
        await self.runner.close()
        self.sandbox.close()
        self.source.close()
        self.db.close()
        for handler in logging.getLogger().handlers:
            handler.removeFilter(self._masking)

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


def _until_stopped(job: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """A scheduled job that the scheduler's shutdown cancels midway has ended, not failed."""

    async def run() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await job()

    return run


class _QuietMalformed(logging.Filter):
    """Requests aiohttp refuses before any handler (bad framing, oversized headers): one line
    without a traceback, at most one a minute with a count of the others."""

    def __init__(self, every: float = 60.0) -> None:
        super().__init__()
        self._every = every
        self._last = -every
        self._skipped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True  # an error of George's own handlers keeps its traceback
        now = time.monotonic()
        if now - self._last < self._every:
            self._skipped += 1
            return False
        more = f" (and {self._skipped} more in the last {self._every:.0f} s)" if self._skipped else ""
        first = (str(error).splitlines() or [type(error).__name__])[0]
        record.msg, record.args, record.exc_info, record.exc_text = (
            f"refused a malformed HTTP request: {first}{more}", None, None, None)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        self._last, self._skipped = now, 0
        return True


_MALFORMED = logging.getLogger("georgebot.http")
_MALFORMED.addFilter(_QuietMalformed())


def uses_local_slack(settings: Settings) -> bool:
    return settings.uses_local_slack


@contextlib.asynccontextmanager
async def local_slack(settings: Settings) -> AsyncIterator[tuple[Settings, LocalSlack | None]]:
    """With no Slack tokens, the local Slack runs in this process and George connects to it
    over Socket Mode exactly as to Slack; with tokens, it never starts."""
    if not uses_local_slack(settings):
        yield settings, None
        return
    settings.home.mkdir(parents=True, exist_ok=True)
    slack = LocalSlack(port=settings.local_slack_port, state_file=settings.home / "local-slack.json")
    try:
        await slack.start()
    except OSError as e:
        raise ConfigError(
            f"the local Slack cannot listen on 127.0.0.1:{settings.local_slack_port} ({e.strerror}): "
            "set GEORGE_LOCAL_SLACK_PORT to a free port"
        ) from e
    try:
        yield settings.model_copy(update={
            "slack_bot_token": SecretStr(slack.bot_token),
            "slack_app_token": SecretStr(slack.app_token),
            "slack_api_url": slack.api_url,
        }), slack
    finally:
        await slack.close()


async def run_bot(settings: Settings, *, announce: Callable[[str], None] = print,
                  stop: asyncio.Event | None = None) -> None:
    """`georgebot run`: Git sync, the engine and its scheduler, George's HTTP server on PORT
    (`/healthz`, and Slack events in HTTP mode) and the Slack connection, until SIGINT or
    SIGTERM; then everything stops in order and running steps are released for the next start."""
    stop = stop or asyncio.Event()
    harden_process()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    george = George(settings)
    try:
        # An unusable repository stops us here (exit 2); a remote that never answers does not
        # hold up SIGTERM, and the thread it hangs in does not hold up the exit.
        first = in_daemon_thread(george.source.sync, name="george-first-sync")
        stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([first, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not first.done():
            first.add_done_callback(lambda f: f.cancelled() or f.exception())  # nobody waits now
            log.warning("stopped before the first Git sync of %s finished", settings.repo)
            return
        first.result()
        async with local_slack(settings) as (connected, local):
            surface = SlackSurface(connected, george.engine, local=local is not None,
                                   writer=job_writer(settings, george.source))
            server = await _http_server(settings, george, surface)
            try:
                await george.start()
                await surface.start()
                if local is not None:
                    announce(f"George is running: open {local.url} to see the local Slack "
                             f"(no Slack tokens set; SLACK_BOT_TOKEN and SLACK_APP_TOKEN connect to Slack)")
                else:
                    announce(f"George is running: connected to Slack in {surface.mode} mode, "
                             f"HTTP on port {settings.port}")
                await stop.wait()
            finally:
                await surface.close()
                await server.cleanup()
    finally:
        await george.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def _http_server(settings: Settings, george: George, surface: SlackSurface) -> web.AppRunner:
    async def healthz(_: web.Request) -> web.Response:
        synced, writable = george.engine.snapshot is not None, george.engine.writable
        ready = surface.ready and synced and writable
        reasons = [why for why, fine in (("not connected to Slack", surface.ready),
                                         ("not synced from Git yet", synced),
                                         ("the database is not writable", writable)) if not fine]
        info = george.sandbox.info
        return web.json_response({"ok": ready, "slack": surface.ready, "synced": synced,
                                  "database": {"writable": writable}, "reasons": reasons,
                                  "sandbox": {"kind": info.kind, "detail": info.detail},
                                  "replica": george.engine.owner, "leader": george.engine.leading,
                                  "outbox_leader": surface.leading,
                                  "sync": george.engine.git.health.to_json(time.monotonic())},
                                 status=200 if ready else 503)

    app = web.Application()
    app.add_routes([web.get("/healthz", healthz), *surface.web_routes()])
    runner = web.AppRunner(app, access_log=None, logger=_MALFORMED)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
    except OSError as e:
        await runner.cleanup()
        raise ConfigError(f"George cannot listen on {settings.host} port {settings.port} ({e.strerror}): "
                          "set PORT to a free port, or GEORGE_HOST to an address of this machine") from e
    log.info("George's HTTP server listens on %s port %d", settings.host, settings.port)
    return runner
