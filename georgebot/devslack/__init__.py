"""A local Slack that slack-bolt and slack-sdk connect to as they connect to Slack.

`LocalSlack` serves the Web API George uses, Socket Mode, response URLs, a web page to act as
people, and test hooks (state, faults, waiting); `serve()` runs it alone. Nothing here imports
the rest of George: `runtime.py` starts it when no Slack tokens are configured.
"""

from georgebot.devslack.events import DEFAULT_EVENTS
from georgebot.devslack.people import DEFAULT_COMMANDS, ActionError, SlashCommand
from georgebot.devslack.seed import DEMO_SEED, BotIdentity, ChannelSeed, GroupSeed, Person, Seed
from georgebot.devslack.server import APP_TOKEN, BOT_TOKEN, LocalSlack, serve
from georgebot.devslack.state import Ephemeral, HomeView, Message, Workspace

__all__ = [
    "APP_TOKEN",
    "BOT_TOKEN",
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
