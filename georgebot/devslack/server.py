"""`LocalSlack`, the owner object: one aiohttp server with the Web API, Socket Mode, the page.

`runtime.py` (or a test) builds it, `await start()`s it and `await close()`s it; everything the
emulator runs in the background (connections, redelivery timers, the journal's writer) ends
there. It is for one person on one machine: `Guard` refuses other hosts, origins and tokenless
callers, and no request is answered before what it changed is on disk (`Journal`). It also acts
as people (`post_as`, `react`, `slash`, `open_home`, `click`) and waits for conditions
(`wait_for`) so tests never sleep. `serve()` runs it alone until cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler

from georgebot.devslack.control import Control
from georgebot.devslack.events import DEFAULT_EVENTS, EventSource
from georgebot.devslack.faults import Faults
from georgebot.devslack.guard import WILDCARD_HOSTS, Guard
from georgebot.devslack.journal import Journal
from georgebot.devslack.page import Page
from georgebot.devslack.people import DEFAULT_COMMANDS, ActionError, People, SlashCommand
from georgebot.devslack.responses import ResponseUrls
from georgebot.devslack.seed import DEMO_SEED, Seed
from georgebot.devslack.shapes import state_json
from georgebot.devslack.socket import Delivery, SocketHub
from georgebot.devslack.state import JSON, Ephemeral, HomeView, Message, Workspace
from georgebot.devslack.views import Modals
from georgebot.devslack.webapi import ApiCall, WebApi

log = logging.getLogger(__name__)

T = TypeVar("T")


def new_token(prefix: str) -> str:
    """A token for this start only, shaped as Slack's (`xoxb-…`, `xapp-…`)."""
    return f"{prefix}-devslack-{secrets.token_hex(16)}"


class LocalSlack:
    """A small Slack on `host:port`: `/api/` for slack-sdk, `/socket` for Socket Mode, `/`."""

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
        bot_token: str | None = None,
        app_token: str | None = None,
        page_token: str | None = None,
        compact_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self.bot_token = bot_token or new_token("xoxb")
        """What George's slack-sdk authenticates with (`Authorization: Bearer xoxb-…`)."""
        self.app_token = app_token or new_token("xapp")
        """What Socket Mode's `apps.connections.open` takes."""
        self.guard = Guard(host=host, port=lambda: self.port, token=page_token)
        self.state = Workspace(seed, clock=clock)
        self.journal = (
            Journal(self.state, Path(state_file), compact_bytes=compact_bytes)
            if state_file is not None else None
        )
        self._changed = asyncio.Event()
        self.faults = Faults()
        self.hub = SocketHub(
            app_id=seed.bot.app_id, ack_timeout=ack_timeout, max_retries=max_retries,
            on_change=self._on_change,
        )
        self.events = EventSource(self.state, self.hub, events=events)
        self.modals = Modals(self.state, self.hub)
        self.responses = ResponseUrls(self.state, self.events, lambda: self.url)
        self.api = WebApi(
            self.state, events=self.events, hub=self.hub, faults=self.faults,
            base_url=lambda: self.url, bot_token=self.bot_token, app_token=self.app_token,
            modals=self.modals,
        )
        self.people = People(
            self.state, events=self.events, hub=self.hub, responses=self.responses,
            commands=commands, modals=self.modals,
        )
        self.page = Page(grant=self.guard.grant)
        self._runner: web.AppRunner | None = None
        self.state.listeners.append(self._on_change)

    # -- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("LocalSlack is already started")
        if self.journal is not None:
            self.journal.open()
        app = web.Application(
            client_max_size=8 * 1024 * 1024, middlewares=[self.guard.middleware, self._durable],
        )
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
            if self.journal is not None:
                await self.journal.close()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        if self.journal is not None:
            self.journal.start()
        log.info("local Slack listening on %s", self.url)

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        await self.hub.close()
        await self.page.close()
        await runner.cleanup()  # answers in flight wait for the journal, which still runs
        if self.journal is not None:
            await self.journal.close()

    @web.middleware
    async def _durable(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Answers only once what the request changed is on disk (a SIGKILL loses nothing)."""
        response = await handler(request)
        if self.journal is not None and not response.prepared:
            try:
                await self.journal.sync()
            except Exception:  # the journal logged it; the caller must not take it as done
                return web.json_response({"ok": False, "error": "internal_error"}, status=500)
        return response

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
        host = "127.0.0.1" if self.host in WILDCARD_HOSTS else self.host
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
        body["modals"] = self.modals.state()
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

    def modal(self, user: str) -> JSON | None:
        """The modal open on `user`'s screen (Slack's view shape, with the errors it shows)."""
        return self.modals.state().get(user)

    async def submit_modal(self, user: str, values: dict[str, dict[str, str]]) -> Delivery | None:
        """`user` presses the submit button of their open modal, with `values` typed in
        (block id → action id → text)."""
        modal = self.modals.open_modals.get(user)
        if modal is None:
            raise ActionError("view_not_found")
        return self.people.submit_view(user, modal.id, values)

    # -- faults --------------------------------------------------------------------------

    def rate_limit(self, method: str, *, calls: int = 1, retry_after: int = 1) -> None:
        """The next `calls` calls of `method` answer 429 with `Retry-After: retry_after`."""
        self.faults.rate_limit(method, calls=calls, retry_after=retry_after)

    def disconnect_sockets(self, *, graceful: bool = False) -> int:
        """Drops the app's Socket Mode connections; returns how many there were."""
        return self.hub.disconnect(graceful=graceful)


async def serve(
    host: str = "127.0.0.1",
    port: int = 3000,
    *,
    seed: Seed = DEMO_SEED,
    state_file: str | os.PathLike[str] | None = None,
    on_ready: Callable[[LocalSlack], None] | None = None,
) -> None:
    """Runs the local Slack alone until cancelled (`georgebot local-slack`); logs its tokens,
    which another process needs to connect as the app."""
    async with LocalSlack(host=host, port=port, seed=seed, state_file=state_file) as slack:
        log.info("connect an app with SLACK_API_URL=%s SLACK_BOT_TOKEN=%s SLACK_APP_TOKEN=%s",
                 slack.api_url, slack.bot_token, slack.app_token)
        if on_ready is not None:
            on_ready(slack)
        await asyncio.Event().wait()
