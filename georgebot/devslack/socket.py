"""Socket Mode: the websocket an app opens with the URL `apps.connections.open` hands out.

`SocketHub` owns the connections, sends `hello`, delivers envelopes round-robin, waits for each
ack and, like Slack, redelivers an unacknowledged `events_api` envelope after `ack_timeout` with
`retry_attempt` raised and `retry_reason: "timeout"`, up to `max_retries` times. A slash command
or interaction nobody acknowledges is not retried: its `on_timeout` runs (the person sees
Slack's `operation_timeout` notice). Envelopes wait in a queue while no app is connected.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import WSMsgType, web

from georgebot.devslack.state import JSON

log = logging.getLogger(__name__)

EnvelopeType = Literal["events_api", "slash_commands", "interactive"]
_KEEP = 10_000


@dataclass(eq=False)
class Delivery:
    """One payload on its way to the app, across however many envelopes it takes."""

    type: EnvelopeType
    payload: JSON
    accepts_response_payload: bool = False
    on_ack: Callable[[JSON | None], None] | None = None
    on_timeout: Callable[[], None] | None = None
    attempt: int = 0
    retry_reason: str = ""
    envelope_ids: list[str] = field(default_factory=list)
    acked: bool = False
    done: bool = False
    timer: asyncio.TimerHandle | None = None
    sent_at: float | None = None  # the event loop's clock when the latest envelope went out


@dataclass(eq=False)
class _Connection:
    ws: web.WebSocketResponse
    outbox: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)


class SocketHub:
    def __init__(
        self,
        *,
        app_id: str,
        ack_timeout: float = 3.0,
        max_retries: int = 3,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.app_id = app_id
        self.ack_timeout = ack_timeout
        self.max_retries = max_retries
        self._on_change = on_change
        self._connections: list[_Connection] = []
        self._turn = 0
        self._tickets: set[str] = set()
        self._queue: deque[Delivery] = deque()
        self._by_envelope: dict[str, Delivery] = {}
        self._closed = False
        self.envelopes: deque[JSON] = deque(maxlen=_KEEP)
        """The envelopes sent, in order (the latest 10,000): what tests look at for retries."""
        self.acks: deque[str] = deque(maxlen=_KEEP)
        """The envelope ids acknowledged, late ones included, in order."""
        self.undelivered: deque[Delivery] = deque(maxlen=_KEEP)
        """Deliveries given up on: retries exhausted, or a command nobody acknowledged."""
        self.ack_delays: deque[float] = deque(maxlen=_KEEP)
        """Seconds from an envelope going out to its acknowledgement (the latest 10,000)."""

    @property
    def connections(self) -> int:
        return len(self._connections)

    def pending(self) -> list[Delivery]:
        """Deliveries sent or queued and not yet acknowledged or given up on."""
        seen = {id(d): d for d in self._by_envelope.values()}
        seen.update({id(d): d for d in self._queue})
        return list(seen.values())

    def issue_ticket(self) -> str:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        return ticket

    # -- delivering ----------------------------------------------------------------------

    def deliver(
        self,
        type: EnvelopeType,
        payload: JSON,
        *,
        accepts_response_payload: bool = False,
        on_ack: Callable[[JSON | None], None] | None = None,
        on_timeout: Callable[[], None] | None = None,
    ) -> Delivery:
        delivery = Delivery(
            type, payload, accepts_response_payload=accepts_response_payload,
            on_ack=on_ack, on_timeout=on_timeout,
        )
        self._dispatch(delivery)
        return delivery

    def _dispatch(self, delivery: Delivery) -> None:
        if self._closed:
            return
        if not self._connections:
            self._queue.append(delivery)
            return
        envelope_id = str(uuid.uuid4())
        delivery.envelope_ids.append(envelope_id)
        self._by_envelope[envelope_id] = delivery
        envelope: JSON = {
            "envelope_id": envelope_id,
            "type": delivery.type,
            "payload": delivery.payload,
            "accepts_response_payload": delivery.accepts_response_payload,
        }
        if delivery.type == "events_api":
            envelope["retry_attempt"] = delivery.attempt
            envelope["retry_reason"] = delivery.retry_reason
        self._turn = (self._turn + 1) % len(self._connections)
        self._connections[self._turn].outbox.put_nowait(json.dumps(envelope))
        self.envelopes.append(envelope)
        loop = asyncio.get_running_loop()
        delivery.sent_at = loop.time()
        delivery.timer = loop.call_later(self.ack_timeout, self._expire, delivery, envelope_id)
        self._on_change()

    def _expire(self, delivery: Delivery, envelope_id: str) -> None:
        if delivery.done or delivery.envelope_ids[-1] != envelope_id:
            return
        if delivery.type == "events_api" and delivery.attempt < self.max_retries:
            delivery.attempt += 1
            delivery.retry_reason = "timeout"
            log.info("envelope %s not acknowledged; redelivering (retry %d)",
                     envelope_id, delivery.attempt)
            self._dispatch(delivery)
            return
        self._finish(delivery)
        self.undelivered.append(delivery)
        log.warning("gave up on a %s envelope nobody acknowledged", delivery.type)
        if delivery.on_timeout is not None:
            delivery.on_timeout()
        self._on_change()

    def _acknowledge(self, text: str) -> None:
        try:
            message = json.loads(text)
        except json.JSONDecodeError:
            log.warning("ignored a socket message that is not JSON: %.200s", text)
            return
        if not isinstance(message, dict):
            return
        envelope_id = str(message.get("envelope_id"))
        self.acks.append(envelope_id)
        delivery = self._by_envelope.get(envelope_id)
        if delivery is None or delivery.done:
            self._on_change()
            return
        delivery.acked = True
        if delivery.sent_at is not None:
            self.ack_delays.append(asyncio.get_running_loop().time() - delivery.sent_at)
        self._finish(delivery)
        payload = message.get("payload")
        if delivery.on_ack is not None:
            delivery.on_ack(payload if isinstance(payload, dict) else None)
        self._on_change()

    def _finish(self, delivery: Delivery) -> None:
        delivery.done = True
        if delivery.timer is not None:
            delivery.timer.cancel()
        for envelope_id in delivery.envelope_ids:
            self._by_envelope.pop(envelope_id, None)

    # -- connections ---------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets or self._closed:
            raise web.HTTPUnauthorized(text="invalid or used ticket: call apps.connections.open")
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        connection = _Connection(ws)
        writer = asyncio.create_task(self._write(connection), name="devslack-socket-writer")
        self._connections.append(connection)
        connection.outbox.put_nowait(json.dumps({
            "type": "hello",
            "num_connections": len(self._connections),
            "debug_info": {"host": "devslack", "build_number": 1,
                           "approximate_connection_time": 3600},
            "connection_info": {"app_id": self.app_id},
        }))
        while self._queue:
            self._dispatch(self._queue.popleft())
        self._on_change()
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._acknowledge(message.data)
        finally:
            self._connections.remove(connection)
            writer.cancel()
            with suppress(asyncio.CancelledError):
                await writer
            self._on_change()
        return ws

    async def _write(self, connection: _Connection) -> None:
        while True:
            text = await connection.outbox.get()
            if text is None:
                await connection.ws.close(code=1001, message=b"devslack closed the connection")
                return
            try:
                await connection.ws.send_str(text)
            except ConnectionError:
                return

    def disconnect(self, *, graceful: bool = False) -> int:
        """Drops every connection: `graceful` sends Slack's `disconnect` message, else closes."""
        for connection in self._connections:
            if graceful:
                connection.outbox.put_nowait(json.dumps({
                    "type": "disconnect",
                    "reason": "refresh_requested",
                    "debug_info": {"host": "devslack"},
                }))
            else:
                connection.outbox.put_nowait(None)
        return len(self._connections)

    async def close(self) -> None:
        self._closed = True
        for delivery in self._by_envelope.values():
            if delivery.timer is not None:
                delivery.timer.cancel()
        for connection in list(self._connections):
            with suppress(ConnectionError):
                await connection.ws.close(code=1001, message=b"devslack is shutting down")
