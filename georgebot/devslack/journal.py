"""The local Slack's state on disk: a snapshot and a write-ahead journal, each fsynced.

`LocalSlack` owns one `Journal` when it has a state file: `open()` reads the snapshot
(`local-slack.json`) and replays the journal it names, `start()` runs the writer, and every
request's answer waits for `sync()`, so what the local Slack answered `ok` survives a SIGKILL.
The writer appends each batch of changes (`Workspace.take_changes`) as JSON lines and fsyncs;
it rewrites the snapshot (temp file, fsync, rename) at start, at close and when the journal grows.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from georgebot.devslack.state import JSON, Workspace
from georgebot.errors import ConfigError

log = logging.getLogger(__name__)

FORMAT = 2
"""1: a snapshot alone (saved every 0.2 s); 2: a snapshot naming its journal's generation."""
_PRIVATE = 0o600


@dataclass(eq=False)
class _Round:
    """One write of the writer; waiters of `sync()` wake when it is done, or failed."""

    done: asyncio.Event = field(default_factory=asyncio.Event)
    error: Exception | None = None


class Journal:
    def __init__(self, ws: Workspace, path: Path, *, compact_bytes: int = 8 * 1024 * 1024) -> None:
        self.ws = ws
        self.path = path
        self.compact_bytes = compact_bytes
        self._generation = 0
        self._lock: int | None = None
        self._fd: int | None = None
        self._size = 0
        self._saved = 0  # the workspace version known to be on disk
        self._unwritten = b""  # lines a failed write took, written first next time
        self._wake = asyncio.Event()
        self._round = _Round()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False

    def _journal_path(self, generation: int) -> Path:
        return self.path.with_name(f"{self.path.stem}.{generation}.journal")

    # -- reading -------------------------------------------------------------------------

    def open(self) -> None:
        """Loads what is on disk into the workspace and starts a fresh generation."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._take_lock()
        except OSError as e:
            raise ConfigError(f"the local Slack cannot write its state file {self.path}: {e}") from e
        try:
            self._load()
        except BaseException:
            self._release_lock()
            raise

    def _take_lock(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _PRIVATE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            os.close(fd)
            raise ConfigError(
                f"another local Slack is using its state file {self.path}: stop that George, "
                "or give this one its own GEORGE_HOME"
            ) from e
        self._lock = fd

    def _release_lock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # the kernel drops the lock, as it does when we are killed
            self._lock = None

    def _load(self) -> None:
        if self.path.exists():
            try:
                snapshot = json.loads(self.path.read_text(encoding="utf-8"))
                if not isinstance(snapshot, dict):
                    raise ValueError("not a JSON object")
                self._generation = int(snapshot.get("generation", 0))
                changes = self._read_journal(self._journal_path(self._generation))
                self.ws.load(snapshot, changes)
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise ConfigError(
                    f"the local Slack cannot read its state file {self.path}: {e}; "
                    "delete it to start from the demo workspace again"
                ) from e
        self.ws.tracking = True
        self.ws.take_changes()
        generation = self._generation + 1
        try:
            self._fd = self._install(self._snapshot(generation), generation)
        except OSError as e:
            raise ConfigError(f"the local Slack cannot write its state file {self.path}: {e}") from e
        self._generation = generation
        self._saved = self.ws.version
        for stale in self.path.parent.glob(f"{self.path.stem}.*.journal"):
            if stale != self._journal_path(generation):
                with suppress(OSError):
                    stale.unlink()

    def _read_journal(self, path: Path) -> list[JSON]:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return []
        records: list[JSON] = []
        for number, line in enumerate(data.split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                record: Any = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                # A write cut short by a crash (and so never answered), or a damaged line:
                # the rest of the journal is still worth more than starting afresh.
                log.warning("skipped line %d of %s: not a whole change", number, path)
                continue
            records.append(record)
        return records

    # -- writing -------------------------------------------------------------------------

    def _snapshot(self, generation: int) -> bytes:
        body = {"format": FORMAT, "generation": generation, **self.ws.dump()}
        return json.dumps(body, indent=1).encode()

    def _install(self, snapshot: bytes, generation: int) -> int:
        """Creates the empty journal of `generation`, then atomically replaces the snapshot
        with one that names it; returns the new journal's descriptor. Runs in a thread."""
        journal = os.open(
            self._journal_path(generation),
            os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, _PRIVATE,
        )
        try:
            tmp = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, _PRIVATE)
            try:
                _write_all(fd, snapshot)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            _fsync_directory(self.path.parent)
        except BaseException:
            os.close(journal)
            raise
        return journal

    def _append(self, fd: int, data: bytes) -> None:
        """Appends and fsyncs; after a failure cuts the file back, so no torn line stays."""
        try:
            _write_all(fd, data)
            os.fsync(fd)
        except OSError:
            with suppress(OSError):
                os.ftruncate(fd, self._size)
            raise

    # -- the writer ----------------------------------------------------------------------

    def start(self) -> None:
        self._writer = asyncio.create_task(self._run(), name="devslack-journal")
        self.ws.listeners.append(self._wake.set)

    async def sync(self) -> None:
        """Returns once every change made before the call is on disk; raises what made the
        write fail (an OSError: the changes stay queued for the next write)."""
        target = self.ws.version
        while self._saved < target:
            if self._writer is None or self._writer.done():
                raise OSError("the local Slack's journal is closed")
            current = self._round
            self._wake.set()
            await current.done.wait()
            if current.error is not None and self._saved < target:
                raise current.error

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            current, self._round = self._round, _Round()
            try:
                await self._write_changes()
            except Exception as e:  # a failing disk, or a change that is not JSON: both logged
                log.exception("could not write the local Slack's state to %s", self.path)
                current.error = e
            finally:
                current.done.set()
            if self._closing:
                return  # close() saves whatever is left in one snapshot
            if current.error is not None:
                await asyncio.sleep(0.5)  # a full or failing disk: do not spin

    async def _write_changes(self) -> None:
        version = self.ws.version
        records = self.ws.take_changes()
        self._unwritten += b"".join(
            json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in records
        )
        if self._unwritten and self._fd is not None:
            await asyncio.to_thread(self._append, self._fd, self._unwritten)
            self._size += len(self._unwritten)
            self._unwritten = b""
        self._saved = max(self._saved, version)
        if self._size > self.compact_bytes:
            try:
                await self._compact()
            except OSError:  # what was written stays in the journal, which keeps growing
                log.exception("could not rewrite the local Slack's state file %s", self.path)

    async def _compact(self) -> None:
        # What changes meanwhile stays in the workspace's changes, for the new journal.
        version, generation = self.ws.version, self._generation + 1
        snapshot = self._snapshot(generation)
        fd = await asyncio.to_thread(self._install, snapshot, generation)
        old_fd, old_path = self._fd, self._journal_path(self._generation)
        self._fd, self._size, self._generation = fd, 0, generation
        self._saved = max(self._saved, version)
        if old_fd is not None:
            os.close(old_fd)
        with suppress(OSError):
            old_path.unlink()

    async def close(self) -> None:
        """Writes what is left, then a full snapshot; the journal stays empty."""
        writer, self._writer = self._writer, None
        with suppress(ValueError):
            self.ws.listeners.remove(self._wake.set)
        if writer is not None:
            self._closing = True
            self._wake.set()
            await writer
        try:
            if self._fd is not None:
                await self._compact()
        except OSError:
            log.exception("could not save the local Slack's state to %s", self.path)
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._release_lock()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
