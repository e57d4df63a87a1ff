"""The web page at `/`: static HTML, CSS and JavaScript, and the live channel that updates it.

`Page` serves `static/` (no build step) and `/local/live`, a websocket on which every open page
hears `{"type": "changed", "version": N}` after each change and then refetches
`/local/api/state`. Loading `/` (or `/local/session`, which the page calls when George restarted)
hands the page this start's token as a cookie (`Guard.grant`). Permalinks (`/archives/C…/p…`)
open the page at that message. `/local/emoji.json` is the emoji table the page draws with.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from aiohttp import WSMsgType, web

from georgebot.devslack.emoji import emoji_table

STATIC = Path(__file__).parent / "static"


class Page:
    def __init__(self, *, grant: Callable[[web.StreamResponse], None]) -> None:
        self._grant = grant
        self._sockets: dict[web.WebSocketResponse, asyncio.Event] = {}
        self.version = 0

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/", self._index),
            web.get("/local/session", self._session),
            web.get("/local/live", self._live),
            web.get("/local/emoji.json", self._emoji),
            web.get("/archives/{channel}/p{stamp:[0-9]+}", self._permalink),
            web.static("/static", STATIC),
        ]

    def notify(self, version: int) -> None:
        self.version = version
        for dirty in self._sockets.values():
            dirty.set()

    async def _index(self, request: web.Request) -> web.FileResponse:
        response = web.FileResponse(STATIC / "index.html")
        self._grant(response)
        return response

    async def _session(self, request: web.Request) -> web.Response:
        response = web.Response(status=204)
        self._grant(response)
        return response

    async def _emoji(self, request: web.Request) -> web.Response:
        return web.json_response(emoji_table(), headers={"Cache-Control": "max-age=86400"},
                                 dumps=lambda data: json.dumps(data, ensure_ascii=False))

    async def _permalink(self, request: web.Request) -> web.Response:
        stamp = request.match_info["stamp"]
        ts = f"{stamp[:-6]}.{stamp[-6:]}"
        location = f"/?channel={request.match_info['channel']}&ts={ts}"
        if "thread_ts" in request.query:
            location += f"&thread_ts={request.query['thread_ts']}"
        raise web.HTTPFound(location)

    async def _live(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        dirty = asyncio.Event()
        dirty.set()
        self._sockets[ws] = dirty
        writer = asyncio.create_task(self._write(ws, dirty), name="devslack-live-writer")
        try:
            async for message in ws:
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            del self._sockets[ws]
            writer.cancel()
            with suppress(asyncio.CancelledError):
                await writer
        return ws

    async def _write(self, ws: web.WebSocketResponse, dirty: asyncio.Event) -> None:
        while not ws.closed:
            await dirty.wait()
            dirty.clear()
            try:
                await ws.send_str(json.dumps({"type": "changed", "version": self.version}))
            except ConnectionError:
                return

    async def close(self) -> None:
        for ws in list(self._sockets):
            with suppress(ConnectionError):
                await ws.close()
