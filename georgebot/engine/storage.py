"""`StoreThread`: every call the engine makes to the store runs on one thread of its own, so
database work never blocks the event loop (a write waiting 5 s on SQLite's lock stalls
nothing but that write), and calls keep the order they were made in.

The engine owns one; `Store.guarded` turns a busy, locked, read-only or unreachable database
into `errors.StoreBusy`, which callers answer by writing again later (`patiently`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from georgebot import errors
from georgebot.store import Store

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


class StoreThread:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._pool: ThreadPoolExecutor | None = None
        self.writable = True  # False since the last write failed with StoreBusy

    async def __call__(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="george-store")
        call = functools.partial(self.store.guarded, fn, *args, **kwargs)
        commits = self.store.db.commits
        try:
            result = await asyncio.get_running_loop().run_in_executor(self._pool, call)
        except errors.StoreBusy:
            self.writable = False
            raise
        if self.store.db.commits > commits:
            self.writable = True  # a write went through: the database takes writes again
        return result

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


async def patiently(
    write: Callable[[], Awaitable[T]], *, what: str, first: float = 0.05, most: float = 5.0
) -> T:
    """Writes again, with backoff, until the database takes it: an outcome George holds is
    kept and written later, never dropped and never re-run."""
    delay = first
    while True:
        try:
            return await write()
        except errors.StoreBusy as e:
            log.warning("could not write %s (%s); trying again in %.1fs", what, e, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, most)


async def breathe(n: int, every: int = 200) -> None:
    """Lets the event loop run between every `every` items of a long loop over runs, so a pass
    over thousands of jobs never holds it for long (Slack's acknowledgements wait on it)."""
    if n and n % every == 0:
        await asyncio.sleep(0)
