"""SIGKILL and SIGSTOP a real `georgebot reconcile --wait` while a long `run` tool works, and
check that two attempts of the step never run at once: the tool dies with its George (or is
stopped by its keeper when George is paused, or by the George that recovers the step), the
next attempt starts only after it, and the audit says so. Bubblewrap and unconfined alike.

The tool is watched only through the files it writes in its output folder (under bubblewrap
its pids are in a PID namespace of their own): an exclusive `flock` it holds while it lives,
the log of its starts and ends, and a heartbeat line every 0.1 s.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import pytest

from georgebot.agents.sandbox import Mode, Sandbox
from georgebot.model.status import JobStatus, StepStatus
from georgebot.store import Store, open_database
from georgebot.store.shapes import StepState
from tests.e2e.conftest import MakeRepo

pytestmark = pytest.mark.slow

T = TypeVar("T")

# Bubblewrap (where it starts), and `unconfined`: what `auto` falls back to without it. The
# keeper and the recovery work the same with `off`, which differs only in the checkout.
MODES: list[Mode] = ["auto", "unconfined"]

JOB = "long-job"
STEP = "long"
LEASE = 2.0  # GEORGE_LEASE_SECONDS; George's keeper stops its tools lease/5 before it ends

# Attempt 1 would beat for ~9 s: every test cuts it short, so it costs nothing, and a George
# that recovers the step (after LEASE) always finds it still going unless something stopped it.
TOOL = """#!/bin/sh
out="$GEORGE_OUTPUT_DIR"
exec 9>>"$out/lock"
if ! flock -n 9; then
  echo "ran twice at once: attempt $GEORGE_ATTEMPT found the lock held" >> "$out/runs.log"
  echo "ran twice at once" >&2
  exit 3
fi
readlink /proc/self/ns/pid > "$out/pidns.$GEORGE_ATTEMPT"
echo "start $GEORGE_ATTEMPT $(date +%s.%N)" >> "$out/runs.log"
if [ "$GEORGE_ATTEMPT" = 1 ]; then beats=80; else beats=2; fi
i=0
while [ "$i" -lt "$beats" ]; do
  echo "$GEORGE_ATTEMPT $(date +%s.%N)" >> "$out/heartbeat"
  sleep 0.1
  i=$((i + 1))
done
echo "end $GEORGE_ATTEMPT $(date +%s.%N)" >> "$out/runs.log"
echo "attempt $GEORGE_ATTEMPT done"
"""

MANIFESTS = {
    "tools/long": TOOL,
    "manifests/agents.yaml": """\
apiVersion: george/v1
kind: AgentSpec
metadata: {name: worker}
spec:
  capabilities:
    - shell: {commands: [tools/long]}
""",
    "manifests/template.yaml": f"""\
apiVersion: george/v1
kind: TaskTemplate
metadata: {{name: long-work}}
spec:
  steps:
    - {{name: {STEP}, agent: worker, run: [tools/long], retries: 0}}
""",
    # retries: 0, so an attempt that finds the lock held fails the job instead of hiding in a retry
    "manifests/job.yaml": f"""\
