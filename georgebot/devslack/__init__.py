"""A local Slack that slack-bolt and slack-sdk connect to as they connect to Slack.

`LocalSlack` serves the Web API George uses, Socket Mode, response URLs, a web page to act as
people, and test hooks (state, faults, waiting); `serve()` runs it alone. Nothing here imports
the rest of George: `runtime.py` starts it when no Slack tokens are configured.

It is not a multi-user service: it listens on 127.0.0.1 for the one person at this machine,
who picks on its page who they are. It answers only requests addressed to its own address,
from its own page (a per-start token in an HttpOnly cookie) or with this start's bot token,
so other web pages, DNS rebinding and George's own agents cannot act as anyone. Anything that
runs code as that person can still act as anyone: use a real Slack workspace to share George.
"""

from georgebot.devslack.events import DEFAULT_EVENTS
from georgebot.devslack.people import DEFAULT_COMMANDS, ActionError, SlashCommand
from georgebot.devslack.seed import DEMO_SEED, BotIdentity, ChannelSeed, GroupSeed, Person, Seed
from georgebot.devslack.server import LocalSlack, serve
from georgebot.devslack.state import Ephemeral, HomeView, Message, Workspace

__all__ = [
    "DEFAULT_COMMANDS",
    "DEFAULT_EVENTS",
    "DEMO_SEED",
    "ActionError",
    "BotIdentity",
    "ChannelSeed",
    "Ephemeral",
    "GroupSeed",
    "HomeView",
    "LocalSlack",
    "Message",
    "Person",
    "Seed",
    "SlashCommand",
    "Workspace",
    "serve",
]
