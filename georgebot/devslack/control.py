"""Tooling routes: the whole state, the Web API call log, and fault injection.

`GET /local/api/state` is the workspace as JSON (see `shapes.state_json`) plus the app's
connection count; `?as=USER` (as the page asks) leaves out everyone else's ephemeral messages
and App Home, which Slack shows only to their person. `GET /local/api/calls` lists recent Web
API calls; `POST /local/api/faults` takes `{"rate_limit": {"method", "calls", "retry_after"}}`
and/or `{"disconnect": true, "graceful": false}`. Like the rest of `/local/api/`, only the page
(or a client holding its cookie) may call them: `Guard` checks first.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict

from aiohttp import web

from georgebot.devslack.faults import Faults
from georgebot.devslack.socket import SocketHub
from georgebot.devslack.state import JSON
from georgebot.devslack.webapi import WebApi


class Control:
    def __init__(
        self, *, snapshot: Callable[[], JSON], api: WebApi, hub: SocketHub, faults: Faults
    ) -> None:
        self._snapshot = snapshot
        self._api = api
        self._hub = hub
        self._faults = faults

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/local/api/state", self._state),
            web.get("/local/api/calls", self._calls),
            web.post("/local/api/faults", self._fault),
        ]

    async def _state(self, request: web.Request) -> web.Response:
        body = self._snapshot()
        if "as" in request.query:
            viewer = request.query["as"]
            for private in ("ephemerals", "home"):
                body[private] = {user: seen for user, seen in body[private].items() if user == viewer}
        return web.json_response(body)

    async def _calls(self, request: web.Request) -> web.Response:
        return web.json_response({"calls": [asdict(c) for c in self._api.calls]})

    async def _fault(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.text())
        except json.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            return web.json_response({"ok": False, "error": "invalid_json"}, status=400)
        answer: JSON = {"ok": True}
        limit = body.get("rate_limit")
        if isinstance(limit, dict):
            try:
                self._faults.rate_limit(
                    str(limit["method"]),
                    calls=int(limit.get("calls", 1)),
                    retry_after=int(limit.get("retry_after", 1)),
                )
            except (KeyError, TypeError, ValueError) as e:
                return web.json_response(
                    {"ok": False, "error": f"invalid_rate_limit: {e}"}, status=400
                )
        if body.get("clear"):
            self._faults.clear()
        if body.get("disconnect"):
            answer["disconnected"] = self._hub.disconnect(graceful=bool(body.get("graceful")))
        return web.json_response(answer)
