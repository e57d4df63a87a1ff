"""`Work`: the owner of what listeners do after acknowledging an event (Slack wants the ack
within 3 seconds; engine calls and replies come after). It names, caps, logs and, on `close()`,
cancels every task it started; `idle()` lets tests wait until nothing is in flight. A call
Slack refused is logged as one line (`CallFailed` says all there is); anything else with its
traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from contextlib import suppress
from typing import Any

from georgebot.slack.calls import CallFailed

log = logging.getLogger(__name__)


class Work:
    def __init__(self, *, limit: int = 32) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(limit)
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False

    @property
    def count(self) -> int:
        return len(self._tasks)

    def spawn(self, name: str, job: Coroutine[Any, Any, None]) -> None:
        if self._closed:
            job.close()
            log.info("dropped %s: the Slack surface is closing", name)
            return
        task = asyncio.create_task(self._run(name, job), name=f"slack:{name}")
        self._tasks.add(task)
        self._idle.clear()
        task.add_done_callback(self._done)

    async def _run(self, name: str, job: Coroutine[Any, Any, None]) -> None:
        try:
            async with self._slots:
                await job
        except asyncio.CancelledError:
            raise
        except CallFailed as e:
            log.warning("handling %s failed: %s", name, e)
        except Exception:
            log.exception("handling %s failed", name)
        finally:
            job.close()  # a job cancelled while it waited for a slot never started

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self._idle.set()

    async def idle(self) -> None:
        await self._idle.wait()

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError):
                await task
