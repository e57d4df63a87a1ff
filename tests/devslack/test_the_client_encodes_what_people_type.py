"""What a person types is encoded as the Slack client encodes it before George sees it."""

from __future__ import annotations

import pytest

from georgebot.devslack import LocalSlack


@pytest.mark.parametrize(("typed", "sent"), [
    ("@george retry onboard-alice", "<@U0GEORGE> retry onboard-alice"),
    ("@George, hi", "<@U0GEORGE>, hi"),
    ("ask @it-team or @sam.", "ask <!subteam^S0ITTEAM> or <@U01SAM>."),
    ("see #onboarding and #nowhere", "see <#C0ONBOARD|onboarding> and #nowhere"),
    ("@here please", "<!here> please"),
    ("mail pat@george.example", "mail pat@george.example"),
    ("<@U0GEORGE> status", "<@U0GEORGE> status"),
    ("a < b & c > d", "a &lt; b &amp; c &gt; d"),
    ("<https://example.com|docs> @nobody", "<https://example.com|docs> @nobody"),
])
async def test_mentions_channels_and_escapes(slack: LocalSlack, typed: str, sent: str) -> None:
    assert slack.people.format_text(typed) == sent
