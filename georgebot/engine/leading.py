"""`Leadership`: what one George at a time does among those sharing a database (the Git sync
that creates and cancels runs; a workspace's outbox), held as a leased row (`Store.lead`).

The holder renews it once a third of the lease has passed; another George takes it once it
has lapsed, so a killed leader is replaced within one lease. A George that cannot reach the
database stops leading before its lease may have run out, so two never lead at once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from georgebot import errors
from georgebot.engine.storage import StoreThread
from georgebot.store import Store

log = logging.getLogger(__name__)


class Leadership:
    def __init__(self, name: str, *, owner: str, store: Store, io: StoreThread,
                 now: Callable[[], datetime], lease: timedelta, what: str) -> None:
        self.name = name
        self.owner = owner
        self._store = store
        self._io = io
        self._now = now
        self._lease = lease
        self._what = what  # for the log: "the Git sync", "the outbox of T0123"
        self._until: datetime | None = None  # while we lead: when our lease ends at the latest
        self._renewed: datetime | None = None

    @property
    def renew_every(self) -> float:
        """Seconds: how often a holder renews, and a follower looks whether it may take over."""
        return self._lease.total_seconds() / 3

    @property
    def leading(self) -> bool:
        return self._until is not None and self._now() < self._until - self._lease / 5

    async def hold(self) -> bool:
        """Leads if it can: keeps the lease (renewed once a third of it has passed) or takes
        it if it is free or lapsed. True while this George leads; StoreBusy when the database
        cannot say (and the lease this George may hold is about to end)."""
        now = self._now()
        if self.leading and self._renewed is not None and now < self._renewed + self._lease / 3:
            return True
        was = self.leading
        try:
            held = await self._io(self._store.lead, self.name, self.owner, now, now + self._lease)
        except errors.StoreBusy as e:
            if self.leading:
                return True  # the lease surely holds a while yet
            if was:
                log.warning("stopped leading %s: the database is not writable (%s)", self._what, e)
            raise
        if held:
            self._until, self._renewed = now + self._lease, now
            if not was:
                log.info("this George now leads %s", self._what)
        else:
            if was:
                log.warning("another George leads %s now", self._what)
            self._until = self._renewed = None
        return held

    async def resign(self) -> None:
        """On a clean stop: another George may lead at once."""
        if self._until is None:
            return
        self._until = self._renewed = None
        with contextlib.suppress(errors.StoreBusy):  # else it lapses by itself
            await self._io(self._store.resign, self.name, self.owner, self._now())
