"""Actual state: SQLModel tables on SQLite or PostgreSQL, queries and migrations.

Rows never leave this package; callers get views (`model/views.py`) or plain values.
"""

from georgebot.store.database import Database, open_database, reading
from georgebot.store.repository import Store
from georgebot.store.shapes import (
    ContextItem,
    OutboxItem,
    RunState,
    SlackMessage,
    StepState,
    StepUpdate,
)

__all__ = [
    "ContextItem",
    "Database",
    "OutboxItem",
    "RunState",
    "SlackMessage",
    "StepState",
    "StepUpdate",
    "Store",
    "open_database",
    "reading",
]