apiVersion: george/v1
kind: Job
metadata: {{name: {JOB}}}
spec: {{template: long-work}}
""",
}


def until(what: str, check: Callable[[], T | None], *, within: float, report: Callable[[], str]) -> T:
    deadline = time.monotonic() + within
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen within {within}s\n{report()}")
        time.sleep(0.05)


@dataclass
class World:
    """One repository, database and GEORGE_HOME, shared by every George a test starts."""

    tmp: Path
    mode: str
    env: dict[str, str]
    db_url: str
    out: Path
    georges: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    # --- George -----------------------------------------------------------------------

    def start(self, name: str) -> subprocess.Popen[bytes]:
        with (self.tmp / f"george-{name}.log").open("wb") as log:
            george = subprocess.Popen(
                [sys.executable, "-m", "georgebot", "reconcile", "--wait", "--timeout", "40"],
                cwd=self.tmp, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        self.georges[name] = george
        return george

    def finish(self, name: str, *, within: float = 30) -> int:
        try:
            return self.georges[name].wait(timeout=within)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"George {name} did not finish within {within}s\n{self.report()}") from None

    def log_of(self, name: str) -> str:
        path = self.tmp / f"george-{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def keeper_of(self, george: subprocess.Popen[bytes]) -> int | None:
        """The pid of George's keeper process: its child running watchdog.py."""
        for pid in _pids():
            if _ppid(pid) == george.pid and b"watchdog.py" in _read(f"/proc/{pid}/cmdline"):
                return pid
        return None

    # --- what the tool wrote ----------------------------------------------------------

    def runs(self) -> list[str]:
        path = self.out / "runs.log"
        return path.read_text().splitlines() if path.exists() else []

    def started(self, attempt: int) -> float | None:
        return next((float(x.split()[2]) for x in self.runs() if x.startswith(f"start {attempt} ")), None)

    def beats(self, attempt: int) -> list[float]:
        path = self.out / "heartbeat"
        lines = path.read_text().splitlines() if path.exists() else []
        return [float(x.split()[1]) for x in lines if x.startswith(f"{attempt} ") and len(x.split()) == 2]

    def tool_alive(self) -> bool:
        """True while some process of an attempt holds the tool's lock. Only asked while no
        George runs, so the probe can never be what an attempt finds holding it."""
        with (self.out / "lock").open("ab") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(lock, fcntl.LOCK_UN)
            return False

    def tool_pid_namespace(self, attempt: int) -> str:
        return (self.out / f"pidns.{attempt}").read_text().strip()

    # --- the database -----------------------------------------------------------------

    def step(self) -> StepState | None:
        if not (self.tmp / "george.db").exists():
            return None
        db = open_database(self.db_url, upgrade=False)
        try:
            runs = Store(db).load_runs([JOB])
        except Exception:  # not created yet
            return None
        finally:
            db.close()
        return runs[0].step(STEP) if runs else None

    def job_status(self) -> JobStatus:
        db = open_database(self.db_url, upgrade=False)
        try:
            return Store(db).load_runs([JOB])[0].status
        finally:
            db.close()

    def audit(self) -> list[str]:
        if not (self.tmp / "george.db").exists():
            return []
        db = open_database(self.db_url, upgrade=False)
        try:
            return [
                f"{e.at:%H:%M:%S.%f} {e.step or '-'} {e.from_status or ''}->{e.to_status or ''} "
                f"[{e.reason or ''}] {e.message}"
                for e in Store(db).events(JOB)
            ]
        except Exception:
            return []
        finally:
            db.close()

    def events(self) -> list[tuple[datetime, str | None, str | None, str]]:
        db = open_database(self.db_url, upgrade=False)
        try:
            return [(e.at, e.to_status, e.reason, e.message) for e in Store(db).events(JOB) if e.step == STEP]
        finally:
            db.close()

    def report(self) -> str:
        beats = (self.out / "heartbeat").read_text().splitlines() if (self.out / "heartbeat").exists() else []
        georges = "\n".join(
            f"--- George {name} (exit {g.poll()}):\n{self.log_of(name)[-3000:]}"
            for name, g in self.georges.items()
        )
        return (
            "audit:\n  " + "\n  ".join(self.audit())
            + "\nruns.log:\n  " + "\n  ".join(self.runs())
            + f"\nheartbeats: {len(beats)}, last: {beats[-3:]}\n" + georges
        )

    # --- the test's own leftovers -----------------------------------------------------

    def kill_leftovers(self) -> None:
        """SIGKILLs, by pid, every process this test started that still lives: its Georges,
        their keepers (which carry GEORGE_HOME) and the tools (which carry GEORGE_OUTPUT_DIR)."""
        for george in self.georges.values():
            if george.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    george.send_signal(signal.SIGCONT)
                    george.kill()
                george.wait(timeout=10)
        marks = (f"GEORGE_HOME={self.env['GEORGE_HOME']}".encode(), f"GEORGE_OUTPUT_DIR={self.out}".encode())
        for pid in _pids():
            if pid != os.getpid() and any(m in _read(f"/proc/{pid}/environ").split(b"\0") for m in marks):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _ppid(pid: int) -> int | None:
    fields = _read(f"/proc/{pid}/stat").rpartition(b")")[2].split()
    return int(fields[1]) if len(fields) > 1 else None


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError:
        return b""


