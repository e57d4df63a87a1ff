"""`response_url`s: where an app answers a slash command or a button click after acking it.

`ResponseUrls.issue` makes a URL for one command or click; `POST /local/response/<id>` (what
bolt's `respond()` calls) shows the answer as Slack does: ephemeral to the person who typed the
command by default, in the channel with `response_type: in_channel`, or in place of the clicked
message with `replace_original`/`delete_original`. A URL works five times within 30 minutes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from georgebot.devslack.blocks import MAX_TEXT_CHARS, BlocksFormatError, check_blocks, parse_blocks
from georgebot.devslack.events import EventSource
from georgebot.devslack.state import JSON, Workspace

MAX_USES = 5
LIFETIME_SECONDS = 30 * 60


@dataclass
class ResponseTarget:
    id: str
    user: str
    channel: str
    created: float
    message_ts: str | None = None
    thread_ts: str | None = None
    uses: int = 0


class ResponseRejected(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


class ResponseUrls:
    def __init__(self, ws: Workspace, events: EventSource, base_url: Callable[[], str]) -> None:
        self.ws = ws
        self.events = events
        self._base_url = base_url
        self._targets: dict[str, ResponseTarget] = {}

    def issue(
        self, *, user: str, channel: str, message_ts: str | None = None,
        thread_ts: str | None = None,
    ) -> str:
        now = self.ws.now()
        for expired in [t.id for t in self._targets.values() if now - t.created > LIFETIME_SECONDS]:
            del self._targets[expired]
        target = ResponseTarget(
            uuid.uuid4().hex, user, channel, now, message_ts=message_ts, thread_ts=thread_ts,
        )
        self._targets[target.id] = target
        return f"{self._base_url()}/local/response/{target.id}"

    async def handle(self, request: web.Request) -> web.Response:
        target = self._targets.get(request.match_info["id"])
        if target is None or self.ws.now() - target.created > LIFETIME_SECONDS:
            return web.Response(status=404, text="expired_url")
        if target.uses >= MAX_USES:
            return web.Response(status=404, text="used_url")
        try:
            body = json.loads(await request.text())
        except json.JSONDecodeError:
            return web.Response(status=400, text="invalid_payload")
        if not isinstance(body, dict):
            return web.Response(status=400, text="invalid_payload")
        try:
            self.apply(target, body)
        except ResponseRejected as e:
            return web.Response(status=e.status, text=e.error)
        return web.Response(text="ok")

    def apply(self, target: ResponseTarget, body: JSON) -> None:
        """Shows `body` (a response_url message, or a slash command's ack payload)."""
        channel = self.ws.channels.get(target.channel)
        if channel is None:
            raise ResponseRejected(404, "channel_not_found")
        original = (
            self.ws.message(channel.id, target.message_ts) if target.message_ts else None
        )
        if body.get("delete_original") in (True, "true") and original is not None:
            target.uses += 1
            self.ws.delete_message(original)
            self.events.message_deleted(original)
            return
        text = body.get("text")
        text = text if isinstance(text, str) else None
        try:
            blocks = parse_blocks(body.get("blocks"))
        except BlocksFormatError as e:
            raise ResponseRejected(400, "invalid_blocks_format") from e
        if not text and not blocks:
            raise ResponseRejected(400, "no_text")
        if blocks and check_blocks(blocks):
            raise ResponseRejected(400, "invalid_blocks")
        if text and len(text) > MAX_TEXT_CHARS:
            raise ResponseRejected(400, "msg_too_long")
        target.uses += 1
        thread_ts = body.get("thread_ts") or target.thread_ts
        if body.get("replace_original") in (True, "true") and original is not None:
            previous = self.ws.update_message(
                original, text=text or "", blocks=blocks or [], editor=self.ws.bot.user_id
            )
            self.events.message_changed(original, previous)
        elif body.get("response_type") == "in_channel":
            message = self.ws.add_message(
                channel, text=text or "", user=self.ws.bot.user_id, blocks=blocks,
                from_bot=True, thread_ts=thread_ts,
            )
            self.events.message_posted(message)
        else:
            self.ws.add_ephemeral(
                channel, target.user, text=text or "", blocks=blocks, thread_ts=thread_ts
            )

    def target_of(self, url: str) -> ResponseTarget | None:
        return self._targets.get(url.rstrip("/").rsplit("/", 1)[-1])
