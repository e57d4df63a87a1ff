"""What the Slack tests share: the workspace they run in, a ticker the test moves by hand,
and `George`, the engine and the Slack surface connected to the local Slack, read as a
conversation (`george.card("j")`, `george.approval("j", "gate")`, `await george.until(...)`)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from georgebot.devslack import ChannelSeed, GroupSeed, LocalSlack, Message, Person, Seed
from georgebot.engine.ports import ChatPort
from georgebot.engine.service import Engine
from georgebot.slack.publisher import CardPublisher
from georgebot.slack.transport import SlackSurface
from georgebot.store import RunState, Store
from tests.engine.harness import FakeSource, ScriptedRunner

T = TypeVar("T")

ALEX, SAM, PAT = "U01ALEX", "U01SAM", "U01PAT"
IT_TEAM = "S0ITTEAM"
OPS, IT, GEORGE_CHANNEL = "C0OPS", "C0IT", "C0GEORGE"

SEED = Seed(
    people=(
        Person(ALEX, "alex", "Alex Kim", title="IT"),
        Person(SAM, "sam", "Sam Lee", title="Security"),
        Person(PAT, "pat", "Pat Doe", title="New starter"),
    ),
    groups=(GroupSeed(IT_TEAM, "it-team", "IT team", (SAM,)),),
    channels=(
        ChannelSeed(OPS, "ops"),  # George is not a member: it joins when it posts a card
        ChannelSeed(IT, "it"),
        ChannelSeed(GEORGE_CHANNEL, "george", bot_member=True),
    ),
)


def text_of(message: Message | None) -> str:
    """Everything a person reads in a message: its blocks' text, else its fallback text."""
    if message is None:
        return ""
    if not message.blocks:
        return message.text
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                parts.append(node["text"])
            for value in node.values():
                if isinstance(value, dict | list):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(message.blocks)
    return "\n".join(parts)


class ManualTicker:
    """The publisher's clock, moved by the test. `parked()` waits until the publisher is
    waiting for time to pass (so it sends nothing) and says until when."""

    def __init__(self) -> None:
        self.t = 1000.0
        self._waiters: list[tuple[float, asyncio.Event]] = []
        self._parked = asyncio.Event()

    def now(self) -> float:
        return self.t

    async def wait(self, event: asyncio.Event, delay: float | None) -> None:
        deadline = math.inf if delay is None else self.t + delay
        if event.is_set() or deadline <= self.t:
            return
        waiter = (deadline, event)
        self._waiters.append(waiter)
        self._parked.set()
        try:
            await event.wait()
        finally:
            self._waiters.remove(waiter)
            if not self._waiters:
                self._parked.clear()

    def advance(self, seconds: float) -> None:
        self.t += seconds
        for deadline, event in list(self._waiters):
            if deadline <= self.t:
                event.set()

    async def parked(self, timeout: float = 15.0) -> float:  # noqa: ASYNC109
        """The deadline the publisher waits for, once it waits."""
        async with asyncio.timeout(timeout):
            while True:
                await self._parked.wait()
                await asyncio.sleep(0)  # a wake may be on its way; let it land
                blocked = [d for d, event in self._waiters if not event.is_set()]
                if blocked:
                    return min(blocked)


@dataclass
class _Tee:
    """The engine's chat port, also telling a waiting test that something changed."""

    inner: ChatPort
    hook: Callable[[int], None]

    def changed(self, run_id: int) -> None:
        self.inner.changed(run_id)
        self.hook(run_id)


async def until(predicate: Callable[[], T], *, slack: LocalSlack | None = None,
                engine: Engine | None = None, publisher: CardPublisher | None = None,
                timeout: float = 15.0) -> T:  # noqa: ASYNC109
    """Waits until `predicate()` holds, re-checking after every change in Slack, in the
    engine or in what the publisher sent; returns its value."""
    changed = asyncio.Event()

    def listener(_run: int) -> None:
        changed.set()

    if slack is not None:
        slack.state.listeners.append(changed.set)
    tee = _Tee(engine.chat, listener) if engine is not None else None
    if engine is not None and tee is not None:
        engine.chat = tee
    if publisher is not None:
        publisher.listeners.append(listener)
    try:
        async with asyncio.timeout(timeout):
            while not (result := predicate()):
                changed.clear()
                await changed.wait()
            return result
    finally:
        if slack is not None:
            slack.state.listeners.remove(changed.set)
        if engine is not None and tee is not None and engine.chat is tee:
            engine.chat = tee.inner
        if publisher is not None:
            publisher.listeners.remove(listener)


def cards(slack: LocalSlack, channel: str) -> list[Message]:
    """George's top-level messages in a channel (its cards)."""
    return [m for m in slack.messages(channel) if m.bot_id and m.subtype is None]


@dataclass
class George:
    slack: LocalSlack
    engine: Engine
    store: Store
    source: FakeSource
    runner: ScriptedRunner
    surface: SlackSurface
    changes: list[int] = field(default_factory=list)

    def commit(self, *jobs: Any, **kwargs: Any) -> None:
        self.source.commit(*jobs, **kwargs)
        self.engine.wake(sync=True)

    async def until(self, predicate: Callable[[], T], timeout: float = 15.0) -> T:  # noqa: ASYNC109
        return await until(predicate, slack=self.slack, engine=self.engine,
                           publisher=self.surface.publisher, timeout=timeout)

    async def idle(self) -> None:
        """Slack has every acknowledgement and George finished handling what it heard."""
        await self.slack.wait_for(lambda: not self.slack.hub.pending())
        assert self.surface.listeners is not None
        await self.surface.listeners.idle()

    def run(self, job: str) -> RunState:
        return self.store.load_runs([job])[0]

    def step_status(self, job: str, step: str) -> str:
        state = self.run(job).step(step)
        return state.status.value if state else "missing"

    def card(self, job: str) -> Message | None:
        runs = self.store.load_runs([job])
        row = self.store.slack_message(runs[0].id, "card") if runs else None
        return self.slack.state.message(row.channel_id, row.ts) if row else None

    def card_text(self, job: str) -> str:
        return text_of(self.card(job))

    def headline(self, job: str) -> str:
        """The card's header: the job and its status in words."""
        return next(iter(self.card_text(job).splitlines()), "")

    def thread(self, job: str) -> list[Message]:
        card = self.card(job)
        return self.slack.state.replies(card.channel, card.ts) if card else []

    def thread_text(self, job: str) -> str:
        return "\n".join(text_of(m) for m in self.thread(job))

    def approval(self, job: str, step: str) -> Message | None:
        runs = self.store.load_runs([job])
        row = self.store.slack_message(runs[0].id, "approval", step) if runs else None
        return self.slack.state.message(row.channel_id, row.ts) if row else None

    async def react(self, user: str, message: Message | None, name: str) -> None:
        assert message is not None, "no such message to react to"
        await self.slack.react(user, message.channel, message.ts, name)

    async def reply(self, user: str, job: str, text: str) -> Message:
        card = self.card(job)
        assert card is not None
        posted = await self.slack.post_as(user, card.channel, text, thread_ts=card.ts)
        assert isinstance(posted, Message)
        return posted

    def ephemeral_text(self, user: str) -> str:
        last = self.slack.last_ephemeral(user)
        if last is None:
            return ""
        return text_of(Message(last.channel, last.ts, last.text, None, blocks=last.blocks))
