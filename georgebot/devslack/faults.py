"""Fault injection: Web API methods that answer 429 for a while, for testing George's patience.

`Faults.rate_limit("chat.update", calls=3, retry_after=1)` makes the next three calls of that
method answer HTTP 429 with `Retry-After: 1` and `{"ok": false, "error": "ratelimited"}`, as
Slack does. Socket disconnects live with the `SocketHub`; `LocalSlack` offers both.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _RateLimit:
    calls: int
    retry_after: int


class Faults:
    def __init__(self) -> None:
        self._rate_limits: dict[str, _RateLimit] = {}

    def rate_limit(self, method: str, *, calls: int = 1, retry_after: int = 1) -> None:
        if calls < 0 or retry_after < 0:
            raise ValueError("calls and retry_after must not be negative")
        if calls == 0:
            self._rate_limits.pop(method, None)
        else:
            self._rate_limits[method] = _RateLimit(calls, retry_after)

    def take_rate_limit(self, method: str) -> int | None:
        """The Retry-After to answer this call of `method` with, or None to serve it."""
        limit = self._rate_limits.get(method)
        if limit is None:
            return None
        limit.calls -= 1
        if limit.calls <= 0:
            del self._rate_limits[method]
        return limit.retry_after

    def clear(self) -> None:
        self._rate_limits.clear()
