"""`build_app`: the bolt `AsyncApp` George runs, with its listeners, one middleware that
drops repeated deliveries of an event (same `event_id`: Slack's retries, Socket Mode
redelivery) after acknowledging them, and an error handler that answers 400 to a payload bolt
cannot handle, logged as one line. `SlackSurface` calls it once.

Listeners run before bolt answers Slack (`process_before_response`), so bolt starts no task
of its own; they only acknowledge and hand the work to `Listeners.work`, which owns it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from georgebot.slack import messages
from georgebot.slack.listeners import Listeners
from georgebot.slack.pacing import MonotonicTicker, Ticker, TtlSet

log = logging.getLogger(__name__)

SEEN_EVENTS_TTL = 3600.0
"""Slack retries an event for up to about an hour; a repeat within it is dropped. The memory
is this process's own (bounded); replicas sharing a workspace would need it in the store."""
SEEN_EVENTS_MAX = 20_000


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
    seen = TtlSet(SEEN_EVENTS_TTL, SEEN_EVENTS_MAX, ticker or MonotonicTicker())

    async def drop_repeated_events(body: dict[str, Any], resp: BoltResponse,
                                   next: Callable[[], Awaitable[None]]) -> BoltResponse:
        event_id = body.get("event_id")
        if isinstance(event_id, str) and not seen.add(event_id):
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
