"""Time for the Slack adapter: a `Ticker` (monotonic now, and waiting on an event with a
timeout) and the workspace-wide `Budget` for `chat.update`.

The publisher and the listeners take a `Ticker`, so tests drive time by hand instead of
sleeping; production uses `MonotonicTicker`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from contextlib import suppress
from typing import Protocol


class Ticker(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale."""
        ...

    async def wait(self, event: asyncio.Event, delay: float | None) -> None:
        """Returns when `event` is set or `delay` seconds (of this ticker) have passed."""
        ...


class MonotonicTicker:
    def now(self) -> float:
        return time.monotonic()

    async def wait(self, event: asyncio.Event, delay: float | None) -> None:
        if delay is None:
            await event.wait()
            return
        # asyncio.timeout, not wait_for: wait_for may swallow a cancellation that arrives as
        # its timeout does (Python 3.11), and a publisher that polls often would never stop.
        with suppress(TimeoutError):
            async with asyncio.timeout(max(delay, 0.0)):
                await event.wait()


_EPSILON = 1e-9  # float sums of refills fall a hair short of a whole token


class Budget:
    """At most `per_minute` calls in any 60 seconds, spread out: a bucket of `burst` tokens
    refilled at `per_minute` a minute, and a sliding window that holds the hard limit."""

    def __init__(self, per_minute: int, burst: int) -> None:
        if per_minute < 1 or burst < 1:
            raise ValueError("a budget needs at least one call a minute and a burst of one")
        self.per_minute = per_minute
        self.burst = min(burst, per_minute)
        self._rate = per_minute / 60.0
        self._tokens = float(self.burst)
        self._filled_at: float | None = None
        self._recent: deque[float] = deque()

    def _refill(self, now: float) -> None:
        if self._filled_at is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._filled_at) * self._rate)
        self._filled_at = now
        while self._recent and self._recent[0] <= now - 60.0:
            self._recent.popleft()

    def delay(self, now: float) -> float:
        """Seconds until a call may go; 0 when one may go now."""
        self._refill(now)
        wait = 0.0 if self._tokens >= 1 - _EPSILON else (1 - self._tokens) / self._rate
        if len(self._recent) >= self.per_minute:
            wait = max(wait, self._recent[0] + 60.0 - now)
        return wait

    def take(self, now: float) -> None:
        self._refill(now)
        self._tokens = max(self._tokens - 1, 0.0)
        self._recent.append(now)
