"""One living card per job run: posted once, updated in place at a measured pace, kept
across restarts, posted again when Slack lost it. The publisher runs on a ticker the test
moves by hand, against the local Slack, with a plain Web API client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from georgebot.devslack import LocalSlack
from georgebot.engine.ports import Done, StepRecorder, StepTask
from georgebot.engine.service import Engine
from georgebot.model.status import JobStatus, StepStatus
from georgebot.slack.publisher import CardPublisher, PublisherSettings
from georgebot.store import Store
from tests.engine.harness import FakeSource, ScriptedRunner, decide, job, step
from tests.slack.support import IT, OPS, George, ManualTicker, cards, text_of, until

Publish = Callable[..., Awaitable[CardPublisher]]


@pytest.fixture
def ticker() -> ManualTicker:
    return ManualTicker()


@pytest.fixture
async def publish(engine: Engine, sqlite_store: Store, client: AsyncWebClient,
                  ticker: ManualTicker) -> AsyncIterator[Publish]:
    """Starts publishers (several, for restarts) and closes them all at the end."""
    made: list[CardPublisher] = []

    async def start(**settings: Any) -> CardPublisher:
        defaults: dict[str, Any] = {"min_interval": 0.0, "outbox_poll": 1000.0,
                                    "updates_per_minute": 10_000, "burst": 10_000}
        publisher = CardPublisher(engine, client, ticker=ticker,
                                  settings=PublisherSettings(**{**defaults, **settings}))
        made.append(publisher)
        await publisher.start()
        return publisher

    yield start
    for publisher in made:
        await publisher.close()


@pytest.fixture
async def running(engine: Engine) -> AsyncIterator[Engine]:
    """The engine's loop, so every wake runs a pass at once."""
    loop = asyncio.create_task(engine.run_forever(), name="engine-loop")
    yield engine
    loop.cancel()
    with suppress(asyncio.CancelledError):
        await loop


def updates(slack: LocalSlack) -> list[int]:
    """The HTTP status of every chat.update call so far."""
    return [c.status for c in slack.calls if c.method == "chat.update"]


def step_of(store: Store, name: str, step_name: str) -> StepStatus:
    state = store.load_runs([name])[0].step(step_name)
    assert state is not None
    return state.status


async def test_a_card_is_posted_once_and_updated_in_place(
        slack: LocalSlack, engine: Engine, source: FakeSource, sqlite_store: Store,
        publish: Publish, ticker: ManualTicker) -> None:
    publisher = await publish(min_interval=0.0)
    source.commit(job("j", step("a"), step("b", needs=("a",)), step("c", needs=("b",))))
    await engine.settle()
    await publisher.settled()

    [card] = cards(slack, OPS)  # George joined #ops to post it
    assert "j — Succeeded" in text_of(card)
    assert "U0GEORGE" in slack.state.channels[OPS].members
    record = sqlite_store.slack_message(sqlite_store.load_runs(["j"])[0].id, "card")
    assert record is not None and (record.channel_id, record.ts) == (OPS, card.ts)
    assert [c.method for c in slack.calls].count("chat.postMessage") == 1 + len(
        [m for m in slack.state.all_messages() if m.thread_ts and m.ts != m.thread_ts])

    calls = len(slack.calls)
    publisher.changed(record.job_id)  # nothing changed: nothing is sent
    await publisher.settled()
    assert len(slack.calls) == calls


async def test_updates_are_coalesced_and_the_last_state_always_arrives(
        slack: LocalSlack, running: Engine, source: FakeSource, runner: ScriptedRunner,
        sqlite_store: Store, publish: Publish, ticker: ManualTicker) -> None:
    await publish(min_interval=3.0)
    runner.gates["a"], runner.gates["b"] = asyncio.Event(), asyncio.Event()
    source.commit(job("j", step("a"), step("b", needs=("a",)), step("c", needs=("b",))))
    running.wake(sync=True)
    await until(lambda: cards(slack, OPS), slack=slack)

    runner.gates["a"].set()  # a succeeds and b starts, within 3 seconds of the card
    await until(lambda: step_of(sqlite_store, "j", "b") is StepStatus.RUNNING, engine=running)
    assert await ticker.parked() == ticker.now() + 3.0
    assert updates(slack) == []
    ticker.advance(3.0)
    await until(lambda: "*b* — Running" in text_of(cards(slack, OPS)[0]), slack=slack)

    runner.gates["b"].set()  # b, then c, succeed: several changes within 3 seconds
    await until(lambda: sqlite_store.load_runs(["j"])[0].status is JobStatus.SUCCEEDED,
                engine=running)
    assert await ticker.parked() == ticker.now() + 3.0
    assert updates(slack) == [200]
    ticker.advance(3.0)

    await until(lambda: "j — Succeeded" in text_of(cards(slack, OPS)[0]), slack=slack)
    assert updates(slack) == [200, 200]
    assert len(cards(slack, OPS)) == 1


