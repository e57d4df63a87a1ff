"""Slack card freshness under load.

    python bench/slack.py [--jobs 200] [--speed 4]

Runs the real engine, George's Slack surface and the local Slack (Socket Mode, the Web API)
in one process. 200 jobs each post a card and wait for an approval; then all 200 are approved
at once, and each job finishes a step more. Reports the `chat.update` calls in the busiest
minute (target: never above 50), how stale the slowest card gets after its job's last change
(target: under 30 s) and, for a single job moving alone, the delay from its last change to its
card showing it (target: under 3 s).

Time runs `--speed` times faster than the clock on the wall for the publisher, the engine and
the local Slack alike (their clocks are injected), so the minutes the budget takes pass quickly;
every figure is in that shared time.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from georgebot.config import Settings
from georgebot.devslack import LocalSlack
from georgebot.engine.ports import ApprovalRequest, Done, StepRecorder, StepResult, StepTask, Wait
from georgebot.engine.service import Engine, EngineSettings
from georgebot.manifests.snapshot import Revision, Snapshot
from georgebot.model.rendered import RenderedJob
from georgebot.model.specs import AgentSpec, Step, StepForm
from georgebot.slack.publisher import PublisherSettings
from georgebot.slack.transport import SlackSurface
from georgebot.store import Store, open_database

APPROVER = "U01ALEX"


@dataclass
class Time:
    """One shared, faster clock: `now()` for the publisher, `datetime` for the engine,
    `wall()` (epoch seconds) for the local Slack."""

    speed: float

    def __post_init__(self) -> None:
        self._start = time.monotonic()
        self._epoch = time.time()

    def now(self) -> float:
        return (time.monotonic() - self._start) * self.speed

    def wall(self) -> float:
        return self._epoch + self.now()

    def at(self) -> datetime:
        return datetime.fromtimestamp(self.wall(), UTC)

    async def wait(self, event: asyncio.Event, delay: float | None) -> None:
        if delay is None:
            await event.wait()
            return
        with suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), max(delay, 0.0) / self.speed)


@dataclass
class EngineClock:
    time: Time

    def now(self) -> datetime:
        return self.time.at()


@dataclass
class Source:
    snapshot: Snapshot

    def sync(self) -> Snapshot:
        return self.snapshot

    def checkout(self, sha: str) -> Path:
        return Path(".")

    def prune_checkouts(self, keep: set[str]) -> int:
        return 0


class Runner:
    """`ask` steps wait for people; `run` steps succeed at once (the work is not measured)."""

    async def run(self, task: StepTask, recorder: StepRecorder) -> StepResult:
        if task.step.form is StepForm.ASK and task.step.ask is not None:
            return Wait(
                ApprovalRequest(
                    task.job.name,
                    task.step.name,
                    task.channel,
                    task.step.ask.message,
                    tuple(task.step.ask.approvers),
                    1,
                )
            )
        return Done(f"{task.step.name} done")



def posted(store: Store, name: str) -> bool:
    """The job's approval request is in Slack."""
    state = store.load_runs([name])[0].step("approve")
    return bool(state and state.waits and store.request_message(state.waits.request))


async def react(slack: LocalSlack, store: Store, name: str) -> None:
    message = store.request_message(request_of(store, name))
    assert message is not None
    await slack.react(APPROVER, message.channel_id, message.ts, "white_check_mark")


def request_of(store: Store, name: str) -> str:
    """The request the job's approval step waits on now."""
    state = store.load_runs([name])[0].step("approve")
    assert state is not None and state.waits is not None
    return state.waits.request

def jobs(names: Iterable[str]) -> Snapshot:
    agent = AgentSpec.model_validate(
        {"apiVersion": "george/v1", "kind": "AgentSpec", "metadata": {"name": "ops"}, "spec": {}}
    )
    rendered = {}
    for name in names:
        steps = [
            Step.model_validate({"name": "prepare", "agent": "ops", "run": ["true"]}),
            Step.model_validate(
                {
                    "name": "approve",
                    "needs": ["prepare"],
                    "ask": {"message": f"Go ahead with {name}?", "approvers": [APPROVER]},
                }
            ),
            Step.model_validate({"name": "finish", "agent": "ops", "run": ["true"], "needs": ["approve"]}),
        ]
        rendered[name] = RenderedJob(
            name=name, template="bench", channel="#george", deadline=None, params={}, fuzzy={}, steps=steps
        )
    return Snapshot(
        Revision("c" * 40, "bench"),
        agents={"ops": agent},
        jobs=rendered,
        job_files={n: "manifests/bench.yaml" for n in rendered},
    )


