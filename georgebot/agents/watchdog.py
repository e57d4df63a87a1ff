"""The keeper process: run by path (`python -I -S watchdog.py`) by `keeper.Keeper`, in its
own session, with the standard library only, so it starts fast and imports nothing of George.

It reads `hold SECONDS`, `watch PGID` and `forget PGID` lines from George. When the pipe
closes (George died, however) or the last hold runs out (George is stopped or its event loop
is stuck, so its leases are not renewed), it SIGKILLs every group it watches.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time

_TICK = 0.2  # how often the keeper looks at the clock when nothing is said


def keep() -> None:
    watched: set[int] = set()
    deadline: float | None = None  # none until the first hold: nothing asked for one yet
    pending = b""
    stdin = sys.stdin.fileno()
    while True:
        wait = _TICK if deadline is None else max(0.0, min(_TICK, deadline - time.monotonic()))
        readable, _, _ = select.select([stdin], [], [], wait)
        if readable:
            chunk = os.read(stdin, 4096)
            if not chunk:  # George is gone, however it went
                _kill_all(watched, "George exited")
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                verb, _, value = line.decode(errors="replace").partition(" ")
                try:
                    if verb == "hold":
                        deadline = time.monotonic() + float(value)
                    elif verb == "watch":
                        watched.add(int(value))
                    elif verb == "forget":
                        watched.discard(int(value))
                except ValueError:  # a garbled line is skipped; the keeper goes on
                    print(f"george keeper: ignored {line[:80]!r}", file=sys.stderr, flush=True)
        if deadline is not None and watched and time.monotonic() > deadline:
            _kill_all(watched, "George's lease ran out unrenewed")


def _kill_all(groups: set[int], why: str) -> None:
    for group in sorted(groups):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
            print(f"george keeper: {why}; stopped process group {group}", file=sys.stderr, flush=True)
    groups.clear()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for George is George's
    keep()
