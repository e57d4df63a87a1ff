"""`SlackSurface`: George's whole presence in Slack, as one owner object for `runtime.py`.

`start()` builds the Web API client (slack-sdk's rate-limit and connection-error retry
handlers on, `SLACK_API_URL` as its base URL), checks the bot token, starts the card
publisher and connects: Socket Mode when `SLACK_APP_TOKEN` is set, else HTTP mode when
`SLACK_SIGNING_SECRET` is set (the runtime mounts `web_routes()` on its server; a request
there passes the `EventsGate`, which refuses what Slack did not sign, before bolt parses it).
`close()` stops receiving events, cancels what is being handled, stops the publisher, the
reaction sweep and the gate's refusal log, and closes every connection it opened.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from georgebot import errors
from georgebot.config import Settings
from georgebot.engine.leading import Leadership
from georgebot.engine.service import Engine
from georgebot.manifests.writing import JobWriter
from georgebot.slack.app import build_app
from georgebot.slack.calls import CallFailed
from georgebot.slack.directory import Directory, Identity
from georgebot.slack.gate import EventsGate
from georgebot.slack.listeners import Listeners
from georgebot.slack.pacing import MonotonicTicker, Ticker
from georgebot.slack.publisher import CardPublisher, PublisherSettings
from georgebot.slack.sweep import ReactionSweep

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
SLACK_API_URL = AsyncWebClient.BASE_URL
_BAD_TOKEN = ("invalid_auth", "not_authed", "account_inactive", "token_revoked",
              "token_expired", "not_allowed_token_type")

Mode = Literal["socket", "http"]


def transport_mode(settings: Settings) -> Mode:
    """Socket Mode with an app-level token, else HTTP mode with a signing secret."""
    if settings.slack_bot_token is None:
        raise errors.ConfigError(
            "SLACK_BOT_TOKEN is not set: set it to George's bot token (xoxb-…), "
            "or unset every SLACK_ token to use the local Slack")
    if settings.slack_app_token is not None:
        return "socket"
    if settings.slack_signing_secret is not None:
        return "http"
    raise errors.ConfigError(
        "SLACK_BOT_TOKEN is set but George cannot hear Slack: set SLACK_APP_TOKEN (an xapp- "
        "token, for Socket Mode) or SLACK_SIGNING_SECRET (for HTTP mode, with Slack sending "
        f"events to {EVENTS_PATH} on PORT)")


class SlackSurface:
    def __init__(self, settings: Settings, engine: Engine, *,
                 publisher_settings: PublisherSettings | None = None,
                 ticker: Ticker | None = None, local: bool = False,
                 writer: JobWriter | None = None) -> None:
        self.settings = settings
        self.writer = writer  # `/george run` and `/george cancel` commit through it
        self.local = local  # the local Slack: channels the manifests name are created
        self.engine = engine
        self.mode: Mode = transport_mode(settings)
        self.publisher_settings = publisher_settings or PublisherSettings(
            approve_reactions=tuple(settings.approve_reactions),
            reject_reactions=tuple(settings.reject_reactions),
        )
        self._ticker = ticker or MonotonicTicker()
        secret = settings.slack_signing_secret
        self.gate = (EventsGate(secret.get_secret_value(), path=EVENTS_PATH, ticker=self._ticker)
                     if self.mode == "http" and secret is not None else None)
        self._session: aiohttp.ClientSession | None = None
        self._handler: AsyncSocketModeHandler | None = None
        self._started = False
        self.client: AsyncWebClient | None = None
        self.app: AsyncApp | None = None
        self.listeners: Listeners | None = None
        self.publisher: CardPublisher | None = None
        self.sweep: ReactionSweep | None = None

    @property
    def leading(self) -> bool:
        """Whether this George delivers the workspace's cards and messages."""
        return self.publisher is not None and self.publisher.leading

    @property
    def ready(self) -> bool:
        """For `/healthz`: started, and in Socket Mode connected."""
        if not self._started:
            return False
        if self._handler is None:
            return True
        session = self._handler.client.current_session
        return session is not None and not session.closed

    async def start(self) -> None:
        if self._started:
            return
        assert self.settings.slack_bot_token is not None
        self._session = aiohttp.ClientSession()
        client = self.client = AsyncWebClient(
            token=self.settings.slack_bot_token.get_secret_value(),
            base_url=self.settings.slack_api_url or SLACK_API_URL,
            session=self._session,
            retry_handlers=[AsyncConnectionErrorRetryHandler(),
                            AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
        )
        try:
            directory = Directory(client, ticker=self._ticker, create_channels=self.local)
            identity = await self._check_token(directory)
            self.listeners = Listeners(self.settings, self.engine, client,
                                       directory=directory, writer=self.writer)
            secret = self.settings.slack_signing_secret
            self.app = build_app(self.listeners, client, ticker=self._ticker,
                                 signing_secret=secret.get_secret_value() if secret else "")
            engine = self.engine
            outbox = Leadership(
                f"outbox:{identity.user_id}", owner=engine.owner, store=engine.store, io=engine.io,
                now=engine.clock.now, lease=engine.settings.lease,
                what=f"the outbox of Slack bot {identity.user_id} (cards and messages)")
            self.publisher = CardPublisher(self.engine, client,
                                           settings=self.publisher_settings,
                                           directory=directory, ticker=self._ticker, leadership=outbox)
            await self.publisher.start()
            self.sweep = ReactionSweep(
                self.engine, client, directory=directory, tell=self.listeners.tell,
                approve=tuple(self.settings.approve_reactions), reject=tuple(self.settings.reject_reactions),
                interval=self.settings.reaction_sweep_seconds, ticker=self._ticker,
                leading=lambda: self.leading)
            self.listeners.sweep = self.sweep
            self.sweep.start()
            if self.mode == "socket":
                assert self.settings.slack_app_token is not None
                self._handler = AsyncSocketModeHandler(
                    self.app, self.settings.slack_app_token.get_secret_value(), web_client=client)
                await self._handler.connect_async()  # type: ignore[no-untyped-call]
        except BaseException:
            await self.close()
            raise
        self._started = True
        log.info("connected to Slack as %s (%s mode)", identity.user_id, self.mode)

    async def _check_token(self, directory: Directory) -> Identity:
        try:
            return await directory.identity()
        except CallFailed as e:
            if e.error in _BAD_TOKEN:
                raise errors.ConfigError(
                    f"Slack refused SLACK_BOT_TOKEN ({e.error}): set it to the bot token "
                    "(xoxb-…) of George's Slack app") from e
            raise errors.ConfigError(
                f"could not reach Slack at {self.settings.slack_api_url or SLACK_API_URL} "
                f"({e.error}); check SLACK_API_URL and the network") from e

    def web_routes(self) -> list[web.RouteDef]:
        """HTTP mode: the route Slack sends events, commands and interactions to."""
        if self.mode != "http":
            return []
        return [web.post(EVENTS_PATH, self._handle_http)]

    async def _handle_http(self, request: web.Request) -> web.Response:
        assert self.gate is not None
        admitted = await self.gate.admit(request)
        if isinstance(admitted, web.Response):
            return admitted
        if self.app is None:
            raise web.HTTPServiceUnavailable(text="George is not connected to Slack yet")
        try:
            answer = await self.app.async_dispatch(admitted)
        except Exception as e:  # bolt catches its listeners' errors; this is bolt failing
            return self.gate.unhandled(e)
        return await to_aiohttp_response(answer)

    async def close(self) -> None:
        self._started = False
        handler, self._handler = self._handler, None
        if handler is not None:
            sdk = handler.client
            tasks = [t for t in (sdk.message_processor, sdk.current_session_monitor,
                                 sdk.message_receiver) if t is not None]
            await handler.close_async()  # type: ignore[no-untyped-call]
            # The SDK's own tasks end with its session; one that does not (a reconnect under
            # way as it closed) is cancelled rather than holding up George's stop.
            _, stuck = await asyncio.wait(tasks, timeout=5) if tasks else (set(), set())
            for task in stuck:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.sweep is not None:
            await self.sweep.close()
        if self.listeners is not None:
            await self.listeners.close()
        if self.publisher is not None:
            await self.publisher.close()
        if self.gate is not None:
            await self.gate.close()
        session, self._session = self._session, None
        if session is not None:
            await session.close()
