"""A Slack event's id is kept while Slack may deliver it again, and forgotten after: the table
does not grow with every event a workspace ever sent (SQLite, and PostgreSQL when available)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from georgebot.store import Store

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_a_repeat_is_refused_until_the_event_is_forgotten(store: Store) -> None:
    assert store.first_delivery("Ev1", AT)
    assert store.first_delivery("Ev2", AT + timedelta(minutes=90))
    assert not store.first_delivery("Ev1", AT + timedelta(minutes=5))  # Slack's retry

    assert store.forget_slack_events(AT + timedelta(hours=1)) == 1  # Ev1, an hour old
    assert store.first_delivery("Ev1", AT + timedelta(hours=2))
    assert not store.first_delivery("Ev2", AT + timedelta(hours=2))
