"""`CardPublisher`: engine changes become one living card per job run, and the outbox becomes
Slack messages. `SlackSurface` owns it (`start()`/`close()`); the engine calls `notify(run_id)`.

One task does all the sending, so Slack sees a steady trickle: a card is updated at most once
every `min_interval` seconds and always with the latest state (rendered when sent, not when
the change happened); `chat.update` calls share a workspace-wide budget, newest changes
first; a 429 pauses that kind of call for its Retry-After and the change stays owed. The
card's channel and timestamp are stored, so a restarted George updates the same card; if
Slack lost it (`message_not_found`), a new one is posted and recorded.

Among Georges sharing a database, the one that leads the workspace's outbox (`Leadership`)
posts and updates; the others wait, and one of them takes over within a lease if it dies.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field

from slack_sdk.models.blocks import Block
from slack_sdk.web.async_client import AsyncWebClient

from georgebot import errors
from georgebot.engine.leading import Leadership
from georgebot.engine.service import Engine
from georgebot.model.approvals import Closed, Request
from georgebot.model.views import JobView, OutboxItem, SlackMessage
from georgebot.slack import blocks as render
from georgebot.slack import messages
from georgebot.slack.calls import CONNECTION, RATE_LIMITED, CallFailed, call
from georgebot.slack.directory import Directory
from georgebot.slack.pacing import Budget, MonotonicTicker, Ticker

log = logging.getLogger(__name__)

NEVER = float("-inf")
_GONE = ("message_not_found", "channel_not_found", "cant_update_message", "is_archived")
_REMOVED_IN = re.compile(r"removed from Git in ([0-9a-f]{7,40})")


@dataclass(frozen=True)
class PublisherSettings:
    min_interval: float = 2.0
    """Seconds between two updates of the same card."""
    updates_per_minute: int = 48
    """Workspace-wide `chat.update` budget (Slack allows about 50 a minute)."""
    burst: int = 5
    outbox_poll: float = 5.0
    """Safety net: how often the outbox is read when nothing announced a change."""
    retry_delay: float = 30.0
    """After Slack refused a card or a message for a reason that may pass."""
    connection_delay: float = 5.0
    max_attempts: int = 5
    """Refusals of one outbox message before it is given up (and logged)."""
    approve_reactions: tuple[str, ...] = ("white_check_mark", "heavy_check_mark")
    reject_reactions: tuple[str, ...] = ("x",)


@dataclass
class PublisherStats:
    posts: int = 0
    updates: int = 0
    rate_limited: int = 0
    replaced_cards: int = 0


@dataclass
class _Card:
    channel: str
    ts: str
    sent: str | None = None  # the last payload Slack accepted
    sent_at: float = NEVER


@dataclass
class _Change:
    seq: int
    at: float


@dataclass
class _Pass:
    now: float
    due: list[float] = field(default_factory=list)

    def later(self, at: float) -> None:
        self.due.append(at)


class CardPublisher:
    def __init__(
        self,
        engine: Engine,
        client: AsyncWebClient,
        *,
        settings: PublisherSettings | None = None,
        directory: Directory | None = None,
        ticker: Ticker | None = None,
        leadership: Leadership | None = None,
    ) -> None:
        self.engine = engine
        self.leadership = leadership
        self.desk = engine.desk
        self.client = client
        self.settings = settings or PublisherSettings()
        self._ticker = ticker or MonotonicTicker()
        self.directory = directory or Directory(client, ticker=self._ticker)
        self.budget = Budget(self.settings.updates_per_minute, self.settings.burst)
        self.stats = PublisherStats()
        self.listeners: list[Callable[[int], None]] = []
        """Called with a run id after Slack accepted something for it (tests, benchmarks)."""
        self._cards: dict[int, _Card] = {}
        self._requests: dict[str, _Card] = {}  # request id -> its message, as last sent
        self._request_runs: set[int] = set()  # runs whose request messages may be owed an edit
        self._links: dict[tuple[str, str], str] = {}  # (channel, ts) -> permalink
        self._dirty: dict[int, _Change] = {}
        self._seq = 0
        self._retry_at: dict[int, float] = {}  # run id -> not before (a refused card)
        self._row_retry_at: dict[int, float] = {}
        self._row_failures: dict[int, int] = {}
        self._paused: dict[str, float] = {}  # "chat.update" | "post" -> until
        self._wake = asyncio.Event()
        self._quiet = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- life cycle -----------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        self.engine.attach(self)
        for run_id in await self.desk.active_runs():
            self.changed(run_id)  # a restart brings every live card up to date
        self.wake()
        self._task = asyncio.create_task(self._loop(), name="slack:card-publisher")

    async def close(self) -> None:
        self.engine.detach(self)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        if self.leadership is not None:
            await self.leadership.resign()  # another George delivers at once

    def changed(self, run_id: int) -> None:
        """The engine's `ChatPort`: this run changed; its card is owed an update."""
        self._seq += 1
        previous = self._dirty.get(run_id)
        self._dirty[run_id] = _Change(self._seq, self._ticker.now() if previous is None
                                      else max(previous.at, self._ticker.now()))
        self._request_runs.add(run_id)
        self.wake()

    def wake(self) -> None:
        """Look again now (the outbox may hold something nobody announced)."""
        self._quiet.clear()
        self._wake.set()

    async def settled(self) -> None:
        """Waits until no card update and no outbox message is owed (tests, benchmarks)."""
        await self._quiet.wait()

    def paused_until(self, method: str) -> float:
        return self._paused.get("chat.update" if method == "chat.update" else "post", NEVER)

    # --- the loop -------------------------------------------------------------------

    @property
    def leading(self) -> bool:
        return self.leadership is None or self.leadership.leading

    async def _lead(self) -> bool:
        """Whether this George delivers now; one that just took over brings every live card
        up to date (the cards another George posted are read from the store)."""
        if self.leadership is None:
            return True
        was = self.leadership.leading
        try:
            if not await self.leadership.hold():
                return False
        except errors.StoreBusy:
            return False
        if not was:
            self._cards.clear()
            self._requests.clear()
            for run_id in await self.desk.active_runs():
                self.changed(run_id)
        return True

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                if not await self._lead():
                    assert self.leadership is not None
                    await self._ticker.wait(self._wake, self.leadership.renew_every)
                    continue
                delay = await self._pass()
            except _NoLongerLeading:
                log.info("stopped delivering to Slack mid-way: another George leads the outbox now")
                continue
            except Exception:
                log.exception("publishing to Slack failed; trying again shortly")
                delay = self.settings.connection_delay
            if delay is not None and delay <= 0:
                await asyncio.sleep(0)  # let the engine run between busy passes
                continue
            poll = self.settings.outbox_poll if self.leadership is None else min(
                self.settings.outbox_poll, self.leadership.renew_every)
            await self._ticker.wait(self._wake, poll if delay is None else min(delay, poll))

    async def _pass(self) -> float | None:
        """Sends what is owed and may go now; returns seconds until more may go (None:
        nothing is scheduled)."""
        step = _Pass(self._ticker.now())
        await self._drain_outbox(step)
        await self._post_new_cards(step)
        await self._update_cards(step)
        await self._update_requests(step)
        if (not await self.desk.outbox(limit=1) and not self._dirty  # dirty read after the await
                and not self._request_runs):
            self._quiet.set()
        if not step.due:
            return None
        return min(step.due) - self._ticker.now()

    def _blocked(self, kind: str, step: _Pass) -> bool:
        until = self._paused.get(kind, NEVER)
        if until > step.now:
            step.later(until)
            return True
        return False

    def _pause_for(self, failure: CallFailed, step: _Pass) -> bool:
        """A 429 or a lost connection pauses that kind of call; True when it did."""
        now = self._ticker.now()
        if failure.error == RATE_LIMITED:
            kind = "chat.update" if failure.method == "chat.update" else "post"
            until = now + (failure.retry_after or 1.0)
            self._paused[kind] = max(self._paused.get(kind, NEVER), until)
            self.stats.rate_limited += 1
            log.info("Slack rate-limited %s; waiting %.0fs", failure.method, until - now)
        elif failure.error == CONNECTION:
            until = now + self.settings.connection_delay
            for kind in ("chat.update", "post"):
                self._paused[kind] = max(self._paused.get(kind, NEVER), until)
            log.warning("could not reach Slack (%s); trying again in %.0fs", failure.method,
                        self.settings.connection_delay)
        else:
            return False
        step.later(until)
        return True

    def _sent(self, run_id: int) -> None:
        for listener in self.listeners:
            listener(run_id)

    def _settle(self, run_id: int, seq: int) -> None:
        """The card shows the state as of `seq`: nothing is owed unless a newer change came."""
        change = self._dirty.get(run_id)
        if change is not None and change.seq <= seq:
            del self._dirty[run_id]
        self._retry_at.pop(run_id, None)

    # --- cards ----------------------------------------------------------------------

    async def _render(self, run_id: int) -> tuple[list[Block], str]:
        return render.job_card(await self.desk.job(run_id))

    async def _card(self, run_id: int) -> _Card:
        """The run's card: remembered, stored (after a restart), or posted now."""
        card = self._cards.get(run_id)
        if card is not None:
            return card
        row = await self.desk.card_of(run_id)
        if row is not None:
            card = self._cards[run_id] = _Card(row.channel_id, row.ts)
            return card
        return await self._post_card(run_id)

    async def _post_card(self, run_id: int, replacing: str | None = None) -> _Card:
        seq = self._seq
        view = await self.desk.job(run_id)
        blocks, text = render.job_card(view)
        channel = await self.directory.channel(view.channel) or view.channel
        channel_id, ts = await self._post(channel, text=text, blocks=blocks)
        kept = await self.desk.posted(run_id, kind="card", channel_id=channel_id, ts=ts, replacing=replacing)
        if kept.ts != ts:  # another George posted this run's card a moment before: one stays
            await self._withdraw(channel_id, ts)
            card = self._cards[run_id] = _Card(kept.channel_id, kept.ts)
            return card
        card = _Card(channel_id, ts, _payload(blocks, text), self._ticker.now())
        self._cards[run_id] = card
        self._settle(run_id, seq)
        self._sent(run_id)
        return card

    async def _post_new_cards(self, step: _Pass) -> None:
        for run_id in [r for r in self._dirty if r not in self._cards]:
            if self._blocked("post", step):
                return
            if self._retry_at.get(run_id, NEVER) > step.now:
                step.later(self._retry_at[run_id])
                continue
            try:
                await self._card(run_id)
            except CallFailed as e:
                if self._pause_for(e, step):
                    return
                self._refused(run_id, step, f"could not post the card of run {run_id}", e)

    def _refused(self, run_id: int, step: _Pass, what: str, failure: CallFailed) -> None:
        retry = self._ticker.now() + self.settings.retry_delay
        self._retry_at[run_id] = retry
        step.later(retry)
        log.warning("%s: Slack said %s; trying again in %.0fs", what, failure.error,
                    self.settings.retry_delay)

    async def _update_cards(self, step: _Pass) -> None:
        if self._blocked("chat.update", step):
            return
        ready: list[tuple[float, int, int]] = []
        for run_id, change in self._dirty.items():
            card = self._cards.get(run_id)
            if card is None:
                continue
            at = max(card.sent_at + self.settings.min_interval, self._retry_at.get(run_id, NEVER))
            if at > step.now:
                step.later(at)
            else:
                ready.append((change.at, change.seq, run_id))
        wait = self.budget.delay(step.now)
        if ready and wait > 0:  # no card is rendered while none may be sent
            step.later(step.now + wait)
            return
        for _, _, run_id in sorted(ready, reverse=True):  # newest changes first
            if self._blocked("chat.update", step):
                return
            if run_id not in self._dirty:
                continue
            try:
                if not await self._update(run_id, step):
                    return
            except CallFailed as e:
                if self._pause_for(e, step):
                    return
                self._refused(run_id, step, f"could not update the card of run {run_id}", e)
            except _NoLongerLeading:
                raise
            except Exception:
                log.exception("rendering the card of run %s failed", run_id)
                self._retry_at[run_id] = self._ticker.now() + self.settings.retry_delay

    async def _update(self, run_id: int, step: _Pass) -> bool:
        """One card brought up to date; False when the budget says to stop for now."""
        card = self._cards[run_id]
        seq = self._seq
        blocks, text = await self._render(run_id)
        payload = _payload(blocks, text)
        if payload == card.sent:
            self._settle(run_id, seq)
            return True
        now = self._ticker.now()
        wait = self.budget.delay(now)
        if wait > 0:
            step.later(now + wait)
            return False
        self.budget.take(now)
        try:
            await self._still_leading()
            await call("chat.update", self.client.chat_update(
                channel=card.channel, ts=card.ts, text=text, blocks=blocks))
        except CallFailed as e:
            if e.error not in _GONE:
                raise
            await self._replace_card(run_id, card, e.error)
            return True
        self.stats.updates += 1
        card.sent, card.sent_at = payload, self._ticker.now()
        self._settle(run_id, seq)
        self._sent(run_id)
        return True

    async def _replace_card(self, run_id: int, old: _Card, error: str) -> None:
        log.info("the card of run %s is gone from Slack (%s); posting a new one", run_id, error)
        self._cards.pop(run_id, None)
        await self._post_card(run_id, replacing=old.ts)
        self.stats.replaced_cards += 1
        await self._ask_again(run_id, old)

    async def _ask_again(self, run_id: int, old: _Card) -> None:
        """Open requests that lived in the lost card's thread are posted again (the engine
        queues them; the requests and their votes stay as they are)."""
        if await self.engine.ask_again(run_id, old.channel):
            self.wake()

    # --- request messages -------------------------------------------------------------

    async def _update_requests(self, step: _Pass) -> None:
        """Each request's message tells its story in place: how far it has got while live, how
        it ended once closed (with no buttons left). Edits share the cards' `chat.update`
        budget and pacing."""
        for run_id in sorted(self._request_runs):
            if self._blocked("chat.update", step):
                return
            self._request_runs.discard(run_id)
            try:
                done = await self._update_requests_of(run_id, step)
            except CallFailed as e:
                self._request_runs.add(run_id)
                if self._pause_for(e, step):
                    return
                self._refused(run_id, step, f"could not edit a request of run {run_id}", e)
                continue
            except _NoLongerLeading:
                self._request_runs.add(run_id)
                raise
            except Exception:
                self._request_runs.add(run_id)
                log.exception("editing the requests of run %s failed", run_id)
                step.later(self._ticker.now() + self.settings.retry_delay)
                continue
            if not done:
                self._request_runs.add(run_id)
                return

    async def _update_requests_of(self, run_id: int, step: _Pass) -> bool:
        """False when the budget says to stop for now (the run stays owed)."""
        pairs = await self.desk.request_messages(run_id)
        if not pairs:
            return True
        view: JobView | None = None  # read once for all the run's requests
        for request, message in pairs:
            if request.kind == "question" and request.closed is None and request.id not in self._requests:
                continue  # nothing about a live question changes
            view = view or await self.desk.job(run_id)
            shown = await self._shown(request, view, message, pairs)
            blocks, text = self._render_request(shown)
            payload = _payload(blocks, text)
            sent = self._requests.get(request.id)
            if sent is not None and sent.sent == payload:
                continue
            now = self._ticker.now()
            if sent is not None and sent.sent_at + self.settings.min_interval > now:
                step.later(sent.sent_at + self.settings.min_interval)
                self._request_runs.add(run_id)
                continue
            wait = self.budget.delay(now)
            if wait > 0:
                step.later(now + wait)
                return False
            self.budget.take(now)
            await self._still_leading()
            try:
                await call("chat.update", self.client.chat_update(
                    channel=message.channel_id, ts=message.ts, text=text, blocks=blocks))
            except CallFailed as e:
                if e.error not in _GONE:
                    raise
                log.info("the message of request %s is gone from Slack (%s); leaving it", request.id,
                         e.error)
            self.stats.updates += 1
            self._requests[request.id] = _Card(message.channel_id, message.ts, payload,
                                               self._ticker.now())
            self._sent(run_id)
        return True

    def _render_request(self, shown: render.RequestShown) -> tuple[list[Block], str]:
        return render.approval_request(shown, approve=self.settings.approve_reactions,
                                       reject=self.settings.reject_reactions)

    async def _shown(self, request: Request, view: JobView, message: SlackMessage | None,
                     siblings: Sequence[tuple[Request, SlackMessage]] = ()) -> render.RequestShown:
        """What a request's message shows now, from the request, its votes, its neighbours and
        its run as it stands (`view`)."""
        replaces = any(r.step == request.step and m.id < message.id for r, m in siblings) \
            if message is not None else False
        shown = render.RequestShown(
            id=request.id, job=view.name, step=request.step, text=request.text,
            approvers=request.approvers, quorum=request.quorum,
            question=request.kind == "question", approvals=request.approvals(), replaces=replaces,
            closed=request.closed.value if request.closed else None, closed_at=request.closed_at,
        )
        if request.closed is Closed.APPROVED:
            return _with(shown, closed_by=request.approvals())
        if request.closed is Closed.REJECTED:
            no = [v for v in request.votes if not v.approve]
            return _with(shown, closed_by=(no[-1].user,) if no else (), note=no[-1].note if no else "")
        if request.closed is Closed.CANCELLED:
            said = next((s.message for s in view.steps if s.name == request.step), "")
            found = _REMOVED_IN.search(said or "")
            return _with(shown, revision=found.group(1)[:7] if found else None, closed_at=None)
        if request.closed is None and request.kind != "question":
            escalated = next((s.waiting.escalated_to for s in view.steps
                              if s.waiting is not None and s.waiting.request == request.id), ())
            return _with(shown, escalated_to=escalated) if escalated else shown
        if request.closed is Closed.SUPERSEDED:
            newer = [m for r, m in siblings if r.step == request.step and message is not None
                     and m.id > message.id]
            link = await self._link(newer[-1]) if newer else None
            return _with(shown, new_request=link, closed_at=None)
        return shown

    async def _link(self, message: SlackMessage) -> str | None:
        key = (message.channel_id, message.ts)
        if key not in self._links:
            link = await self._permalink(*key)
            if link is None:
                return None
            self._links[key] = link
        return self._links[key]

    # --- the outbox -----------------------------------------------------------------

    async def _drain_outbox(self, step: _Pass) -> None:
        for row in await self.desk.outbox(limit=500):
            if self._blocked("post", step):
                return
            row_id = int(row.id or 0)
            if self._row_retry_at.get(row_id, NEVER) > step.now:
                step.later(self._row_retry_at[row_id])
                continue
            try:
                await self._deliver(row)
            except CallFailed as e:
                if self._pause_for(e, step):
                    return
                failures = self._row_failures[row_id] = self._row_failures.get(row_id, 0) + 1
                if failures < self.settings.max_attempts:
                    retry = self._ticker.now() + self.settings.retry_delay
                    self._row_retry_at[row_id] = retry
                    step.later(retry)
                    log.warning("could not deliver a %s message for run %s: %s", row.kind,
                                row.job_id, e.error)
                    continue
                log.error("gave up delivering a %s message for run %s after %d refusals "
                          "(%s): %.200s", row.kind, row.job_id, failures, e.error, row.text)
            await self.desk.delivered(row_id)
            self._row_retry_at.pop(row_id, None)
            self._row_failures.pop(row_id, None)
            if row.job_id is not None:
                self._sent(row.job_id)

    async def _deliver(self, row: OutboxItem) -> None:
        if row.kind == "approval":
            await self._deliver_approval(row)
            return
        if row.job_id is None or not row.thread_of_card:
            # Not for a card's thread (an agent's welcome in #general): it stands on its own.
            channel = await self.directory.channel(row.channel) or row.channel
            await self._post(channel, text=messages.note(None, row.text))
            return
        card = await self._card(row.job_id)
        text = (messages.step_output(row.step, row.text) if row.kind == "output"
                else messages.note(row.step, row.text))
        if row.kind == "ended":  # a job failed, is blocked or stalls: whoever committed it hears
            text += await self._author_mention(row.job_id)
        await self._post(card.channel, text=text, thread_ts=card.ts)

    async def _author_mention(self, run_id: int) -> str:
        author = await self.desk.author(run_id)
        if not author:
            return ""
        try:
            user = await self.directory.user_by_email(author)
        except errors.TemporaryError as e:
            log.info("could not find the author of run %s in Slack: %s", run_id, e)
            return ""
        return f" <@{user}>" if user else ""

    async def _deliver_approval(self, row: OutboxItem) -> None:
        request = await self.desk.request(row.request_id) if row.request_id else None
        if row.job_id is None or request is None or request.closed is not None:
            return  # closed before it was posted (its closing also took it off the outbox)
        view = await self.desk.job(row.job_id)
        previous = await self.desk.latest_request_message(row.job_id, request.step)
        shown = await self._shown(_with_text(request, row.text), view, None)
        shown = _with(shown, replaces=previous is not None and previous.request_id != request.id)
        blocks, text = self._render_request(shown)
        card = await self._card(row.job_id)
        elsewhere: str | None = None
        if row.thread_of_card:
            channel_id, ts = await self._post(card.channel, text=text, blocks=blocks,
                                              thread_ts=card.ts)
        else:
            try:
                target = await self.directory.channel(row.channel)
                if target is None:
                    raise CallFailed("chat.postMessage", "channel_not_found")
                if target == card.channel:  # the job's own channel, named another way
                    channel_id, ts = await self._post(target, text=text, blocks=blocks,
                                                      thread_ts=card.ts)
                else:
                    channel_id, ts = await self._post(target, text=text, blocks=blocks)
                    elsewhere = channel_id
            except CallFailed as e:
                if e.temporary:
                    raise
                failed = messages.approval_post_failed(request.step, row.channel, e.error)
                await self._post(card.channel, thread_ts=card.ts, text=failed)
                channel_id, ts = await self._post(card.channel, text=text, blocks=blocks,
                                                  thread_ts=card.ts)
        kept = await self.desk.posted(row.job_id, kind="approval", channel_id=channel_id, ts=ts,
                                      step=request.step, request_id=request.id)
        if kept.ts != ts:  # another George posted this request a moment before: one stays
            await self._withdraw(channel_id, ts)
            return
        self._requests[request.id] = _Card(channel_id, ts, _payload(blocks, text), self._ticker.now())
        self._request_runs.add(row.job_id)  # an older request of the step can link to this one now
        thread = card.ts if elsewhere is None else ts
        for more_blocks, more_text in render.approval_overflow(shown):
            await self._post(channel_id, text=more_text, blocks=more_blocks, thread_ts=thread)
        if elsewhere is not None:
            try:
                link = await self._permalink(channel_id, ts)
                await self._post(card.channel, thread_ts=card.ts,
                                 text=messages.approval_elsewhere(request.step, elsewhere, link))
            except CallFailed as e:
                log.warning("could not link the approval request of %s/%s from its card: %s",
                            view.name, request.step, e.error)

    # --- Slack calls ----------------------------------------------------------------

    async def _still_leading(self) -> None:
        """Before each call to Slack: a pass may outlast the lease, which is renewed as it goes
        and, if another George took it meanwhile, ends the pass."""
        if self.leadership is None:
            return
        try:
            if await self.leadership.hold():
                return
        except errors.StoreBusy:
            pass
        raise _NoLongerLeading

    async def _post(self, channel: str, *, text: str, blocks: Sequence[Block] | None = None,
                    thread_ts: str | None = None) -> tuple[str, str]:
        await self._still_leading()
        for attempt in (1, 2):
            try:
                answer = await call("chat.postMessage", self.client.chat_postMessage(
                    channel=channel, text=text, blocks=blocks, thread_ts=thread_ts,
                    unfurl_links=False, unfurl_media=False))
            except CallFailed as e:
                if e.error != "not_in_channel" or attempt == 2:
                    raise
                self.directory.forget_channel(channel)
                await self.directory.join(channel)
                continue
            self.stats.posts += 1
            return str(answer["channel"]), str(answer["ts"])
        raise AssertionError("unreachable")

    async def _withdraw(self, channel: str, ts: str) -> None:
        log.info("another George posted the same message first; deleting this one (%s %s)", channel, ts)
        try:
            await call("chat.delete", self.client.chat_delete(channel=channel, ts=ts))
        except CallFailed as e:
            log.warning("could not delete a message another George had posted too: %s", e.error)

    async def _permalink(self, channel: str, ts: str) -> str | None:
        await self._still_leading()
        try:
            answer = await call("chat.getPermalink",
                                self.client.chat_getPermalink(channel=channel, message_ts=ts))
        except CallFailed:
            return None
        link = answer.get("permalink")
        return str(link) if link else None


class _NoLongerLeading(Exception):
    pass


def _with(shown: render.RequestShown, **changes: object) -> render.RequestShown:
    return dataclasses.replace(shown, **changes)  # type: ignore[arg-type]


def _with_text(request: Request, text: str) -> Request:
    """The request as its outbox message words it (the stored text, masked the same way)."""
    return dataclasses.replace(request, text=text or request.text)


def _payload(blocks: Sequence[Block], text: str) -> str:
    return json.dumps([b.to_dict() for b in blocks], sort_keys=True) + "\n" + text
