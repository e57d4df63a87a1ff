"""`Notices`: PostgreSQL's LISTEN on George's channel (`channel_of` its schema), so a run another George
changed is read again at once and its next step starts wherever there is room.

One connection of its own, in a daemon thread (psycopg blocks while it waits); each
announcement is handed to `heard` in that thread (the caller hops onto its event loop). A
lost connection is opened again with backoff, and then `heard("gap")`: announcements may have
been missed meanwhile, so everything is read again. SQLite has no NOTIFY: there the passes'
full reads find what others changed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg
import sqlalchemy as sa
from psycopg import sql

from georgebot.store.records import channel_of

log = logging.getLogger(__name__)


class Notices:
    def __init__(self, url: str, heard: Callable[[str], None], *, poll: float = 1.0) -> None:
        self._conninfo = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(
            hide_password=False)
        self._heard = heard
        self._poll = poll
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._thread = threading.Thread(target=self._run, name="george-notices", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def listening(self, timeout: float) -> bool:
        """Waits until the LISTEN is in place (tests)."""
        return self._listening.wait(timeout)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._poll + 2)

    def _run(self) -> None:
        delay, lost = 0.5, False
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    schema = conn.execute("SELECT current_schema()").fetchone()
                    assert schema is not None
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel_of(str(schema[0])))))
                    self._listening.set()
                    if lost:
                        log.info("listening to other Georges again")
                        self._heard("gap")
                    delay, lost = 0.5, False
                    while not self._stop.is_set():
                        for notice in conn.notifies(timeout=self._poll):
                            self._heard(notice.payload)
            except psycopg.Error as e:
                self._listening.clear()
                if not lost:
                    log.warning("lost the database's announcements (%s); other Georges' changes are "
                                "seen at the next full pass until it is back",
                                str(e).strip() or type(e).__name__)
                lost = True
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)
