"""The update budget never allows more than its calls in any minute and spreads them out;
the event-id memory forgets after its ttl and never grows past its size."""

from __future__ import annotations

from itertools import pairwise

from georgebot.slack.pacing import Budget


def test_the_budget_holds_in_every_sixty_seconds_and_spaces_calls_out() -> None:
    budget = Budget(per_minute=50, burst=5)
    now, sent = 0.0, []
    while now < 600:
        wait = budget.delay(now)
        if wait > 0:
            now += wait
            continue
        budget.take(now)
        sent.append(now)
    for i, start in enumerate(sent):
        in_window = [t for t in sent[i:] if t < start + 60]
        assert len(in_window) <= 50
    assert sent[:5] == [0.0] * 5  # the burst
    spread = sent[5:50]
    assert all(b - a >= 1.2 - 1e-9 for a, b in pairwise(spread))
    assert 480 <= len(sent) <= 505  # about 50 a minute over ten minutes


def test_the_budget_stays_under_its_limit_when_the_burst_is_the_whole_limit() -> None:
    budget = Budget(per_minute=3, burst=3)
    for at in (0.0, 0.0, 0.0):
        assert budget.delay(at) == 0
        budget.take(at)
    assert budget.delay(0.0) == 60.0  # the window, not only the bucket, says when
