"""The local Slack's line: one person on one machine, acting through its own page.

`Guard.middleware` runs before every route and refuses a `Host` that is not the local Slack's
own address (DNS rebinding: 421), a request a browser sent from another origin (`Origin`,
`Sec-Fetch-Site`: 403), a post to the page's API that is not JSON (415), and a page-API call
without this start's page token (401). The page gets the token as an HttpOnly, SameSite=Strict
cookie when it loads (`grant`, from `page`); the Web API keeps its bot token, Socket Mode its
tickets, response URLs their unguessable ids. No response carries a CORS header.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
WILDCARD_HOSTS = {"", "0.0.0.0", "::"}
PAGE_API = "/local/api/"
LIVE = "/local/live"
_BROWSER_ELSEWHERE = {"cross-site", "same-site"}  # same-site: another port on this machine
_HARDENING = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Referrer-Policy": "same-origin",
}


def _refused(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n", headers=_HARDENING)


def _denied(status: int, error: str) -> web.Response:
    return web.json_response({"ok": False, "error": error}, status=status, headers=_HARDENING)


class Guard:
    def __init__(self, *, host: str, port: Callable[[], int], token: str | None = None) -> None:
        self._host = host
        self._port = port
        self.token = token or secrets.token_urlsafe(32)
        """This start's page token: the page's cookie value, required to act as a person."""

    @property
    def cookie_name(self) -> str:
        # Cookies do not keep ports apart: two local Slacks on one machine need two names.
        return f"local-slack-{self._port()}"

    @property
    def hosts(self) -> frozenset[str]:
        """The `Host` values the local Slack answers: its own address, by any loopback name."""
        port = self._port()
        names = set(LOOPBACK_NAMES)
        if self._host not in WILDCARD_HOSTS:
            names.add(f"[{self._host}]" if ":" in self._host else self._host)
        return frozenset(f"{name}:{port}" for name in names)

    @property
    def origins(self) -> frozenset[str]:
        return frozenset(f"http://{host}" for host in self.hosts)

    def grant(self, response: web.StreamResponse) -> None:
        """Gives the page its token, as a cookie no script (ours included) can read."""
        response.set_cookie(
            self.cookie_name, self.token, path="/", httponly=True, samesite="Strict"
        )
        response.headers["Cache-Control"] = "no-store"

    # -- the checks ----------------------------------------------------------------------

    def refusal(self, request: web.Request) -> web.Response | None:
        """Why `request` is refused, as the answer to give; None when it may go on."""
        host = request.headers.get("Host", "").lower()
        if host not in self.hosts:
            return _refused(
                421, f"The local Slack answers only at http://127.0.0.1:{self._port()} "
                "(or localhost, [::1]), not at this Host: it is not a multi-user service."
            )
        origin = request.headers.get("Origin")
        if origin is not None and origin.lower() not in self.origins:
            return _refused(403, "The local Slack takes requests only from its own page, "
                                 "not from another origin.")
        if request.headers.get("Sec-Fetch-Site", "").lower() in _BROWSER_ELSEWHERE:
            navigation = (
                request.method in ("GET", "HEAD")
                and request.headers.get("Sec-Fetch-Mode") == "navigate"
                and request.headers.get("Sec-Fetch-Dest", "document") == "document"
            )
            if not navigation:  # following a link to the page is fine; anything else is not
                return _refused(403, "The local Slack takes requests only from its own page, "
                                     "not from another site.")
        path = request.path
        if path.startswith(PAGE_API) or path == LIVE:
            if request.method == "POST" and request.content_type != "application/json":
                return _denied(415, "json_required")
            given = request.cookies.get(self.cookie_name)
            if not given:
                return _denied(401, "not_authed")
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return _denied(401, "invalid_auth")
        return None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        refusal = self.refusal(request)
        if refusal is not None:
            return refusal
        try:
            response = await handler(request)
        except web.HTTPException as e:
            e.headers.update(_HARDENING)
            raise
        if not response.prepared:
            response.headers.update(_HARDENING)
            if not request.path.startswith("/static/"):
                response.headers.setdefault("Cache-Control", "no-store")
        return response
