"""No attempt outlives the George that started it: George's side of the keeper process
(`watchdog.py`), and the records that let a later George stop what an earlier one left.

`ShellRunner` tells the `Keeper` each process group it starts and ends; the engine tells it
how long George's leases hold (`hold`, the engine's `Keeper` port). The keeper process acts
when George cannot: if George dies, or stops renewing its leases (SIGSTOP, a stuck event
loop) past the hold, it SIGKILLs every group it watches, before another George may claim
those steps. `stop` ends what is left of an earlier attempt's group, on this host only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import weakref
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from georgebot.model.attempts import ProcessRecord

WATCHDOG = Path(__file__).with_name("watchdog.py")
log = logging.getLogger(__name__)


# --- George's side -------------------------------------------------------------------


class Keeper:
    """George's handle on its keeper process, started when the first group is watched.
    Every call is made from George's event loop thread."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._watched: set[int] = set()
        self._hold: float | None = None  # seconds last asked for
        self._until: float | None = None  # monotonic time the last hold runs out

    def hold(self, seconds: float) -> None:
        """George's leases hold for `seconds` more; past that, its tools are stopped."""
        self._hold = max(seconds, 0.0)
        self._until = time.monotonic() + self._hold
        if self._process is not None:
            self._say(f"hold {self._hold:.3f}")

    def lapsed(self) -> bool:
        """True once the last hold has run out: a group killed now was killed for it."""
        return self._until is not None and time.monotonic() > self._until

    def watch(self, group: int) -> None:
        self._watched.add(group)
        self._say(f"watch {group}")

    def forget(self, group: int) -> None:
        self._watched.discard(group)
        if self._process is not None:
            self._say(f"forget {group}")

    def stop(self, previous: ProcessRecord) -> str:
        return stop_leftover(previous).value

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            _reap(process)

    def _say(self, line: str) -> None:
        """One line to the keeper, never blocking George: the pipe is non-blocking and a line
        is far below PIPE_BUF, so it is written whole or not at all."""
        for _ in range(2):  # a keeper that died is started again, told everything, once
            process = self._process or self._spawn()
            try:
                assert process.stdin is not None
                os.write(process.stdin.fileno(), line.encode() + b"\n")
                return
            except BlockingIOError:
                log.warning("the keeper process is not reading (stopped?); said nothing: %s", line)
                return
            except OSError:
                self._process = None
        raise OSError("the keeper process cannot be started")

    def _spawn(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(WATCHDOG)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # a signal to George's process group does not reach it
            close_fds=True,
        )
        assert process.stdin is not None
        os.set_blocking(process.stdin.fileno(), False)
        self._process = process
        weakref.finalize(self, _reap, process)  # a Keeper nobody closed still ends its process
        lines = []
        if self._until is not None:
            lines.append(f"hold {max(self._until - time.monotonic(), 0.0):.3f}")
        lines += [f"watch {group}" for group in sorted(self._watched)]
        for line in lines:
            os.write(process.stdin.fileno(), f"{line}\n".encode())
        return process


# --- what an attempt leaves behind ---------------------------------------------------


class Leftover(Enum):
    STOPPED = "its processes were stopped"
    GONE = "none of its processes were left"
    STUCK = "its processes were sent SIGKILL but some are stuck in the kernel (look at the host)"
    ELSEWHERE = "it ran on another host, whose George stops it"


def _reap(process: subprocess.Popen[bytes]) -> None:
    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()  # the keeper stops whatever is still watched, then exits
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def this_host() -> str:
    """Host name, boot and PID namespace: a group id means the same group only where all
    three match."""
    boot = _read("/proc/sys/kernel/random/boot_id").strip() or "-"
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = "-"
    return f"{socket.gethostname()}/{boot}/{namespace}"


def record(group: int) -> ProcessRecord:
    return ProcessRecord(host=this_host(), group=group, started=_start_time(group) or 0)


def stop_leftover(previous: ProcessRecord, *, wait: float = 2.0) -> Leftover:
    """SIGKILLs what is left alive of an earlier attempt's group on this host, and waits
    (up to `wait` seconds) until none of it runs. Blocking: call it from a thread."""
    if previous.host != this_host():
        return Leftover.ELSEWHERE
    leader = _stat(previous.group)
    if leader is not None and leader.started != previous.started:
        return Leftover.GONE  # the id belongs to someone else now
    if not _alive(previous.group):
        return Leftover.GONE  # exited, or zombies only: killed already, not yet reaped
    try:
        os.killpg(previous.group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return Leftover.GONE
    deadline = time.monotonic() + wait
    while _alive(previous.group):
        if time.monotonic() > deadline:
            return Leftover.STUCK
        time.sleep(0.02)
    return Leftover.STOPPED


@dataclass(frozen=True)
class _Stat:
    state: str
    group: int
    started: int


def _stat(pid: int | str) -> _Stat | None:
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return None
    fields = text.rpartition(")")[2].split()  # the command name may hold spaces
    # proc(5): field 3 is the state, 5 the process group, 22 the start time (clock ticks)
    return _Stat(state=fields[0], group=int(fields[2]), started=int(fields[19]))


def _start_time(pid: int) -> int | None:
    found = _stat(pid)
    return None if found is None else found.started


def _alive(group: int) -> bool:
    """True while a process of `group` runs (a zombie or a dead one does not)."""
    with os.scandir("/proc") as entries:
        for entry in entries:
            if entry.name.isdigit():
                found = _stat(entry.name)
                if found is not None and found.group == group and found.state not in ("Z", "X"):
                    return True
    return False


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


