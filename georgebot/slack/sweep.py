"""`ReactionSweep`: reads the reactions on every open request from Slack (`reactions.get`) and
counts the votes George has not, so no ✅ is lost: not one acknowledged just before a crash,
nor one made while the database was busy or read-only, nor one added before Slack's answer
to George's own `chat.postMessage` told it the request's `ts`. An agent's question still open
though someone answered it in its thread is resumed by that answer the same way.

It runs only on the George that delivers the workspace's outbox (`leading`), so replicas
sharing a workspace read its reactions once, not once each: soon after it takes the lead
(at start, or from a George that died), every `interval` seconds, and soon after a reaction
on a message George does not know yet. A vote counts once per person and request, so a
sweep that finds what the live event already counted changes nothing. `SlackSurface` owns it
(`start`/`close`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from georgebot import errors
from georgebot.engine.lifecycle import Decision, Verdict
from georgebot.engine.service import Engine
from georgebot.model.approvals import Request, is_approver
from georgebot.slack import commands
from georgebot.slack.calls import RATE_LIMITED, CallFailed, call
from georgebot.slack.directory import Directory
from georgebot.slack.pacing import MonotonicTicker, Ticker

log = logging.getLogger(__name__)

Tell = Callable[[Verdict, str, str], Awaitable[None]]
"""Says in Slack what a counted vote did (verdict, channel, thread root)."""


class ReactionSweep:
    def __init__(
        self,
        engine: Engine,
        client: AsyncWebClient,
        *,
        directory: Directory,
        tell: Tell,
        approve: tuple[str, ...],
        reject: tuple[str, ...],
        interval: float = 120.0,
        soon: float = 3.0,
        ticker: Ticker | None = None,
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        self.engine = engine
        self.client = client
        self.directory = directory
        self._tell = tell
        self._approve, self._reject = approve, reject
        self.interval = interval
        self._soon = soon
        self._ticker = ticker or MonotonicTicker()
        self._leading = leading
        self._wake = asyncio.Event()
        self._due: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._asked = False  # `soon` was called since the last sweep
        self.sweeps = 0
        self.counted = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="slack:reaction-sweep")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    def soon(self) -> None:
        """Sweep in a few seconds (a reaction arrived on a message George does not know yet),
        leading or not: the reaction came to this George."""
        at = self._ticker.now() + self._soon
        self._asked = True
        if self._due is None or at < self._due:
            self._due = at
            self._wake.set()

    async def _loop(self) -> None:
        self._due = self._ticker.now()  # at start: whatever happened while George was away
        while True:
            wait = self._due - self._ticker.now() if self._due is not None else self.interval
            if wait > 0:
                self._wake.clear()
                await self._ticker.wait(self._wake, wait)
                if self._due is not None and self._due > self._ticker.now():
                    continue
            asked, self._asked = self._asked, False
            if not asked and not self._leading():
                self._due = self._ticker.now() + self._soon  # looks again: it may take the lead
                continue
            self._due = self._ticker.now() + self.interval
            try:
                await self.sweep()
            except errors.StoreBusy as e:
                log.warning("reaction sweep stopped: %s; trying again soon", e)
                self._due = self._ticker.now() + self._soon
            except Exception:
                log.exception("reaction sweep failed; trying again at the next one")

    async def sweep(self) -> int:
        """One look at every open request; returns how many votes it counted."""
        self.sweeps += 1
        counted = 0
        for request, channel, ts, root in await self.engine.open_requests():
            if request.kind == "question":
                counted += await self._answer(request, channel, ts, root)
                continue
            try:
                answer = await call("reactions.get", self.client.reactions_get(
                    channel=channel, timestamp=ts, full=True))
            except CallFailed as e:
                if e.error == RATE_LIMITED:
                    log.info("Slack rate-limited the reaction sweep; the next one goes on")
                    break
                log.info("could not read the reactions on the request of %s: %s", request.step, e.error)
                continue
            counted += await self._count(request, channel, ts, root, answer.get("message") or {})
        self.counted += counted
        return counted

    async def _answer(self, request: Request, channel: str, ts: str, root: str) -> int:
        """A question still open although someone answered it in its thread (the reply's
        event was lost): the first answer resumes it, as the live event would have."""
        try:
            replies = await self.directory.replies(channel, root, after=ts)
        except CallFailed as e:
            log.info("could not read the replies to the question of %s: %s", request.step, e.error)
            return 0
        me = (await self.directory.identity()).user_id
        answers = [(user, text) for user, text in replies if not (me and f"<@{me}>" in text)]
        if not answers:
            return 0
        user, text = answers[0]
        job = await self.engine.desk.job_name(request.job_id)
        step = request.step if root == ts else None  # as the live event: the card's thread is the job's
        resumed = await self.engine.reply(job, user=user, text=text, step=step, run_id=request.job_id)
        if resumed:
            log.info("an answer by %s to %s/%s that George had missed resumed it", user, job, request.step)
        return resumed

    async def _count(
        self, request: Request, channel: str, ts: str, root: str, message: dict[str, Any]
    ) -> int:
        counted = 0
        for reaction in message.get("reactions") or []:
            approve = commands.vote(str(reaction.get("name") or ""), self._approve, self._reject)
            if approve is None:
                continue
            for user in [str(u) for u in reaction.get("users") or []]:
                if request.voted(user):
                    continue
                groups = await self.directory.groups_of(user, frozenset(request.approvers))
                if not is_approver(user, groups, request.approvers):
                    continue  # the live event told them; a sweep does not repeat it
                note = "" if approve else await self.directory.latest_reply(channel, root, user, after=ts)
                verdict = await self.engine.decide(
                    request.id, user=user, approve=approve, user_groups=groups, note=note,
                    user_of=self.directory.user_by_email,
                )
                if not verdict.counted:
                    continue
                counted += 1
                log.info("counted a vote by %s on %s/%s that George had missed",
                         user, verdict.job, verdict.step)
                await self._tell(verdict, channel, root)
                if verdict.decision is not Decision.RECORDED:
                    return counted  # the request is decided
        return counted
