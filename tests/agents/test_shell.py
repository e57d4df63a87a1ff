"""`run` steps: real subprocesses, with small scripts in a temporary checkout."""

from __future__ import annotations

import asyncio
import os

import pytest

from georgebot import errors
from georgebot.agents.shell import ShellRunner

CREATE = "tools/create-account"


def shell(*commands: str) -> dict[str, object]:
    return {"shell": {"commands": list(commands)}}


async def readable(fd: int, seconds: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        async with asyncio.timeout(seconds):
            await ready
    finally:
        loop.remove_reader(fd)


async def assert_gone(pid: int) -> None:
    """Returns once the process has exited; a pidfd turns readable at exit (even a zombie's)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        await readable(fd)
    finally:
        os.close(fd)


async def test_exit_zero_succeeds_and_records_the_output(tool, make_task, grant, notes):
    tool(CREATE, 'echo "created $1"\necho "mailbox pending" >&2')
    task = make_task({"name": "create-account", "run": [CREATE, "Alice Smith"]},
                     agent=grant(shell(CREATE)))

    done = await ShellRunner().run(task, notes)

    assert done.message == f"{CREATE} exited with 0"
    assert done.output == "created Alice Smith\nmailbox pending"
    assert notes.entries == [("output", done.output)]


async def test_nonzero_exit_fails_with_the_code_and_last_stderr_line(tool, make_task, grant, notes):
    tool(CREATE, 'echo "looking up team" >&2\necho "no such team: payments" >&2\nexit 3')
    task = make_task({"name": "create-account", "run": [CREATE]}, agent=grant(shell(CREATE)))

    with pytest.raises(errors.PermanentError) as failed:
        await ShellRunner().run(task, notes)

    assert failed.value.reason == "ExitCode"
    assert str(failed.value) == f"{CREATE} exited with 3: no such team: payments"
    assert notes.entries == [("output", "looking up team\nno such team: payments")]


async def test_tool_killed_by_a_signal_fails_naming_it(tool, make_task, grant, notes):
    tool(CREATE, "kill -KILL $$")
    task = make_task({"name": "create-account", "run": [CREATE]}, agent=grant(shell(CREATE)))

    with pytest.raises(errors.PermanentError, match=f"^{CREATE} was killed by SIGKILL$"):
        await ShellRunner().run(task, notes)


async def test_hostile_values_arrive_as_one_literal_argument_each(
    tool, make_task, grant, notes, tmp_path
):
    tool("tools/show-args", 'for a in "$@"; do printf "[%s]\\n" "$a"; done')
    hostile = ["Bob; rm -rf /", "$(touch pwned)", "`touch pwned`; touch pwned", "a\nb", "*"]
    task = make_task({"name": "show", "run": ["tools/show-args", *hostile]},
                     agent=grant(shell("tools/show-args")))

    done = await ShellRunner().run(task, notes)

    assert done.output == "\n".join(f"[{value}]" for value in hostile)
    assert not list(tmp_path.rglob("pwned"))


async def test_environment_is_minimal_and_leaks_no_secrets(make_task, grant, notes, monkeypatch):
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-not-for-tools")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-not-for-tools")
    task = make_task({"name": "show-env", "run": ["env"]}, agent=grant(shell("env")), attempt=2)

    done = await ShellRunner().run(task, notes)

    output_dir = str(task.output_dir.resolve())
    seen = dict(line.split("=", 1) for line in done.output.splitlines())
    seen.pop("PWD", None)  # bubblewrap says where it started the tool: the checkout
    assert seen == {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": output_dir,
        "LANG": "C.UTF-8",
        "GEORGE_JOB": "onboard-alice",
        "GEORGE_STEP": "show-env",
        "GEORGE_ATTEMPT": "2",
        "GEORGE_OUTPUT_DIR": output_dir,
    }


async def test_tool_runs_in_the_checkout_and_may_write_its_output_folder(
    tool, make_task, grant, notes, checkout
):
    tool("tools/report", 'pwd\necho done > "$GEORGE_OUTPUT_DIR/report.txt"')
    task = make_task({"name": "report", "run": ["tools/report"]},
                     agent=grant(shell("tools/report")))

    done = await ShellRunner().run(task, notes)

    assert done.output == str(checkout.resolve())
    assert (task.output_dir / "report.txt").read_text() == "done\n"


async def test_command_not_granted_is_capability_missing_naming_it(tool, make_task, grant, notes):
    tool(CREATE, "touch ran")
    task = make_task({"name": "create-account", "run": [CREATE, "Alice"]},
                     agent=grant(shell("tools/other")))

    with pytest.raises(errors.CapabilityMissing) as blocked:
        await ShellRunner().run(task, notes)

    assert blocked.value.capability == f"shell: {CREATE}"
    assert "it-helper" in str(blocked.value)
    assert f'- shell: {{commands: ["{CREATE}"]}}' in str(blocked.value)
    assert notes.entries == []


@pytest.mark.parametrize("command", [
    "../outside.sh", "tools/../../outside.sh", "/bin/echo", "tools/escape",
])
async def test_command_outside_the_checkout_is_refused(
    command, tool, make_task, grant, notes, tmp_path, checkout
):
    outside = tmp_path / "outside.sh"
    outside.write_text(f"#!/bin/sh\ntouch {tmp_path}/ran\n")
    outside.chmod(0o755)
    (checkout / "tools").mkdir()
    (checkout / "tools" / "escape").symlink_to(outside)
    task = make_task({"name": "escape", "run": [command]}, agent=grant(shell(command)))

    with pytest.raises(errors.PermanentError) as failed:
        await ShellRunner().run(task, notes)

    assert failed.value.reason == "CommandOutsideCheckout"
    assert not (tmp_path / "ran").exists()


async def test_granted_command_missing_from_the_checkout_fails_as_not_found(
    make_task, grant, notes
):
    task = make_task({"name": "create-account", "run": [CREATE]}, agent=grant(shell(CREATE)))

    with pytest.raises(errors.PermanentError) as failed:
        await ShellRunner().run(task, notes)

    assert not isinstance(failed.value, errors.CapabilityMissing)
    assert failed.value.reason == "CommandNotFound"
    assert CREATE in str(failed.value)


async def test_bare_name_not_on_path_fails_as_not_found(make_task, grant, notes):
    task = make_task({"name": "x", "run": ["no-such-tool-here"]},
                     agent=grant(shell("no-such-tool-here")))

    with pytest.raises(errors.PermanentError) as failed:
        await ShellRunner().run(task, notes)

    assert failed.value.reason == "CommandNotFound"


async def test_file_without_execute_permission_fails_as_not_executable(
    tool, make_task, grant, notes
):
    tool(CREATE, "true").chmod(0o644)
    task = make_task({"name": "create-account", "run": [CREATE]}, agent=grant(shell(CREATE)))

    with pytest.raises(errors.PermanentError) as failed:
        await ShellRunner().run(task, notes)

    assert failed.value.reason == "CommandNotExecutable"


async def test_script_whose_interpreter_is_missing_fails_to_start(
    checkout, make_task, grant, notes
):
    script = checkout / "tools" / "legacy"
    script.parent.mkdir()
    script.write_text("#!/usr/bin/no-such-interpreter\n")
    script.chmod(0o755)
    task = make_task({"name": "legacy", "run": ["tools/legacy"]},
                     agent=grant(shell("tools/legacy")))

    with pytest.raises(errors.PermanentError) as failed:
        await ShellRunner().run(task, notes)

    assert failed.value.reason == "CommandFailedToStart"
    assert "No such file or directory" in str(failed.value)


async def test_timeout_stops_the_whole_process_group(tool, make_task, grant, notes, tmp_path, unconfined):
    pids = tmp_path / "pids"
    tool("tools/hang", f'sleep 30 &\necho "$$ $!" > {pids}\necho started\nwait')
    task = make_task({"name": "hang", "run": ["tools/hang"], "timeout": "1s"},
                     agent=grant(shell("tools/hang")))

    with pytest.raises(errors.PermanentError) as failed:
        await ShellRunner(sandbox=unconfined).run(task, notes)

    assert failed.value.reason == "TimedOut"
    assert "within 1s" in str(failed.value)
    assert notes.entries == [("output", "started")]
    for pid in map(int, pids.read_text().split()):
        await assert_gone(pid)


async def test_a_tool_ignoring_sigterm_is_killed_after_the_grace(
    tool, make_task, grant, notes, tmp_path
, unconfined):
    pids = tmp_path / "pids"
    tool("tools/stubborn", f"trap '' TERM\nsleep 30 &\necho \"$$ $!\" > {pids}\nwait")
    task = make_task({"name": "stubborn", "run": ["tools/stubborn"], "timeout": "1s"},
                     agent=grant(shell("tools/stubborn")))

    with pytest.raises(errors.PermanentError) as failed:
        await ShellRunner(sandbox=unconfined, kill_grace=0.2).run(task, notes)

    assert failed.value.reason == "TimedOut"
    for pid in map(int, pids.read_text().split()):
        await assert_gone(pid)


async def test_processes_left_behind_by_a_finished_tool_are_stopped(
    tool, make_task, grant, notes, tmp_path
, unconfined):
    pid_file = tmp_path / "pid"
    tool("tools/daemonish", f"sleep 30 &\necho $! > {pid_file}\nexit 0")
    task = make_task({"name": "d", "run": ["tools/daemonish"]},
                     agent=grant(shell("tools/daemonish")))

    await ShellRunner(sandbox=unconfined).run(task, notes)

    await assert_gone(int(pid_file.read_text()))


async def test_cancelling_the_attempt_stops_its_processes_and_propagates(
    tool, make_task, grant, notes, tmp_path
, unconfined):
    fifo = tmp_path / "pids"
    os.mkfifo(fifo)
    tool("tools/hang", 'sleep 30 &\necho "$$ $!" > "$1"\nwait')
    task = make_task({"name": "hang", "run": ["tools/hang", str(fifo)]},
                     agent=grant(shell("tools/hang")))
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    attempt = asyncio.create_task(ShellRunner(sandbox=unconfined).run(task, notes))
    try:
        await readable(reader)  # the tool is running and has told us its pids
        pids = [int(pid) for pid in os.read(reader, 100).split()]
        attempt.cancel()
        with pytest.raises(asyncio.CancelledError):
            await attempt
    finally:
        os.close(reader)
        attempt.cancel()

    assert attempt.cancelled()
    for pid in pids:
        await assert_gone(pid)


async def test_output_of_a_noisy_tool_is_bounded_to_its_tail(tool, make_task, grant, notes):
    tool("tools/noisy", "seq 1 300000\necho last words >&2")
    task = make_task({"name": "noisy", "run": ["tools/noisy"]}, agent=grant(shell("tools/noisy")))

    done = await ShellRunner().run(task, notes)

    lines = done.output.splitlines()
    assert len(done.output.encode()) <= 4096 + 80
    assert len(lines) <= 41
    assert lines[0].startswith("[... earlier output not shown;")
    assert lines[-2:] == ["300000", "last words"]
    assert notes.entries == [("output", done.output)]


async def test_step_naming_an_undefined_agent_is_capability_missing(make_task, notes):
    task = make_task({"name": "x", "agent": "ghost", "run": ["true"]})

    with pytest.raises(errors.CapabilityMissing) as blocked:
        await ShellRunner().run(task, notes)

    assert blocked.value.capability == "agent: ghost"