@pytest.fixture(params=MODES)
def world(request: pytest.FixtureRequest, make_repo: MakeRepo, tmp_path: Path) -> Iterator[World]:
    repo = make_repo(MANIFESTS)
    home = tmp_path / "home"
    db_url = f"sqlite:///{tmp_path / 'george.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEORGE_", "SLACK_", "ANTHROPIC_"))}
    env |= {
        "GEORGE_REPO": str(repo),
        "GEORGE_DATABASE_URL": db_url,
        "GEORGE_HOME": str(home),
        "GEORGE_LEASE_SECONDS": str(LEASE),
        "GEORGE_SANDBOX": request.param,
    }
    found = World(tmp_path, request.param, env, db_url, (home / "outputs" / JOB).resolve())
    try:
        yield found
    finally:
        found.kill_leftovers()


def confined(world: World) -> bool:
    return world.mode == "auto" and Sandbox.detect("auto").confined


def attempt_one_running(world: World) -> StepState | None:
    """The tool has been at work a while (three heartbeats) and George has recorded its
    process group."""
    if len(world.beats(1)) < 3:
        return None
    step = world.step()
    if step is None or step.attempts != 1 or step.process is None:
        return None
    return step


def assert_tool_stops(world: World, *, within: float, since: float) -> None:
    """The tool's lock is free (no process of it lives) and its heartbeat has stopped."""
    until("the tool stopped", lambda: not world.tool_alive(), within=within, report=world.report)
    beats = len(world.beats(1))
    time.sleep(0.4)  # a check, not a wait: four heartbeats' time, and none may come
    assert len(world.beats(1)) == beats, "the tool's heartbeat goes on\n" + world.report()
    assert world.beats(1)[-1] < since + within, world.report()


def assert_ran_once_after_the_other(world: World) -> None:
    """The job succeeded in exactly two attempts; attempt 2 started after attempt 1's last sign
    of life, and found the lock free; a recovery is in the audit."""
    report = world.report()
    assert world.job_status() is JobStatus.SUCCEEDED, report
    step = world.step()
    assert step is not None and step.status is StepStatus.SUCCEEDED and step.attempts == 2, report
    events = world.events()
    assert [e[1] for e in events].count(StepStatus.RUNNING.value) == 2, report
    assert [e[1] for e in events].count(StepStatus.SUCCEEDED.value) == 1, report
    assert [x.split()[:2] for x in world.runs()] == [["start", "1"], ["start", "2"], ["end", "2"]], report
    second = world.started(2)
    assert second is not None and world.beats(1) and max(world.beats(1)) < second, report
    assert world.beats(2), report
    assert any(e[2] == "Recovered" for e in events), report
    # Both paths are what they say: bubblewrap's own PID namespace, or the host's.
    host = os.readlink("/proc/self/ns/pid")
    seen = [world.tool_pid_namespace(1), world.tool_pid_namespace(2)]
    if confined(world):
        assert host not in seen, (host, seen)
    else:
        assert seen == [host, host], (host, seen)


def recovery_note(world: World) -> str:
    notes = [
        e[3] for e in world.events()
        if e[2] == "Recovered" and e[1] is None and "stopped renewing its lease" in e[3]
    ]
    assert len(notes) == 1, world.report()
    assert "attempt 1 stopped renewing its lease" in notes[0], world.report()
    assert "attempt 2 starts" in notes[0], world.report()
    return notes[0]


