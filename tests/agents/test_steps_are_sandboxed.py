"""A step's tool is assumed hostile: real processes, in bubblewrap and unconfined, trying to
read George's secrets, change the checkout, or outlive the George that started them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from georgebot import errors
from georgebot.agents.keeper import Keeper, Leftover, record, stop_leftover
from georgebot.agents.sandbox import Sandbox
from georgebot.agents.shell import ShellRunner
from georgebot.errors import ConfigError
from georgebot.model.attempts import ProcessRecord

TOKEN = "xoxb-george-own-bot-token-1234"



def needs_bubblewrap() -> None:
    """Skips where bubblewrap cannot start, saying why; CI requires it, so it fails there."""
    found = Sandbox.detect()
    if found.confined:
        return
    if os.environ.get("GEORGE_TEST_SANDBOX") == "required":
        pytest.fail(f"GEORGE_TEST_SANDBOX=required, but {found.info.describe()}")
    pytest.skip(f"{found.info.describe()} (CI installs bubblewrap)")


@pytest.fixture
def bubblewrap() -> None:
    needs_bubblewrap()


def shell(*commands: str) -> dict[str, object]:
    return {"shell": {"commands": list(commands)}}


@pytest.fixture(params=["bubblewrap", "unconfined"])
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    if request.param == "bubblewrap":
        needs_bubblewrap()
    found = Sandbox.detect(request.param)
    yield found
    found.close()


async def test_a_tool_walking_proc_finds_nothing_of_georges(
    bubblewrap, tool, make_task, grant, notes, monkeypatch
):
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    tool("tools/snoop", 'ls /proc | grep -c "^[0-9]"\n'
                        'for f in /proc/[0-9]*/environ; do cat "$f"; echo; done\n'
                        'cat /proc/$PPID/environ /proc/1/environ; true')
    task = make_task({"name": "snoop", "run": ["tools/snoop"]}, agent=grant(shell("tools/snoop")))

    done = await ShellRunner().run(task, notes)

    assert TOKEN not in done.output
    assert str(os.getpid()) not in done.output.split()
    assert int(done.output.splitlines()[0]) <= 4  # bwrap's init, the tool, ls and grep: its own only


async def test_a_tool_sees_no_file_of_georges_outside_its_folders(
    bubblewrap, tool, make_task, grant, notes, tmp_path
):
    (tmp_path / "george.db").write_text(TOKEN)
    tool("tools/snoop", f'cat {tmp_path}/george.db /etc/shadow /root/.bashrc 2>&1; ls {tmp_path}')
    task = make_task({"name": "snoop", "run": ["tools/snoop"]}, agent=grant(shell("tools/snoop")))

    done = await ShellRunner().run(task, notes)

    assert TOKEN not in done.output
    assert done.output.splitlines() == [
        f"cat: {tmp_path}/george.db: No such file or directory",
        "cat: /etc/shadow: No such file or directory",
        "cat: /root/.bashrc: No such file or directory",
        "checkout",  # the folders it is given, and nothing else of that folder
        "outputs",
    ]


async def test_a_tool_writing_into_the_checkout_changes_nothing_another_step_runs(
    sandbox, tool, make_task, grant, notes, checkout
):
    tool("tools/rotate", "echo the real rotate")
    tool("tools/note", 'echo "#!/bin/sh\necho planted" > tools/rotate; echo "planted" > notes.txt; true')
    agent = grant(shell("tools/note", "tools/rotate"))
    runner = ShellRunner(sandbox=sandbox)

    await runner.run(make_task({"name": "note", "run": ["tools/note"]}, agent=agent), notes)
    done = await runner.run(make_task({"name": "rotate", "run": ["tools/rotate"]}, agent=agent), notes)

    assert done.output == "the real rotate"
    assert (checkout / "tools" / "rotate").read_text() == "#!/bin/sh\necho the real rotate\n"
    assert not (checkout / "notes.txt").exists()


async def test_a_tool_may_write_its_output_folder_and_a_private_tmp(
    sandbox, tool, make_task, grant, notes
):
    tool("tools/work", 'ls /tmp/left-by-the-last-attempt 2>/dev/null || echo "tmp is clean"\n'
                       "touch /tmp/left-by-the-last-attempt\necho result > \"$GEORGE_OUTPUT_DIR/result\"")
    task = make_task({"name": "work", "run": ["tools/work"]}, agent=grant(shell("tools/work")))
    runner = ShellRunner(sandbox=sandbox)

    first = await runner.run(task, notes)
    second = await runner.run(task, notes)

    assert (task.output_dir / "result").read_text() == "result\n"
    assert first.output == "tmp is clean"
    if sandbox.confined:
        assert second.output == "tmp is clean"
    assert left_in_host_tmp() is not sandbox.confined


def left_in_host_tmp() -> bool:
    left = Path("/tmp/left-by-the-last-attempt")
    found = left.exists()
    left.unlink(missing_ok=True)
    return found


async def test_a_tool_whose_lease_lapsed_is_stopped_and_uses_no_retry(
    sandbox, tool, make_task, grant, notes
):
    tool("tools/long", "echo started\nsleep 30")
    task = make_task({"name": "long", "run": ["tools/long"]}, agent=grant(shell("tools/long")))
    sandbox.keeper.hold(0.5)  # as if George's last lease renewal were 0.5 s from running out

    with pytest.raises(errors.TemporaryError) as stopped:
        async with asyncio.timeout(10):
            await ShellRunner(sandbox=sandbox).run(task, notes)

    assert stopped.value.reason == "Recovered"
    assert "lease on this step ran out unrenewed" in str(stopped.value)


async def test_an_attempt_records_its_process_group(sandbox, tool, make_task, grant, notes):
    tool("tools/quick", "sleep 0.5")  # longer than RECORD_AFTER: a quicker one needs no record
    task = make_task({"name": "quick", "run": ["tools/quick"]}, agent=grant(shell("tools/quick")))

    await ShellRunner(sandbox=sandbox).run(task, notes)

    [process] = notes.processes
    assert process.host == record(os.getpid()).host
    assert process.group > 0 and process.started > 0


def test_a_recovering_george_stops_what_an_earlier_attempt_left_on_this_host():
    left = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        earlier = record(left.pid)

        assert stop_leftover(earlier) is Leftover.STOPPED
        assert left.wait(timeout=5) == -signal.SIGKILL
        assert stop_leftover(earlier) is Leftover.GONE
    finally:
        left.kill()
        left.wait()


def test_a_reused_group_id_or_another_host_is_left_alone():
    other = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        mine = record(other.pid)
        reused = ProcessRecord(mine.host, mine.group, mine.started - 1)  # same id, earlier process
        elsewhere = ProcessRecord("another-host/boot/pid:[1]", mine.group, mine.started)

        assert stop_leftover(reused) is Leftover.GONE
        assert stop_leftover(elsewhere) is Leftover.ELSEWHERE
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_without_bubblewrap_steps_run_unconfined_and_say_why(tmp_path):
    missing = Sandbox.detect("auto", bwrap=str(tmp_path / "no-bwrap"))
    broken = tmp_path / "bwrap"
    broken.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    broken.chmod(0o755)

    refused = Sandbox.detect("auto", bwrap=str(broken))

    assert not missing.confined and "cannot start" in missing.info.detail
    assert not refused.confined
    assert refused.info.describe() == (
        "steps are NOT sandboxed: bwrap cannot start a sandbox here "
        "(bwrap: setting up uid map: Permission denied)"
    )
    with pytest.raises(ConfigError, match="GEORGE_SANDBOX is bubblewrap, but bwrap cannot start"):
        Sandbox.detect("bubblewrap", bwrap=str(broken))
    assert "GEORGE_SANDBOX is off" in Sandbox.detect("off").info.describe()


def keeper_pids() -> list[int]:
    """The keeper processes this test process started (children running watchdog.py)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rpartition(")")[2].split()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat[1]) == os.getpid() and b"watchdog.py" in cmdline:
                found.append(int(entry.name))
    return found


def test_a_keeper_that_stops_reading_never_blocks_george():
    keeper = Keeper()
    sleeper = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        others = set(keeper_pids())  # earlier tests' keepers may still be on their way out
        keeper.watch(sleeper.pid)
        [pid] = set(keeper_pids()) - others
        os.kill(pid, signal.SIGSTOP)

        for _ in range(20_000):  # far more than a pipe holds
            keeper.hold(30.0)

        os.kill(pid, signal.SIGCONT)
    finally:
        keeper.close()  # the keeper stops what it watched as it goes
        assert sleeper.wait(timeout=5) == -signal.SIGKILL
