"""The database holds one card per run and one message per approval request: when two Georges
post the same one (a lease that lapsed mid-pass, a paused leader), the second to record it
deletes its copy, so people see one. Two publishers that both deliver, on one database
(SQLite, and PostgreSQL when available) and one local Slack. And a delivery that outlasts
the outbox's lease renews it as it goes, so no other George takes over mid-way."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

from slack_sdk.web.async_client import AsyncWebClient

from georgebot.devslack import LocalSlack
from georgebot.engine.leading import Leadership
from georgebot.engine.service import Engine, EngineSettings
from georgebot.slack.publisher import CardPublisher
from georgebot.store import Store
from tests.engine.harness import FakeSource, ScriptedRunner, job, step
from tests.slack.conftest import FAST

JOBS = 6


async def test_two_georges_posting_at_once_leave_one_card_per_run_and_one_message_per_request(
    store: Store, other_store: Store, source: FakeSource, clock, tmp_path: Path,
    slack: LocalSlack, client: AsyncWebClient,
) -> None:
    source.commit(*(job(f"job-{i}", step("gate", ask={}), channel="#george") for i in range(JOBS)))
    engines = [Engine(EngineSettings(home=tmp_path / name), store=s, source=source, runner=ScriptedRunner(),
                      clock=clock, owner=name) for name, s in (("first", store), ("second", other_store))]
    publishers = [CardPublisher(engine, client, settings=FAST) for engine in engines]  # both deliver
    try:
        for engine in engines:
            await engine.start()
            await engine.settle()
        for publisher in publishers:
            await publisher.start()
        for publisher in publishers:
            publisher.wake()
            await publisher.settled()

        top = slack.messages("#george")
        cards = Counter(m.text.partition(":")[0] for m in top if m.text.startswith("job-"))
        assert cards == {f"job-{i}": 1 for i in range(JOBS)}
        requests = Counter(m.text for card in top for m in slack.replies("#george", card.ts)
                           if "gate" in m.text)
        assert len(requests) == JOBS and set(requests.values()) == {1}, requests
    finally:
        for publisher in publishers:
            await publisher.close()
        for engine in engines:
            await engine.close()


async def test_a_long_delivery_keeps_the_outbox_lease_so_no_other_george_takes_over_mid_way(
    store: Store, source: FakeSource, clock, tmp_path: Path, slack: LocalSlack, client: AsyncWebClient,
) -> None:
    lease = timedelta(seconds=3)
    source.commit(*(job(f"job-{i}", step("gate", ask={}), channel="#george") for i in range(JOBS)))
    engine = Engine(EngineSettings(home=tmp_path / "home", lease=lease), store=store, source=source,
                    runner=ScriptedRunner(), clock=clock, owner="first")
    outbox = Leadership("outbox:U0GEORGE", owner="first", store=store, io=engine.io, now=clock.now,
                        lease=lease, what="the outbox")
    publisher = CardPublisher(engine, client, settings=FAST, leadership=outbox)
    held: list[bool] = []

    def accepted(run_id: int) -> None:  # each message Slack accepts takes a second of the pass
        clock.advance(timedelta(seconds=1))
        held.append(store.leaders(clock.now()).get("outbox:U0GEORGE") == "first")

    publisher.listeners.append(accepted)
    try:
        await engine.start()
        await engine.settle()
        await publisher.start()
        await publisher.settled()
        assert len(held) >= 2 * JOBS and all(held), held  # the lease never lapsed mid-way
    finally:
        await publisher.close()
        await engine.close()
