"""Kubernetes-style conditions on a job run (`InvalidSpec`, `Stalled`): set, cleared, and
logged only when they change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from georgebot.store import RunState, Store


def has_condition(run: RunState, type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") for c in run.conditions)


def without(conditions: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [c for c in conditions if c.get("type") != type_]


def set_condition(
    store: Store, run: RunState, type_: str, status: bool, reason: str, message: str, now: datetime
) -> bool:
    """Returns whether anything changed (the caller then tells the chat)."""
    current = next((c for c in run.conditions if c.get("type") == type_), None)
    if current and current.get("status") == status and current.get("message") == message:
        return False
    rest = without(run.conditions, type_)
    if status:
        rest.append(
            {
                "type": type_,
                "status": True,
                "reason": reason,
                "message": message,
                "lastTransitionTime": now.isoformat(),
            }
        )
    store.set_conditions(run, rest, now)
    store.log(
        run, job=run.name, step=None, actor="engine", at=now, reason=f"{type_}={status}", message=message
    )
    return True