async def test_a_429_storm_delays_updates_but_loses_none(
        slack: LocalSlack, running: Engine, source: FakeSource, runner: ScriptedRunner,
        sqlite_store: Store, publish: Publish, ticker: ManualTicker) -> None:
    publisher = await publish(min_interval=3.0)
    for name in ("a", "b", "c"):
        runner.gates[name] = asyncio.Event()
    source.commit(job("j", step("a"), step("b", needs=("a",)), step("c", needs=("b",))))
    running.wake(sync=True)
    await until(lambda: cards(slack, OPS), slack=slack)
    slack.rate_limit("chat.update", calls=3, retry_after=7)

    runner.gates["a"].set()
    await until(lambda: step_of(sqlite_store, "j", "b") is StepStatus.RUNNING, engine=running)
    ticker.advance(await ticker.parked() - ticker.now())
    assert await ticker.parked() == ticker.now() + 7  # Retry-After, honoured
    assert updates(slack) == [429]

    runner.gates["b"].set()  # the job moves on while George waits
    await until(lambda: step_of(sqlite_store, "j", "c") is StepStatus.RUNNING, engine=running)
    ticker.advance(7)
    assert await ticker.parked() == ticker.now() + 7
    runner.gates["c"].set()
    await until(lambda: sqlite_store.load_runs(["j"])[0].status is JobStatus.SUCCEEDED,
                engine=running)
    ticker.advance(7)
    assert await ticker.parked() == ticker.now() + 7
    assert updates(slack) == [429, 429, 429]
    ticker.advance(7)

    await until(lambda: "j — Succeeded" in text_of(cards(slack, OPS)[0]), slack=slack)
    assert updates(slack) == [429, 429, 429, 200]
    assert publisher.stats.rate_limited == 3


async def test_a_restarted_publisher_updates_the_same_card(
        slack: LocalSlack, engine: Engine, source: FakeSource, sqlite_store: Store,
        publish: Publish) -> None:
    first = await publish(min_interval=0.0)
    source.commit(job("j", step("gate", ask={}), step("after", needs=("gate",))))
    await engine.settle()
    await first.settled()
    [card] = cards(slack, OPS)
    await first.close()

    second = await publish(min_interval=0.0)
    await second.settled()
    await decide(engine, "j", "gate", user="U01ALEX", approve=True)
    await engine.settle()
    await second.settled()

    assert cards(slack, OPS) == [card]
    assert "j — Succeeded" in text_of(card)
    assert sqlite_store.slack_message(sqlite_store.load_runs(["j"])[0].id, "card").ts == card.ts


async def test_a_card_slack_lost_is_posted_again_with_its_open_request(
        slack: LocalSlack, engine: Engine, source: FakeSource, sqlite_store: Store,
        publish: Publish) -> None:
    first = await publish(min_interval=0.0)
    source.commit(job("j", step("gate", ask={}), step("after", needs=("gate",))))
    await engine.settle()
    await first.settled()
    for message in list(slack.state.messages[OPS]):  # the local Slack forgot everything
        slack.state.delete_message(message)
    await first.close()

    second = await publish(min_interval=0.0)
    await until(lambda: cards(slack, OPS), slack=slack)
    await second.settled()

    [card] = cards(slack, OPS)
    run = sqlite_store.load_runs(["j"])[0]
    assert sqlite_store.slack_message(run.id, "card").ts == card.ts
    request = sqlite_store.slack_message(run.id, "approval", "gate")
    assert request is not None
    assert slack.state.message(OPS, request.ts).thread_ts == card.ts
    assert second.stats.replaced_cards == 1


async def test_the_update_budget_is_shared_and_the_newest_change_goes_first(
        slack: LocalSlack, engine: Engine, source: FakeSource, sqlite_store: Store,
        publish: Publish, ticker: ManualTicker) -> None:
    source.commit(*(job(n, step("gate", ask={})) for n in ("j1", "j2", "j3")))
    await engine.settle()
    publisher = await publish(updates_per_minute=6, burst=1)  # posts the three cards
    await publisher.settled()
    ids = {r.name: r.id for r in sqlite_store.load_runs()}
    order: list[str] = []
    publisher.listeners.append(lambda run_id: order.append(next(
        n for n, i in ids.items() if i == run_id)))
    engine.detach(publisher)  # the three changes are announced below, in order
    for name in ("j1", "j2", "j3"):
        await decide(engine, name, "gate", user="U01ALEX", approve=True)
    await engine.settle()

    for name in ("j1", "j2", "j3"):
        publisher.changed(ids[name])
    for _ in range(5):  # one update went; each next one 10s later
        assert await ticker.parked() == ticker.now() + 10
        ticker.advance(10)
    await publisher.settled()

    assert order[:3] == ["j3", "j2", "j1"]  # the cards first, the newest change first
    assert sorted(order[3:]) == ["j1", "j2", "j3"]  # then each request says how it ended
    assert all("Succeeded" in text_of(m) for m in cards(slack, OPS))
    assert updates(slack) == [200] * 6


async def test_an_agents_message_for_another_channel_stands_on_its_own(george: George) -> None:
    async def welcome(task: StepTask, recorder: StepRecorder) -> Done:
        await recorder.post("#it", "Welcome, Pat!")
        await recorder.post("#ops", "welcome posted")
        return Done("posted")

    george.runner.run = welcome  # type: ignore[method-assign]
    george.commit(job("j", step("a"), channel="#ops"))
    await george.until(lambda: any("Welcome, Pat" in (m.text or "") for m in george.slack.messages(IT)))
    await george.until(lambda: "welcome posted" in george.thread_text("j"))
    assert "Welcome, Pat" not in george.thread_text("j")