def recovered_claim_at(world: World) -> datetime:
    """When attempt 2 was claimed as a recovery (it starts after this)."""
    claims = [e[0] for e in world.events() if e[1] == StepStatus.RUNNING.value and e[2] == "Recovered"]
    assert len(claims) == 1, world.report()
    return claims[0]


def test_sigkill_of_george_stops_its_tool_before_the_next_attempt(world: World) -> None:
    first = world.start("first")
    until("attempt 1 running", lambda: attempt_one_running(world), within=20, report=world.report)

    killed = time.time()
    first.kill()
    first.wait(timeout=10)
    assert_tool_stops(world, within=2.5, since=killed)

    world.start("second")
    assert world.finish("second") == 0, world.report()
    assert_ran_once_after_the_other(world)
    recovery_note(world)


def test_sigkill_of_george_and_its_keeper_still_never_runs_two_attempts(world: World) -> None:
    george = world.start("first")
    until("attempt 1 running", lambda: attempt_one_running(world), within=20, report=world.report)
    keeper = until("George's keeper", lambda: world.keeper_of(george), within=5, report=world.report)

    # Paused first, so George cannot start a new keeper between the two kills.
    george.send_signal(signal.SIGSTOP)
    os.kill(keeper, signal.SIGKILL)
    killed = time.time()
    george.kill()
    george.wait(timeout=10)
    step = world.step()
    assert step is not None and step.lease_expires_at is not None, world.report()
    lease_ends = step.lease_expires_at.timestamp()

    if confined(world):  # bubblewrap's --die-with-parent: the sandbox goes with George
        assert_tool_stops(world, within=2.5, since=killed)
    else:  # nothing stopped it: the tool outlives George, until a George recovers the step
        beats = len(world.beats(1))
        until("the orphaned tool beating on", lambda: len(world.beats(1)) >= beats + 3, within=3,
              report=world.report)
        assert world.tool_alive(), world.report()

    world.start("second")
    assert world.finish("second") == 0, world.report()
    assert_ran_once_after_the_other(world)
    note = recovery_note(world)
    if not confined(world):
        assert "its processes were stopped" in note, world.report()
        # It beat on until the recovering George stopped it, once attempt 1's lease had run out
        # (its last heartbeat is at most one beat before that).
        assert max(world.beats(1)) > lease_ends - 0.3, world.report()


def test_sigstop_of_george_lets_another_recover_only_after_its_keeper_stopped_the_tool(
    world: World,
) -> None:
    paused = world.start("paused")
    step = until("attempt 1 running", lambda: attempt_one_running(world), within=20, report=world.report)
    # Right after a lease renewal commits, so George is not paused holding the database's lock.
    renewed = step.lease_expires_at

    def renewal() -> bool:
        now = world.step()
        return now is not None and now.lease_expires_at != renewed

    until("a lease renewal", renewal, within=5, report=world.report)
    paused.send_signal(signal.SIGSTOP)
    stopped = time.time()
    last = world.step()
    assert last is not None and last.lease_expires_at is not None, world.report()
    lease_ends = last.lease_expires_at

    world.start("other")
    assert world.finish("other") == 0, world.report()
    assert paused.poll() is None, "the paused George ended while paused\n" + world.report()

    assert_ran_once_after_the_other(world)
    claimed = recovered_claim_at(world)
    assert claimed >= lease_ends, f"recovered at {claimed}, before its lease ran out\n" + world.report()
    # The paused George's keeper stopped its tool before its lease ran out, so before the other
    # George could claim the step: not the other George, which came later.
    last_beat = max(world.beats(1))
    assert last_beat < claimed.timestamp(), world.report()
    assert last_beat < stopped + LEASE, world.report()
    assert "George's lease ran out unrenewed" in world.log_of("paused"), world.report()

    before = world.events()
    paused.send_signal(signal.SIGCONT)
    assert world.finish("paused") == 0, world.report()
    # Resumed, it ran nothing again, and its outcome of attempt 1 changed nothing of the step.
    assert world.events() == before, world.report()
    assert_ran_once_after_the_other(world)
