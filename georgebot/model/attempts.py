"""Where an attempt runs: its process group, and the George process (replica) that runs it.

Executors report a `ProcessRecord` when an attempt starts processes; the store keeps it on
the step, so a George that recovers the step stops what is left. A `Replica` is what each
running George says of itself (host, sandbox), which `status` reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ProcessRecord:
    """The host (name, boot, PID namespace), the group id, and its leader's start time, so a
    reused id is never taken for the attempt's group."""

    host: str
    group: int
    started: int

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "group": self.group, "started": self.started}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessRecord:
        return cls(host=str(data["host"]), group=int(data["group"]), started=int(data["started"]))


@dataclass(frozen=True)
class Replica:
    id: str  # the lease owner name its steps carry
    host: str
    pid: int
    version: str
    sandbox: str  # "bubblewrap 0.8.0", or "none: why"
    started_at: datetime
    heartbeat_at: datetime
    sync_error: str | None = None  # its Git sync fails or is stuck: what is wrong
    leads: tuple[str, ...] = ()  # what it leads now: "sync", "outbox:<bot user>"
