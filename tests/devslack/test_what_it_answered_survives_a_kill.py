"""The local Slack's state is on disk before it answers: a SIGKILL of George (the local Slack
runs in its process) never loses a message, edit or reaction the local Slack said `ok` to."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import stat
import sys
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from georgebot.devslack import DEMO_SEED, LocalSlack, Workspace
from georgebot.errors import ConfigError
from tests.devslack.support import ALEX, GEORGE_CHANNEL, ONBOARDING, PAT, as_the_page

SERVE = """
import asyncio, json, sys
from georgebot.devslack import serve

def ready(slack):
    print(json.dumps({"url": slack.api_url, "token": slack.bot_token}), flush=True)

asyncio.run(serve("127.0.0.1", 0, state_file=sys.argv[1], on_ready=ready))
"""


def killed(home: Path, into: Path) -> Path:
    """What a SIGKILL at this instant leaves: the state directory as it is on disk now."""
    shutil.copytree(home, into)
    return into / "local-slack.json"


async def test_everything_answered_is_on_disk_before_the_answer(tmp_path: Path) -> None:
    async with LocalSlack(port=0, state_file=tmp_path / "home" / "local-slack.json") as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        card = await client.chat_postMessage(channel=GEORGE_CHANNEL, text="Waiting")
        await client.chat_update(channel=GEORGE_CHANNEL, ts=card["ts"], text="Succeeded")
        reply = await client.chat_postMessage(channel=GEORGE_CHANNEL, text="chatter",
                                              thread_ts=card["ts"])
        gone = await client.chat_postMessage(channel=GEORGE_CHANNEL, text="oops")
        await client.chat_delete(channel=GEORGE_CHANNEL, ts=gone["ts"])
        await client.reactions_add(channel=GEORGE_CHANNEL, timestamp=card["ts"], name="eyes")
        await client.conversations_join(channel=ONBOARDING)
        await client.chat_postEphemeral(channel=GEORGE_CHANNEL, user=PAT, text="only Pat")
        await client.views_publish(user_id=ALEX, view={"type": "home", "blocks": []})
        approve = {"user": ALEX, "channel": GEORGE_CHANNEL, "ts": card["ts"],
                   "name": "white_check_mark"}
        async with as_the_page(slack) as page, page.post("/local/api/reactions", json=approve) as answer:
            assert answer.status == 200
        state_file = killed(tmp_path / "home", tmp_path / "after-kill")

        async with LocalSlack(port=0, state_file=state_file) as again:
            [message] = again.messages(GEORGE_CHANNEL)
            assert (message.ts, message.text, message.edited is not None) == (
                card["ts"], "Succeeded", True)
            assert message.reactions == {"eyes": ["U0GEORGE"], "white_check_mark": [ALEX]}
            assert [r.text for r in again.replies(GEORGE_CHANNEL, card["ts"])] == ["chatter"]
            assert again.state.message(GEORGE_CHANNEL, reply["ts"]) is not None
            assert "U0GEORGE" in again.state.channels[ONBOARDING].members
            assert [e.text for e in again.ephemerals(PAT)] == ["only Pat"]
            home = again.home_view(ALEX)
            assert home is not None and home.id == slack.home_view(ALEX).id  # type: ignore[union-attr]
            later = await AsyncWebClient(token=again.bot_token, base_url=again.api_url
                                         ).chat_postMessage(channel=GEORGE_CHANNEL, text="next")
            assert float(later["ts"]) > float(reply["ts"])
    for path in (tmp_path / "home").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path  # only its owner reads it


async def test_a_sigkilled_local_slack_keeps_every_message_it_answered(tmp_path: Path) -> None:
    state_file = tmp_path / "local-slack.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVE, str(state_file), stdout=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        started = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
        client = AsyncWebClient(token=started["token"], base_url=started["url"])
        posted = await asyncio.gather(*(
            client.chat_postMessage(channel=GEORGE_CHANNEL, text=f"card {i}") for i in range(30)))
        await asyncio.gather(*(
            client.chat_update(channel=GEORGE_CHANNEL, ts=p["ts"], text=f"{p['message']['text']} done")
            for p in posted))
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    assert process.returncode == -signal.SIGKILL

    async with LocalSlack(port=0, state_file=state_file) as again:
        texts = sorted(m.text for m in again.messages(GEORGE_CHANNEL))
        assert texts == sorted(f"card {i} done" for i in range(30))


async def test_a_long_journal_is_folded_into_the_state_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    async with LocalSlack(port=0, state_file=home / "local-slack.json", compact_bytes=2000) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        for i in range(20):
            posted = await client.chat_postMessage(channel=GEORGE_CHANNEL, text=f"card {i}")
            await client.chat_update(channel=GEORGE_CHANNEL, ts=posted["ts"], text=f"card {i}!")
        journals = sorted(p.name for p in home.glob("*.journal"))
        assert len(journals) == 1 and journals != ["local-slack.1.journal"]
        assert (home / journals[0]).stat().st_size <= 2000 + 1000
        state_file = killed(home, tmp_path / "after-kill")
    async with LocalSlack(port=0, state_file=state_file) as again:
        assert [m.text for m in again.messages(GEORGE_CHANNEL)] == [f"card {i}!" for i in range(20)]


async def test_a_write_cut_short_by_the_kill_is_skipped(tmp_path: Path) -> None:
    async with LocalSlack(port=0, state_file=tmp_path / "home" / "local-slack.json") as slack:
        await slack.post_as(ALEX, GEORGE_CHANNEL, "kept")
        await slack.journal.sync()  # type: ignore[union-attr]
        state_file = killed(tmp_path / "home", tmp_path / "after-kill")
    [journal] = state_file.parent.glob("*.journal")
    with journal.open("ab") as torn:
        torn.write(b'{"message": {"channel": "C0GEORGE", "ts": "17')
    async with LocalSlack(port=0, state_file=state_file) as again:
        assert [m.text for m in again.messages(GEORGE_CHANNEL)] == ["kept"]


async def test_a_state_file_from_before_the_journal_still_loads(tmp_path: Path) -> None:
    old = Workspace(DEMO_SEED)
    old.add_message(old.channels[GEORGE_CHANNEL], text="from the old format", user=ALEX)
    path = tmp_path / "local-slack.json"
    path.write_text(json.dumps({"format": 1, **old.dump()}), encoding="utf-8")
    async with LocalSlack(port=0, state_file=path) as slack:
        assert [m.text for m in slack.messages(GEORGE_CHANNEL)] == ["from the old format"]


async def test_two_local_slacks_never_share_a_state_file(tmp_path: Path) -> None:
    path = tmp_path / "local-slack.json"
    async with LocalSlack(port=0, state_file=path):
        with pytest.raises(ConfigError, match="another local Slack is using its state file"):
            await LocalSlack(port=0, state_file=path).start()
    async with LocalSlack(port=0, state_file=path):  # once the first is gone, it may
        pass
