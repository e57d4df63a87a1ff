"""`build_app`: the bolt `AsyncApp` George runs, with its listeners, one middleware that
acknowledges and drops an event some George already handled (same `event_id`: Slack's
retries, Socket Mode redelivery, the copy another replica got), and an error handler that
answers 400 to a payload bolt cannot handle, logged as one line. `SlackSurface` calls it once.

Which events were handled is kept in the store (`FirstDeliveries`), so every George sharing
the database drops the same repeats. Listeners run before bolt answers Slack
(`process_before_response`), so bolt starts no task of its own; they only acknowledge and
hand the work to `Listeners.work`, which owns it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from georgebot import errors
from georgebot.engine.service import Engine
from georgebot.slack import messages
from georgebot.slack.listeners import Listeners
from georgebot.slack.pacing import MonotonicTicker, Ticker

log = logging.getLogger(__name__)

SEEN_EVENTS_TTL = timedelta(hours=1)
"""Slack retries an event for up to about an hour; a repeat within it is dropped."""
RECORD_WITHIN = 1.5
"""Seconds an event waits for the store to record it. Slack wants the ack within 3; a
database slower than this (SQLite waiting on another writer's lock) does not hold it up."""


class FirstDeliveries:
    """Whether an event is new to every George, asked of the store before it is handled.

    When the store cannot say (busy, or slower than `RECORD_WITHIN`), the event is handled
    anyway: at least once rather than perhaps never, and what it does is guarded where it
    counts (a vote counts once in the database). That is logged at INFO once, until the store answers again.
    """

    def __init__(self, engine: Engine, ticker: Ticker) -> None:
        self._engine = engine
        self._ticker = ticker
        self._unchecked = False  # since the store last failed to answer

    async def first(self, event_id: str) -> bool:
        engine = self._engine
        now = engine.clock.now()
        record = asyncio.create_task(engine.io(
            engine.store.first_delivery, event_id, now),
            name=f"slack:record {event_id}")
        answered = asyncio.Event()
        record.add_done_callback(lambda _: answered.set())
        try:
            await self._ticker.wait(answered, RECORD_WITHIN)
        finally:
            if not record.done():  # the ack is owed: the event goes on, perhaps unrecorded
                record.cancel()
                await asyncio.gather(record, return_exceptions=True)
        if record.cancelled():
            return self._handled_unchecked(event_id, f"it did not answer within {RECORD_WITHIN:g}s")
        try:
            first = record.result()
        except errors.StoreBusy as e:
            return self._handled_unchecked(event_id, str(e))
        if self._unchecked:
            self._unchecked = False
            log.info("the database records Slack events again; repeated ones are dropped again")
        return first

    def _handled_unchecked(self, event_id: str, why: str) -> bool:
        if self._unchecked:
            log.debug("event %s handled without checking for a repeat: %s", event_id, why)
        else:
            log.info("could not record Slack event %s in the database (%s); handling it and the "
                     "next ones without checking whether another George already did", event_id, why)
        self._unchecked = True
        return True


def build_app(listeners: Listeners, client: AsyncWebClient, *, signing_secret: str = "",
              ticker: Ticker | None = None) -> AsyncApp:
    """The app. In HTTP mode bolt checks every request's signature and timestamp against
    `signing_secret`; Socket Mode needs none (without one, any HTTP request is refused)."""
    app = AsyncApp(
        client=client,
        signing_secret=signing_secret,
        process_before_response=True,
        name="george",
    )
    deliveries = FirstDeliveries(listeners.engine, ticker or MonotonicTicker())

    async def drop_repeated_events(body: dict[str, Any], resp: BoltResponse,
                                   next: Callable[[], Awaitable[None]]) -> BoltResponse:
        event_id = body.get("event_id")
        if isinstance(event_id, str) and not await deliveries.first(event_id):
            log.info("event %s delivered again; acknowledged and dropped", event_id)
            return BoltResponse(status=200, body="")
        await next()
        return resp

    async def unhandled(error: Exception) -> BoltResponse:
        # Only what Slack delivered gets here (in HTTP mode the gate refuses what it did not
        # sign), but in a shape bolt's middleware trips on (`"event": "x"`). One line, not a
        # traceback; that is kept for DEBUG, in case it is George's own listener that failed.
        log.warning("%s", messages.payload_failed(f"{type(error).__name__}: {error}"))
        log.debug("the payload bolt could not handle failed here", exc_info=error)
        return BoltResponse(status=400, body={"error": messages.REFUSED_UNREADABLE})

    app.middleware(drop_repeated_events)
    app.error(unhandled)
    listeners.register(app)
    return app
