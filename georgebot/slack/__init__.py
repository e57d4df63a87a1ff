"""The Slack adapter: living job cards, `/george`, approvals by reaction, retry by mention.

`SlackSurface` is what `runtime.py` starts and closes; `slack_app_manifest()` is what
`georgebot slack-manifest` prints. Only this package (and `devslack/`) imports slack-bolt and
slack-sdk; it turns Slack events into engine calls and engine changes into Block Kit.
"""

from georgebot.slack.manifest import slack_app_manifest
from georgebot.slack.publisher import CardPublisher, PublisherSettings
from georgebot.slack.transport import EVENTS_PATH, SlackSurface, transport_mode

__all__ = [
    "EVENTS_PATH",
    "CardPublisher",
    "PublisherSettings",
    "SlackSurface",
    "slack_app_manifest",
    "transport_mode",
]
