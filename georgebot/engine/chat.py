"""`ChatDesk`: what a chat adapter reads and records, through the engine: cards' views, the
status, the outbox, the messages George posted. Every call runs on the store's thread, so a
Slack listener or the card publisher never blocks the event loop on the database, and the
adapters never touch the store (DESIGN.md: a second chat adapter copies no rule).

Decisions (`decide`, `reply`, `retry`, `ask_again`) stay on `Engine`; this is reading and
bookkeeping only. The engine builds one as `engine.desk`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from georgebot.engine.storage import StoreThread
from georgebot.model.approvals import Request
from georgebot.model.views import JobView, OutboxItem, SlackMessage, StatusView
from georgebot.store import Store
from georgebot.store.views import job_views, status_view


class ChatDesk:
    def __init__(self, store: Store, io: StoreThread, now: Callable[[], datetime]) -> None:
        self._store = store
        self._io = io
        self._now = now

    async def active_runs(self) -> list[int]:
        return [r.id for r in await self._io(self._store.load_active)]

    async def job(self, run_id: int) -> JobView:
        """What a run's card shows, as of now."""
        def read() -> JobView:
            return job_views(self._store, [self._store.load_run(run_id)])[0]

        return await self._io(read)

    async def status(self, job: str | None = None) -> StatusView:
        return await self._io(status_view, self._store, job)

    async def job_name(self, run_id: int) -> str:
        return (await self._io(self._store.load_run, run_id)).name

    async def author(self, run_id: int) -> str | None:
        """The e-mail of whoever last committed the run's job, when Git said."""
        return (await self._io(self._store.load_run, run_id)).spec.author

    async def request(self, request_id: str) -> Request | None:
        return await self._io(self._store.request, request_id)

    # --- messages George posted ---------------------------------------------------

    async def message_at(self, channel_id: str, ts: str) -> SlackMessage | None:
        """The message of George's at that place (a card or a request), if any."""
        return await self._io(self._store.find_slack_message, channel_id, ts)

    async def card_of(self, run_id: int) -> SlackMessage | None:
        return await self._io(self._store.slack_message, run_id, "card")

    async def request_messages(self, run_id: int) -> list[tuple[Request, SlackMessage]]:
        """The run's requests George posted, with their votes and messages, oldest first."""
        return await self._io(self._store.request_messages, run_id)

    async def latest_request_message(self, run_id: int, step: str) -> SlackMessage | None:
        return await self._io(self._store.slack_message, run_id, "approval", step)

    async def posted(
        self, run_id: int, *, kind: str, channel_id: str, ts: str, step: str | None = None,
        request_id: str | None = None, replacing: str | None = None,
    ) -> SlackMessage:
        """Slack accepted a card or a request: where it is, so it is updated and found again.
        Returns the one the database holds: another George's, when it recorded one first."""
        return await self._io(self._store.record_slack_message, run_id, kind=kind, channel_id=channel_id,
                              ts=ts, step=step, request_id=request_id, at=self._now(), replacing=replacing)

    # --- the outbox ---------------------------------------------------------------

    async def outbox(self, limit: int = 100) -> list[OutboxItem]:
        return await self._io(self._store.pending_outbox, limit)

    async def delivered(self, outbox_id: int) -> None:
        await self._io(self._store.mark_delivered, outbox_id, self._now())
