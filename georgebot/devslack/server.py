"""`LocalSlack`, the owner object: one aiohttp server with the Web API, Socket Mode, the page.

`runtime.py` (or a test) builds it, `await start()`s it and `await close()`s it; everything the
emulator runs in the background (connections, redelivery timers, saving state) ends there.
It also acts as people (`post_as`, `react`, `slash`, `open_home`, `click`) and waits for
conditions (`wait_for`) so tests never sleep. `serve()` runs it alone until cancelled.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from aiohttp import web

from georgebot.devslack.control import Control
from georgebot.devslack.events import DEFAULT_EVENTS, EventSource
from georgebot.devslack.faults import Faults
from georgebot.devslack.page import Page
from georgebot.devslack.people import DEFAULT_COMMANDS, People, SlashCommand
from georgebot.devslack.responses import ResponseUrls
from georgebot.devslack.seed import DEMO_SEED, Seed
from georgebot.devslack.shapes import state_json
from georgebot.devslack.socket import Delivery, SocketHub
from georgebot.devslack.state import JSON, Ephemeral, HomeView, Message, Workspace
from georgebot.devslack.webapi import ApiCall, WebApi
from georgebot.errors import ConfigError

log = logging.getLogger(__name__)

T = TypeVar("T")

BOT_TOKEN = "xoxb-devslack-george"
APP_TOKEN = "xapp-devslack-george"
_WILDCARD_HOSTS = {"", "0.0.0.0", "::"}


class LocalSlack:
    """A small Slack on `host:port`: `/api/` for slack-sdk, `/socket` for Socket Mode, `/`."""

    bot_token = BOT_TOKEN
    app_token = APP_TOKEN

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        seed: Seed = DEMO_SEED,
        state_file: str | os.PathLike[str] | None = None,
        ack_timeout: float = 3.0,
        max_retries: int = 3,
        events: Iterable[str] = DEFAULT_EVENTS,
        commands: Iterable[str] = DEFAULT_COMMANDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._state_file = Path(state_file) if state_file is not None else None
        self.state = Workspace(seed, clock=clock)
        self._changed = asyncio.Event()
        self.faults = Faults()
        self.hub = SocketHub(
            app_id=seed.bot.app_id, ack_timeout=ack_timeout, max_retries=max_retries,
            on_change=self._on_change,
        )
        self.events = EventSource(self.state, self.hub, events=events)
        self.responses = ResponseUrls(self.state, self.events, lambda: self.url)
        self.api = WebApi(
            self.state, events=self.events, hub=self.hub, faults=self.faults,
            base_url=lambda: self.url,
        )
        self.people = People(
            self.state, events=self.events, hub=self.hub, responses=self.responses,
            commands=commands,
        )
        self.page = Page()
        self._runner: web.AppRunner | None = None
        self._saver: asyncio.Task[None] | None = None
        self._dirty = asyncio.Event()
        self.state.listeners.append(self._on_change)
        self.state.listeners.append(self._dirty.set)

    # -- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("LocalSlack is already started")
        if self._state_file is not None:
            self._load_state_file(self._state_file)
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.add_routes([
            web.route("*", "/api/{method}", self.api.handle),
            web.get("/socket", self.hub.handle),
            web.post("/local/response/{id}", self.responses.handle),
            *self.people.routes(),
            *Control(snapshot=self.snapshot, api=self.api, hub=self.hub,
                     faults=self.faults).routes(),
            *self.page.routes(),
        ])
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self._requested_port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        if self._state_file is not None:
            self._saver = asyncio.create_task(self._save_changes(), name="devslack-save-state")
        log.info("local Slack listening on %s", self.url)

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        if self._saver is not None:
            self._saver.cancel()
            with suppress(asyncio.CancelledError):
                await self._saver
            self._saver = None
            self._save()
        await self.hub.close()
        await self.page.close()
        await runner.cleanup()

    async def __aenter__(self) -> LocalSlack:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("LocalSlack is not started")
        return self._port

    @property
    def url(self) -> str:
        """The page and the base of every other URL, such as `http://127.0.0.1:3000`."""
        host = "127.0.0.1" if self.host in _WILDCARD_HOSTS else self.host
        return f"http://{host}:{self.port}"

    @property
    def api_url(self) -> str:
        """slack-sdk's `base_url` (and `SLACK_API_URL`): ends in `/api/`."""
        return f"{self.url}/api/"

    # -- state and waiting ---------------------------------------------------------------

    def _on_change(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        self.page.notify(self.state.version + len(self.hub.envelopes))

    def snapshot(self) -> JSON:
        """`GET /local/api/state`: the workspace, and how the app is connected."""
        body = state_json(self.state)
        body["app"] = {
            "connections": self.hub.connections,
            "pending_envelopes": len(self.hub.pending()),
        }
        return body

    # A test helper, so it takes its timeout as asyncio.wait_for does.
    async def wait_for(
        self, predicate: Callable[[], T | None], timeout: float = 5.0  # noqa: ASYNC109
    ) -> T:
        """Waits until `predicate()` is truthy, re-checking after every change; returns it."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed = self._changed
                    result = predicate()
                    if result:
                        return result
                    await changed.wait()
        except TimeoutError:
            raise TimeoutError(f"the local Slack did not get there in {timeout}s") from None

    @property
    def connections(self) -> int:
        return self.hub.connections

    @property
    def ack_timeout(self) -> float:
        """How long an envelope waits for its ack before it is redelivered or given up."""
        return self.hub.ack_timeout

    @ack_timeout.setter
    def ack_timeout(self, seconds: float) -> None:
        self.hub.ack_timeout = seconds

    @property
    def calls(self) -> list[ApiCall]:
        return list(self.api.calls)

    def messages(self, channel: str) -> list[Message]:
        """Top-level messages of a channel (by ID or `#name`), oldest first."""
        found = self.state.resolve_channel(channel)
        return self.state.top_level(found.id) if found else []

    def replies(self, channel: str, thread_ts: str) -> list[Message]:
        found = self.state.resolve_channel(channel)
        return self.state.replies(found.id, thread_ts) if found else []

    def ephemerals(self, user: str) -> list[Ephemeral]:
        return self.state.ephemerals_for(user)

    def last_ephemeral(self, user: str) -> Ephemeral | None:
        found = self.state.ephemerals_for(user)
        return found[-1] if found else None

    def home_view(self, user: str) -> HomeView | None:
        return self.state.home.get(user)

    # -- acting as people ----------------------------------------------------------------

    async def post_as(
        self, user: str, channel: str, text: str, *, thread_ts: str | None = None
    ) -> Message | SlashCommand:
        return self.people.post_as(user, channel, text, thread_ts=thread_ts)

    async def react(
        self, user: str, channel: str, ts: str, name: str, *, remove: bool = False
    ) -> bool:
        return self.people.react(user, channel, ts, name, remove=remove)

    async def slash(self, user: str, channel: str, command: str, text: str = "") -> SlashCommand:
        """Runs a slash command; `slash(u, c, "/george status")` splits the text off itself."""
        if not text and " " in command.strip():
            command, _, text = command.strip().partition(" ")
        return self.people.slash(user, channel, command, text.strip())

    async def open_home(self, user: str) -> None:
        self.people.open_home(user)

    async def click(
        self, user: str, action_id: str, *, channel: str | None = None, ts: str | None = None,
        block_id: str | None = None,
    ) -> Delivery | None:
        return self.people.click(user, action_id, channel=channel, ts=ts, block_id=block_id)

    # -- faults --------------------------------------------------------------------------

    def rate_limit(self, method: str, *, calls: int = 1, retry_after: int = 1) -> None:
        """The next `calls` calls of `method` answer 429 with `Retry-After: retry_after`."""
        self.faults.rate_limit(method, calls=calls, retry_after=retry_after)

    def disconnect_sockets(self, *, graceful: bool = False) -> int:
        """Drops the app's Socket Mode connections; returns how many there were."""
        return self.hub.disconnect(graceful=graceful)

    # -- persistence ---------------------------------------------------------------------

    def _load_state_file(self, path: Path) -> None:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            return
        try:
            self.state.load(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigError(
                f"the local Slack cannot read its state file {path}: {e}; "
                "delete it to start from the demo workspace again"
            ) from e

    async def _save_changes(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                self._save()
            except OSError:
                log.exception("could not save the local Slack's state to %s", self._state_file)
            await asyncio.sleep(0.2)  # coalesce bursts of changes into one write

    def _save(self) -> None:
        if self._state_file is None:
            return
        tmp = self._state_file.with_name(self._state_file.name + ".tmp")
        tmp.write_text(json.dumps(self.state.dump(), indent=1), encoding="utf-8")
        os.replace(tmp, self._state_file)


async def serve(
    host: str = "127.0.0.1",
    port: int = 3000,
    *,
    seed: Seed = DEMO_SEED,
    state_file: str | os.PathLike[str] | None = None,
    on_ready: Callable[[LocalSlack], None] | None = None,
) -> None:
    """Runs the local Slack alone until cancelled (`georgebot local-slack`)."""
    async with LocalSlack(host=host, port=port, seed=seed, state_file=state_file) as slack:
        if on_ready is not None:
            on_ready(slack)
        await asyncio.Event().wait()