def card_texts(slack: LocalSlack) -> dict[str, str]:
    """The current text of each job's card in #george, by job name."""
    shown = {}
    for message in slack.messages("C0GEORGE"):
        text = message.text or ""
        name = text.split(":")[0].split(" ")[0]
        if name:
            shown[name] = text
    return shown


async def watch(slack: LocalSlack, clock: Time, names: list[str], until: float) -> dict[str, float]:
    """When (shared time) each job's card first read Succeeded."""
    seen: dict[str, float] = {}
    while len(seen) < len(names) and clock.now() < until:
        texts = card_texts(slack)
        for name in names:
            if name not in seen and "Succeeded" in texts.get(name, ""):
                seen[name] = clock.now()
        await asyncio.sleep(0.02)
    return seen


def last_change(store: Store, name: str, clock: Time) -> float:
    at = max(e.at for e in store.events(name))
    return at.timestamp() - clock._epoch


def busiest_minute(times: list[float]) -> int:
    times.sort()
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 60:
            start += 1
        best = max(best, end - start + 1)
    return best


async def run(count: int, speed: float, work: Path) -> None:
    clock = Time(speed)
    names = [f"job-{i:03d}" for i in range(count)]
    db = open_database(f"sqlite:///{work / 'george.db'}")
    store = Store(db)
    source = Source(jobs(names))
    engine = Engine(
        EngineSettings(home=work / "home", lease=timedelta(hours=1), max_concurrent_steps=64),
        store=store,
        source=source,
        runner=Runner(),
        clock=EngineClock(clock),
    )
    async with LocalSlack(port=0, clock=clock.wall) as slack:
        settings = Settings(
            slack_bot_token=slack.bot_token, slack_app_token=slack.app_token, slack_api_url=slack.api_url
        )
        surface = SlackSurface(settings, engine, ticker=clock, publisher_settings=PublisherSettings())
        await engine.start()
        await surface.start()
        loop = asyncio.create_task(engine.run_forever(), name="engine-loop")
        try:
            engine.wake(sync=True)
            # Every job posts its card and waits for its approval.
            await slack.wait_for(
                lambda: sum("Waiting" in t for t in card_texts(slack).values()) == count, timeout=600
            )
            await asyncio.sleep(70 / speed)  # a quiet minute: the budget is full again
            await slack.wait_for(lambda: all(posted(store, n) for n in names), timeout=600)
            storm_start = clock.now()
            for name in names:  # the approver's ✅ on every request, at once, through Socket Mode
                await react(slack, store, name)
            seen = await watch(slack, clock, names, until=clock.now() + 1800)
            updates = [
                c.at - clock._epoch
                for c in slack.calls
                if c.method == "chat.update" and c.at - clock._epoch >= storm_start
            ]
            stale = [seen[n] - last_change(store, n, clock) for n in names if n in seen]

            await asyncio.sleep(70 / speed)
            single = "job-solo"
            source.snapshot = jobs([*names, single])
            engine.wake(sync=True)
            await slack.wait_for(lambda: "Waiting" in card_texts(slack).get(single, ""), timeout=600)
            await asyncio.sleep(10 / speed)
            await slack.wait_for(lambda: posted(store, single), timeout=600)
            await react(slack, store, single)
            solo = await watch(slack, clock, [single], until=clock.now() + 600)
            solo_delay = solo[single] - last_change(store, single, clock) if solo else float("inf")
            acks = list(slack.hub.ack_delays)
        finally:
            loop.cancel()
            with suppress(asyncio.CancelledError):
                await loop
            await surface.close()
            await engine.close()
            db.close()

    peak = busiest_minute(updates)
    slowest = max(stale) if stale else float("inf")
    print(f"jobs moved at once          {count}")
    print(f"cards showing the end       {len(seen)} of {count}")
    print(f"chat.update, busiest minute {peak}  (target <= 50: {verdict(peak <= 50)})")
    print(f"slowest card stale for      {slowest:.1f} s  (target < 30 s: {verdict(slowest < 30)})")
    print(f"median card stale for       {sorted(stale)[len(stale) // 2]:.1f} s" if stale else "")
    print(f"single job, change to card  {solo_delay:.2f} s  (target < 3 s: {verdict(solo_delay < 3)})")
    print(f"Socket Mode acks: {len(acks)}, slowest {max(acks, default=0) * 1000:.0f} ms, "
          f"p99 {sorted(acks)[int(len(acks) * 0.99)] * 1000 if acks else 0:.0f} ms (wall clock; "
          f"target < 1 s: {verdict(max(acks, default=0) < 1)})")
    print(f"(time ran {speed:g}x faster than the wall clock for every part)")


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--speed", type=float, default=4.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args.jobs, args.speed, Path(tmp)))


if __name__ == "__main__":
    main()
