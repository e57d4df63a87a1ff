"""Actual state: SQLModel tables on SQLite or PostgreSQL, queries and migrations.

Rows never leave this package; callers get views (`model/views.py`) or plain values.
"""

from georgebot.model.views import OutboxItem, SlackMessage
from georgebot.store.database import Database, open_database, reading
from georgebot.store.repository import Claim, Store
from georgebot.store.shapes import (
    NOTHING,
    Ballot,
    Closing,
    ContextItem,
    Effects,
    JobChange,
    Move,
    Note,
    Opening,
    Outgoing,
    Remark,
    RunState,
    StepState,
    Widening,
)

__all__ = [
    "NOTHING",
    "Ballot",
    "Claim",
    "Closing",
    "ContextItem",
    "Database",
    "Effects",
    "JobChange",
    "Move",
    "Note",
    "Opening",
    "OutboxItem",
    "Outgoing",
    "Remark",
    "RunState",
    "SlackMessage",
    "StepState",
    "Store",
    "Widening",
    "open_database",
    "reading",
]
