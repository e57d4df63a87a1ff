"""`georgebot status` and `audit` read as plain text: people, groups and channels by name
(the local Slack's people with no Slack tokens; ids when Slack cannot be asked), links as
`label (url)`, lists as `Alex Kim, Sam Lee`, durations as manifests write them and costs to
the tenth of a cent."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from georgebot.cli import main
from georgebot.devslack import ChannelSeed, LocalSlack, Person, Seed
from georgebot.engine.ports import Done, StepRecorder, StepTask
from georgebot.engine.service import Engine
from georgebot.model.views import Usage
from georgebot.slack.mrkdwn import Names, mentioned, plain
from georgebot.store import Store
from tests.conftest import FakeClock
from tests.engine.harness import FakeSource, ScriptedRunner, decide, fail, job, step

APPROVERS = ["U01ALEX", "U01SAM", "S0ITTEAM"]


@pytest.fixture(autouse=True)
def no_slack_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_API_URL"):
        monkeypatch.delenv(name, raising=False)


async def georgebot(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """The command as an operator runs it (in a thread: it runs an event loop of its own)."""
    return await asyncio.to_thread(_georgebot, tmp_path, *args, env=env)


def _georgebot(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(main, [*args, "--database-url", f"sqlite:///{tmp_path / 'george.db'}"],
                                env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


async def a_job_people_argue_over(engine: Engine, source: FakeSource, runner: ScriptedRunner,
                                  clock: FakeClock, deadline: timedelta = timedelta(seconds=15)) -> None:
    async def costly(task: StepTask, recorder: StepRecorder) -> Done:
        await recorder.usage("claude", Usage(input_tokens=30, output_tokens=12, cost_usd=0.004))
        return Done("summarised")

    class Costly(ScriptedRunner):
        async def run(self, task: StepTask, recorder: StepRecorder):  # type: ignore[no-untyped-def]
            if task.step.name == "summary":
                return await costly(task, recorder)
            return await super().run(task, recorder)

    runner.__class__ = Costly
    runner.on("order", fail("ordering failed: see <https://wiki.example/laptops|the laptop page> "
                            "or ask in <#C0IT>"))
    source.commit(job(
        "onboard-pat",
        step("laptop", ask={"approvers": APPROVERS, "message": "Laptop for <@U01PAT>?"}),
        step("order", retries=0),
        step("summary", instructions="Summarise", done_when="summarised"),
        channel="#it",
    ).model_copy(update={"deadline": deadline}))
    await engine.settle()
    await decide(engine, "onboard-pat", "laptop", user="U01PAT", approve=True)  # not an approver
    await engine.settle()
    clock.advance(deadline + timedelta(seconds=1))
    await engine.settle()


async def test_status_names_people_and_says_durations_and_costs_plainly(
        engine: Engine, source: FakeSource, runner: ScriptedRunner, clock: FakeClock,
        sqlite_store: Store, tmp_path: Path) -> None:
    await a_job_people_argue_over(engine, source, runner, clock)

    out = await georgebot(tmp_path, "status")

    assert "onboard-pat" in out and "$0.004 (42 tokens)" in out
    assert "condition Stalled: no progress for 15s: laptop waits for approval by " in out
    assert "Alex Kim, Sam Lee, @it-team" in out or "@it-team, Alex Kim, Sam Lee" in out
    assert ("ordering failed: see the laptop page (https://wiki.example/laptops) or ask in #it"
            in out)
    for markup in ("<@", "<#", "<!", "['", "0:00:15", "U01ALEX", "S0ITTEAM"):
        assert markup not in out


async def test_audit_names_people_and_lists_them_plainly(
        engine: Engine, source: FakeSource, runner: ScriptedRunner, clock: FakeClock,
        sqlite_store: Store, tmp_path: Path) -> None:
    await a_job_people_argue_over(engine, source, runner, clock)
    await decide(engine, "onboard-pat", "laptop", user="U01ALEX", approve=False, note="no budget")
    await engine.settle()

    out = await georgebot(tmp_path, "audit", "onboard-pat")

    assert "Pat Doe is not among the approvers @it-team, Alex Kim, Sam Lee; ignored" in out
    assert "rejected by Alex Kim: no budget" in out
    assert "no progress for 15s" in out
    for markup in ("<@", "<#", "<!", "['", "0:00:15"):
        assert markup not in out


async def test_with_slack_out_of_reach_people_are_their_ids(
        engine: Engine, source: FakeSource, runner: ScriptedRunner, clock: FakeClock,
        sqlite_store: Store, tmp_path: Path) -> None:
    await a_job_people_argue_over(engine, source, runner, clock)
    await decide(engine, "onboard-pat", "laptop", user="U01ALEX", approve=False, note="no budget")
    await engine.settle()
    nowhere = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1",
               "SLACK_API_URL": "http://127.0.0.1:9/api/"}  # nothing listens on port 9

    out = await georgebot(tmp_path, "audit", "onboard-pat", env=nowhere)

    assert "rejected by @U01ALEX: no budget" in out
    assert "<@" not in out


async def test_with_a_slack_token_people_are_named_as_slack_names_them(
        engine: Engine, source: FakeSource, runner: ScriptedRunner, clock: FakeClock,
        sqlite_store: Store, tmp_path: Path) -> None:
    await a_job_people_argue_over(engine, source, runner, clock)
    await decide(engine, "onboard-pat", "laptop", user="U01ALEX", approve=False, note="no budget")
    await engine.settle()
    seed = Seed(people=(Person("U01ALEX", "alex", "Alexandra Kim"),),
                channels=(ChannelSeed("C0IT", "it-help"),))
    async with LocalSlack(port=0, seed=seed) as slack:
        env = {"SLACK_BOT_TOKEN": slack.bot_token, "SLACK_APP_TOKEN": slack.app_token,
               "SLACK_API_URL": slack.api_url}

        out = await georgebot(tmp_path, "audit", "onboard-pat", env=env)

    assert "rejected by Alexandra Kim: no budget" in out
    assert "or ask in #it-help" in out
    assert "U01PAT is not among the approvers" in out  # no one by that id in this workspace


@pytest.mark.parametrize(("deadline", "written"), [(timedelta(minutes=90), "1h30m"),
                                                   (timedelta(days=7), "7d")])
async def test_a_stalled_job_says_its_deadline_as_a_manifest_writes_it(
        engine: Engine, source: FakeSource, runner: ScriptedRunner, clock: FakeClock,
        sqlite_store: Store, tmp_path: Path, deadline: timedelta, written: str) -> None:
    await a_job_people_argue_over(engine, source, runner, clock, deadline)

    out = await georgebot(tmp_path, "status", "onboard-pat")

    assert f"condition Stalled: no progress for {written}: laptop waits" in out


@pytest.mark.parametrize(("mrkdwn", "shown"), [
    ("<@U01ALEX> and <@U09NOBODY>", "Alex Kim and @U09NOBODY"),
    ("<@U09NOBODY|pat>", "@pat"),
    ("<#C0IT>, <#C09NEW|payroll> and <#C09GONE>", "#it, #payroll and #C09GONE"),
    ("<!subteam^S0ITTEAM>, <!subteam^S09SEC|@security>", "@it-team, @security"),
    ("<!here> <!channel>", "@here @channel"),
    ("<https://wiki.example/a|the page>, <https://wiki.example/b>, <mailto:it@example.com|it@example.com>",
     "the page (https://wiki.example/a), https://wiki.example/b, it@example.com"),
    ("<!date^1700000000^{date_short} at {time}|2023-11-14 22:13 UTC>", "2023-11-14 22:13 UTC"),
    ("a &lt;b&gt; &amp; c", "a <b> & c"),
    ("waits for U01ALEX, S0ITTEAM; UNKNOWN and SECURITY are words", "waits for Alex Kim, @it-team; "
                                                                     "UNKNOWN and SECURITY are words"),
    ("https://x.example/U01ALEX stays a link", "https://x.example/U01ALEX stays a link"),
])
def test_mrkdwn_reads_as_plain_text(mrkdwn: str, shown: str) -> None:
    names = Names({"U01ALEX": "Alex Kim"}, {"C0IT": "it"}, {"S0ITTEAM": "it-team"})
    assert plain(mrkdwn, names) == shown


def test_the_ids_to_look_up_are_those_of_people_groups_and_channels() -> None:
    text = "<@U01ALEX> in <#C0IT|it> asked <!subteam^S0ITTEAM> and U01SAM; UNKNOWN <https://x/U09X>"
    assert mentioned(text) == {"U01ALEX", "C0IT", "S0ITTEAM", "U01SAM"}
