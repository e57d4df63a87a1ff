"""Runs one argv as the leader of its own process group, under a deadline, keeping only a tail.

`agents/shell.py` calls `run_process` once per `run` attempt. Whatever ends the call (exit,
deadline, cancellation) no process of the group outlives it: the group gets SIGTERM, then
SIGKILL after a grace period; while it runs, the keeper watches it, so it does not outlive
George either. Output is folded into fixed-size tails as it arrives, so a tool that prints
gigabytes costs CPU, never memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from georgebot.agents.keeper import Keeper

STDERR = 2
RECORD_AFTER = 0.25  # seconds a group runs before it is recorded


class Tail:
    """The last `max_bytes` of a byte stream, and how many bytes went by in all."""

    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes
        self._buf = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        if len(data) >= self._max:
            self._buf[:] = data[-self._max :]
            return
        self._buf += data
        if (excess := len(self._buf) - self._max) > 0:
            del self._buf[:excess]

    def _lines(self) -> list[str]:
        """Whole lines only: a line the byte limit cut is left out (what is left of it could
        be part of a secret, too short to be recognised and masked)."""
        lines = self._buf.decode("utf-8", errors="replace").splitlines()
        if self.total > len(self._buf) and lines:
            lines = lines[1:]
        return lines

    def text(self, max_lines: int) -> str:
        """The tail as text, whole lines only, with a note when anything was left out."""
        lines = self._lines()
        cut = self.total > len(self._buf)
        if len(lines) > max_lines:
            lines, cut = lines[len(lines) - max_lines :], True
        if cut:
            lines.insert(0, f"[... earlier output not shown; {self.total} bytes in all]")
        return "\n".join(lines)

    def last_line(self) -> str:
        for line in reversed(self._lines()):
            if line.strip():
                return line.strip()
        return ""


@dataclass(frozen=True)
class Finished:
    """How the process ended; `returncode` is negative for a signal, None if it never exited."""

    returncode: int | None
    timed_out: bool
    output: str  # stdout and stderr interleaved as they arrived, bounded
    last_stderr_line: str


class _Collector(asyncio.SubprocessProtocol):
    def __init__(self, tail_bytes: int) -> None:
        loop = asyncio.get_running_loop()
        self.output = Tail(tail_bytes)
        self.stderr = Tail(1024)
        self.exited: asyncio.Future[None] = loop.create_future()
        self.finished: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self.output.feed(data)
        if fd == STDERR:
            self.stderr.feed(data)

    def process_exited(self) -> None:
        _resolve(self.exited)

    def connection_lost(self, exc: Exception | None) -> None:
        # Called once the process has exited and both pipes are closed.
        _resolve(self.exited)
        _resolve(self.finished)


_Spawning = asyncio.Task[tuple[asyncio.SubprocessTransport, _Collector]]


async def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    time_limit: float | None,
    grace: float = 2.0,
    tail_bytes: int = 4096,
    tail_lines: int = 40,
    keeper: Keeper | None = None,
    started: Callable[[int], Awaitable[None]] | None = None,
) -> Finished:
    """Raises OSError if the program cannot be started; re-raises cancellation after cleanup.
    `started` is told the process group if it is still running after RECORD_AFTER."""
    loop = asyncio.get_running_loop()
    spawning = loop.create_task(
        loop.subprocess_exec(
            lambda: _Collector(tail_bytes),
            *argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its pid is the group id: one signal reaches all of it
        ),
        name=f"spawn {argv[0]}",
    )
    try:
        transport, collector = await asyncio.shield(spawning)
    except asyncio.CancelledError:
        # Cancelled halfway through a start, asyncio would wait for every descendant to
        # close its pipes (a `sleep 30 &` holds the step for 30s); let the start finish
        # and stop the group the moment it has, even if we are cancelled again meanwhile.
        spawning.add_done_callback(_stop_spawned)
        await _stopped(spawning, grace)
        raise
    group = transport.get_pid()
    timed_out = False
    try:
        if keeper is not None:
            keeper.watch(group)
        try:
            async with asyncio.timeout(time_limit):
                if started is not None:
                    await _told_once_running(started, group, collector)
                await asyncio.shield(collector.exited)
        except TimeoutError:
            timed_out = True
    finally:
        try:
            await _end_group(group, collector, grace)
        finally:
            transport.close()
            if keeper is not None:
                keeper.forget(group)
    return Finished(
        returncode=transport.get_returncode(),
        timed_out=timed_out,
        output=collector.output.text(tail_lines),
        last_stderr_line=collector.stderr.last_line(),
    )


async def _told_once_running(
    started: Callable[[int], Awaitable[None]], group: int, collector: _Collector
) -> None:
    """Tells `started` of a group still running after RECORD_AFTER: a tool done sooner never
    needs stopping by anyone, and its record would cost a write per step."""
    try:
        async with asyncio.timeout(RECORD_AFTER):
            await asyncio.shield(collector.exited)
    except TimeoutError:
        await started(group)


async def _end_group(group: int, collector: _Collector, grace: float) -> None:
    """Stop whatever is left of the group; wait (bounded) for the last output and the exit."""
    try:
        if not collector.exited.done():
            _signal_group(group, signal.SIGTERM)
            await _within(grace, collector.exited)
    finally:
        # Also after a clean exit: background processes a tool left behind do not outlive
        # the attempt. A second cancellation while waiting above still gets here.
        _signal_group(group, signal.SIGKILL)
    await _within(grace, collector.exited)
    # A process that escaped the group (setsid) may hold the pipes: don't wait on it forever.
    await _within(grace, collector.finished)


async def _stopped(spawning: _Spawning, grace: float) -> None:
    """Waits (bounded) until a process whose start was cancelled has started and exited."""
    with contextlib.suppress(Exception):  # OSError: nothing started; TimeoutError: gave up
        async with asyncio.timeout(grace):
            _, collector = await asyncio.shield(spawning)
            await asyncio.shield(collector.exited)


async def _within(seconds: float, future: asyncio.Future[None]) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await asyncio.shield(future)


def _stop_spawned(spawning: _Spawning) -> None:
    if not spawning.cancelled() and spawning.exception() is None:
        transport, _ = spawning.result()
        _signal_group(transport.get_pid(), signal.SIGKILL)
        transport.close()


def _signal_group(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
