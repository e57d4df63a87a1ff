"""The workspace the local Slack starts with: team, George's bot identity, people, groups, channels.

`DEMO_SEED` is what the demo manifests name (approvers, `#onboarding`, `@it-team`); tests pass
their own `Seed` to `LocalSlack`. Seeds are plain frozen data: `state.Workspace` turns one into
live state.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BotIdentity:
    user_id: str = "U0GEORGE"
    name: str = "george"
    real_name: str = "George"
    bot_id: str = "B0GEORGE"
    app_id: str = "A0GEORGE"


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    real_name: str
    title: str = ""
    note: str = ""
    """Shown only by the page's user switcher (say, "approver"); never sent through the API."""
    is_admin: bool = False


@dataclass(frozen=True)
class GroupSeed:
    id: str
    handle: str
    name: str
    users: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True)
class ChannelSeed:
    id: str
    name: str
    members: tuple[str, ...] | None = None
    """People in the channel; `None` means every seeded person."""
    bot_member: bool = False
    is_private: bool = False
    is_general: bool = False
    topic: str = ""
    purpose: str = ""


@dataclass(frozen=True)
class Seed:
    team_id: str = "T0LOCAL"
    team_name: str = "George Local"
    team_domain: str = "george-local"
    bot: BotIdentity = field(default_factory=BotIdentity)
    people: tuple[Person, ...] = ()
    groups: tuple[GroupSeed, ...] = ()
    channels: tuple[ChannelSeed, ...] = ()


DEMO_SEED = Seed(
    people=(
        Person("U01ALEX", "alex", "Alex Kim", title="IT", note="approver"),
        Person("U01SAM", "sam", "Sam Lee", title="Security lead", note="approver"),
        Person("U01PAT", "pat", "Pat Doe", title="New starter"),
        Person("U01LEE", "lee", "Lee Park", title="Engineer"),
    ),
    groups=(
        GroupSeed("S0ITTEAM", "it-team", "IT team", ("U01ALEX",), "Laptops and accounts"),
    ),
    channels=(
        ChannelSeed("C0GEORGE", "george", bot_member=True, purpose="Where George reports"),
        ChannelSeed("C0ONBOARD", "onboarding", purpose="New starters"),
        ChannelSeed("C0IT", "it", purpose="IT requests"),
        ChannelSeed("C0SECURITY", "security", purpose="Security reviews"),
        ChannelSeed("C0GENERAL", "general", is_general=True, purpose="Everyone"),
    ),
)
