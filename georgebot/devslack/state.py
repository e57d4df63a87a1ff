"""The local Slack's data model: one workspace held in memory, optionally saved as JSON.

`Workspace` owns users, groups, channels, messages (with threads and reactions), ephemeral
messages and App Home views, and tells its listeners after every change. It knows nothing of
HTTP or Socket Mode: `webapi`, `people` and `responses` mutate it; `shapes` renders it the way
Slack's API does; `journal` saves it (`dump`, and `take_changes` for what changed since).
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from georgebot.devslack.blocks import with_block_ids
from georgebot.devslack.seed import BotIdentity, Seed

JSON = dict[str, Any]


@dataclass
class User:
    id: str
    name: str
    real_name: str
    title: str = ""
    note: str = ""
    is_bot: bool = False
    bot_id: str | None = None
    is_admin: bool = False


@dataclass
class Group:
    id: str
    handle: str
    name: str
    users: list[str]
    description: str = ""
    created: int = 0


@dataclass
class Channel:
    id: str
    name: str
    members: list[str]
    created: int = 0
    is_private: bool = False
    is_im: bool = False
    im_user: str | None = None
    is_general: bool = False
    topic: str = ""
    purpose: str = ""


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    user: str | None
    blocks: list[JSON] | None = None
    bot_id: str | None = None
    app_id: str | None = None
    subtype: str | None = None
    thread_ts: str | None = None
    reactions: dict[str, list[str]] = field(default_factory=dict)
    edited: JSON | None = None
    client_msg_id: str | None = None
    metadata: JSON | None = None

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts


@dataclass
class Ephemeral:
    """A message only `user` sees, in `channel` (and `thread_ts`, if any); never stored by Slack."""

    user: str
    channel: str
    ts: str
    text: str
    blocks: list[JSON] | None = None
    thread_ts: str | None = None
    sender: str = "app"
    """`app` (George, through the API or a response_url) or `slackbot` (Slack's own notices)."""


@dataclass
class HomeView:
    id: str
    user: str
    view: JSON
    hash: str


class Workspace:
    """Everything a workspace holds; every mutation ends in `changed()`."""

    def __init__(self, seed: Seed, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._last_micros = 0
        self._counter = 0
        self.version = 0
        self.listeners: list[Callable[[], None]] = []
        self.team_id = seed.team_id
        self.team_name = seed.team_name
        self.team_domain = seed.team_domain
        self.bot: BotIdentity = seed.bot
        self.users: dict[str, User] = {}
        self.groups: dict[str, Group] = {}
        self.channels: dict[str, Channel] = {}
        self.messages: dict[str, list[Message]] = {}
        self._index: dict[tuple[str, str], Message] = {}
        self.ephemerals: list[Ephemeral] = []
        self.home: dict[str, HomeView] = {}
        self.tracking = False
        """When True (a journal is attached), mutations remember what they touched."""
        self._touched: dict[tuple[str, ...], None] = {}
        self._seed(seed)

    def _seed(self, seed: Seed) -> None:
        now = int(self._clock())
        bot = seed.bot
        self.users[bot.user_id] = User(
            bot.user_id, bot.name, bot.real_name, is_bot=True, bot_id=bot.bot_id
        )
        for person in seed.people:
            self.users[person.id] = User(
                person.id, person.name, person.real_name, title=person.title,
                note=person.note, is_admin=person.is_admin,
            )
        for group in seed.groups:
            self.groups[group.id] = Group(
                group.id, group.handle, group.name, list(group.users),
                description=group.description, created=now,
            )
        everyone = [p.id for p in seed.people]
        for ch in seed.channels:
            members = list(everyone if ch.members is None else ch.members)
            if ch.bot_member:
                members.append(bot.user_id)
            self.channels[ch.id] = Channel(
                ch.id, ch.name, members, created=now, is_private=ch.is_private,
                is_general=ch.is_general, topic=ch.topic, purpose=ch.purpose,
            )
            self.messages[ch.id] = []

    # -- change notification -------------------------------------------------------------

    def changed(self) -> None:
        self.version += 1
        for listener in list(self.listeners):
            listener()

    def _touch(self, *key: str) -> None:
        if self.tracking:
            self._touched[key] = None

    @property
    def has_changes(self) -> bool:
        return bool(self._touched)

    def take_changes(self) -> list[JSON]:
        """What changed since the last call, as journal records `apply_change` replays: each
        touched channel, message (or its deletion), ephemeral and Home view as it is now."""
        touched, self._touched = self._touched, {}
        records: list[JSON] = []
        for kind, *ids in touched:
            if kind == "channel" and ids[0] in self.channels:
                records.append({"channel": dataclasses.asdict(self.channels[ids[0]])})
            elif kind == "message":
                message = self.message(ids[0], ids[1])
                if message is None:
                    records.append({"deleted": {"channel": ids[0], "ts": ids[1]}})
                else:
                    records.append({"message": dataclasses.asdict(message)})
            elif kind == "ephemeral":
                found = next((e for e in reversed(self.ephemerals) if e.ts == ids[0]), None)
                if found is not None:
                    records.append({"ephemeral": dataclasses.asdict(found)})
            elif kind == "home" and ids[0] in self.home:
                records.append({"home": dataclasses.asdict(self.home[ids[0]])})
        return records

    def next_ts(self) -> str:
        """A fresh message timestamp: Slack's `seconds.micros`, strictly increasing."""
        micros = max(int(self._clock() * 1_000_000), self._last_micros + 1)
        self._last_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def next_id(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter:08d}"

    def now(self) -> float:
        return self._clock()

    # -- lookups -------------------------------------------------------------------------

    def user(self, user_id: str) -> User | None:
        return self.users.get(user_id)

    def user_by_name(self, name: str) -> User | None:
        name = name.lower()
        return next((u for u in self.users.values() if u.name.lower() == name), None)

    def group_by_handle(self, handle: str) -> Group | None:
        handle = handle.lower()
        return next((g for g in self.groups.values() if g.handle.lower() == handle), None)

    def channel(self, channel_id: str) -> Channel | None:
        return self.channels.get(channel_id)

    def channel_by_name(self, name: str) -> Channel | None:
        name = name.removeprefix("#").lower()
        return next(
            (c for c in self.channels.values() if not c.is_im and c.name.lower() == name), None
        )

    def resolve_channel(self, ref: str) -> Channel | None:
        """A channel by ID, or by `#name`/`name` as `chat.postMessage` allows."""
        return self.channels.get(ref) or self.channel_by_name(ref)

    def im_for(self, user_id: str) -> Channel:
        """The direct-message channel between `user_id` and the app, made on first use."""
        for ch in self.channels.values():
            if ch.is_im and ch.im_user == user_id:
                return ch
        channel_id = "D" + user_id[1:]
        ch = Channel(
            channel_id, channel_id, [user_id, self.bot.user_id], created=int(self._clock()),
            is_im=True, im_user=user_id,
        )
        self.channels[channel_id] = ch
        self.messages[channel_id] = []
        self._touch("channel", channel_id)
        self.changed()
        return ch

    def message(self, channel_id: str, ts: str) -> Message | None:
        return self._index.get((channel_id, ts))

    def all_messages(self) -> Iterator[Message]:
        for messages in self.messages.values():
            yield from messages

    def top_level(self, channel_id: str) -> list[Message]:
        return [m for m in self.messages.get(channel_id, []) if not m.is_reply]

    def replies(self, channel_id: str, thread_ts: str) -> list[Message]:
        return [
            m for m in self.messages.get(channel_id, [])
            if m.thread_ts == thread_ts and m.ts != thread_ts
        ]

    def ephemerals_for(self, user_id: str) -> list[Ephemeral]:
        return [e for e in self.ephemerals if e.user == user_id]

    # -- mutations -----------------------------------------------------------------------

    def add_message(
        self,
        channel: Channel,
        *,
        text: str,
        user: str | None,
        blocks: list[JSON] | None = None,
        from_bot: bool = False,
        thread_ts: str | None = None,
        subtype: str | None = None,
        client_msg_id: str | None = None,
        metadata: JSON | None = None,
    ) -> Message:
        ts = self.next_ts()
        message = Message(
            channel=channel.id,
            ts=ts,
            text=text,
            user=user,
            blocks=with_block_ids(blocks, ts) if blocks else None,
            bot_id=self.bot.bot_id if from_bot else None,
            app_id=self.bot.app_id if from_bot else None,
            subtype=subtype,
            thread_ts=thread_ts,
            client_msg_id=client_msg_id,
            metadata=metadata,
        )
        if thread_ts is not None:
            parent = self.message(channel.id, thread_ts)
            if parent is not None and parent.thread_ts is None:
                parent.thread_ts = parent.ts
                self._touch("message", channel.id, parent.ts)
        self.messages.setdefault(channel.id, []).append(message)
        self._index[(channel.id, message.ts)] = message
        self._touch("message", channel.id, message.ts)
        self.changed()
        return message

    def update_message(
        self, message: Message, *, text: str | None, blocks: list[JSON] | None, editor: str
    ) -> Message:
        """Edits `message` in place; returns a copy of it as it was."""
        previous = dataclasses.replace(message, reactions=dict(message.reactions))
        if text is not None:
            message.text = text
        edited_ts = self.next_ts()
        if blocks is not None:
            message.blocks = with_block_ids(blocks, edited_ts) if blocks else None
        message.edited = {"user": editor, "ts": edited_ts}
        self._touch("message", message.channel, message.ts)
        self.changed()
        return previous

    def delete_message(self, message: Message) -> None:
        self.messages[message.channel].remove(message)
        del self._index[(message.channel, message.ts)]
        self._touch("message", message.channel, message.ts)
        self.changed()

    def add_reaction(self, message: Message, name: str, user: str) -> bool:
        users = message.reactions.setdefault(name, [])
        if user in users:
            return False
        users.append(user)
        self._touch("message", message.channel, message.ts)
        self.changed()
        return True

    def remove_reaction(self, message: Message, name: str, user: str) -> bool:
        users = message.reactions.get(name)
        if not users or user not in users:
            return False
        users.remove(user)
        if not users:
            del message.reactions[name]
        self._touch("message", message.channel, message.ts)
        self.changed()
        return True

    def add_ephemeral(
        self,
        channel: Channel,
        user: str,
        *,
        text: str,
        blocks: list[JSON] | None = None,
        thread_ts: str | None = None,
        sender: str = "app",
    ) -> Ephemeral:
        ephemeral = Ephemeral(user, channel.id, self.next_ts(), text, blocks, thread_ts, sender)
        self.ephemerals.append(ephemeral)
        self._touch("ephemeral", ephemeral.ts)
        self.changed()
        return ephemeral

    def create_channel(self, name: str, creator: str, *, is_private: bool = False) -> Channel:
        """A new channel (its name checked by the caller). Everyone is in a public one, as in
        the seeded channels, so the page can post and react there at once."""
        channel_id = "C" + secrets.token_hex(5).upper()
        while channel_id in self.channels:
            channel_id = "C" + secrets.token_hex(5).upper()
        people = [u.id for u in self.users.values() if not u.is_bot and u.id != creator]
        members = [creator] if is_private else [creator, *people]
        channel = Channel(channel_id, name, members, created=int(self._clock()), is_private=is_private)
        self.channels[channel_id] = channel
        self.messages[channel_id] = []
        self._touch("channel", channel_id)
        self.changed()
        return channel

    def join(self, channel: Channel, user_id: str) -> bool:
        if user_id in channel.members:
            return False
        channel.members.append(user_id)
        self._touch("channel", channel.id)
        self.changed()
        return True

    def publish_home(self, user_id: str, view: JSON) -> HomeView:
        current = self.home.get(user_id)
        view_id = current.id if current else self.next_id("V0")
        home = HomeView(view_id, user_id, view, hash=self.next_ts())
        self.home[user_id] = home
        self._touch("home", user_id)
        self.changed()
        return home

    # -- persistence ---------------------------------------------------------------------

    def dump(self) -> JSON:
        """Everything but the seed's bot identity and team, which the constructor sets."""
        return {
            "users": [dataclasses.asdict(u) for u in self.users.values()],
            "groups": [dataclasses.asdict(g) for g in self.groups.values()],
            "channels": [dataclasses.asdict(c) for c in self.channels.values()],
            "messages": [dataclasses.asdict(m) for m in self.all_messages()],
            "ephemerals": [dataclasses.asdict(e) for e in self.ephemerals],
            "home": [dataclasses.asdict(h) for h in self.home.values()],
        }

    def load(self, data: JSON, changes: Iterable[JSON] = ()) -> None:
        """Replaces people, channels and history with a `dump()` and the `take_changes()`
        records made after it, in order, keeping the seed's identity."""
        self.users = {u["id"]: User(**u) for u in data["users"]}
        self.groups = {g["id"]: Group(**g) for g in data["groups"]}
        self.channels = {c["id"]: Channel(**c) for c in data["channels"]}
        index = {(m.channel, m.ts): m for m in (Message(**raw) for raw in data["messages"])}
        ephemerals = {e.ts: e for e in (Ephemeral(**raw) for raw in data["ephemerals"])}
        self.home = {h["user"]: HomeView(**h) for h in data["home"]}
        for record in changes:
            if "channel" in record:
                channel = Channel(**record["channel"])
                self.channels[channel.id] = channel
            elif "message" in record:
                message = Message(**record["message"])
                index[(message.channel, message.ts)] = message
            elif "deleted" in record:
                index.pop((record["deleted"]["channel"], record["deleted"]["ts"]), None)
            elif "ephemeral" in record:
                ephemeral = Ephemeral(**record["ephemeral"])
                ephemerals[ephemeral.ts] = ephemeral
            elif "home" in record:
                home = HomeView(**record["home"])
                self.home[home.user] = home
            else:
                raise KeyError(f"unknown change {sorted(record)}")
        self.messages = {channel_id: [] for channel_id in self.channels}
        for message in sorted(index.values(), key=lambda m: ts_key(m.ts)):
            self.messages.setdefault(message.channel, []).append(message)
        self._index = index
        self.ephemerals = sorted(ephemerals.values(), key=lambda e: ts_key(e.ts))
        self._touched = {}
        stamps = [ts_key(m.ts) for m in self.all_messages()]
        stamps += [ts_key(m.edited["ts"]) for m in self.all_messages() if m.edited]
        stamps += [ts_key(e.ts) for e in self.ephemerals]
        stamps += [ts_key(h.hash) for h in self.home.values()]
        self._last_micros = max([self._last_micros, *stamps])
        ids = [int(h.id[2:]) for h in self.home.values() if h.id[2:].isdigit()]
        self._counter = max([self._counter, *ids])
        self.changed()


def ts_key(ts: str) -> int:
    """A message timestamp as an integer count of microseconds, for ordering."""
    seconds, _, micros = ts.partition(".")
    return int(seconds) * 1_000_000 + int((micros or "0").ljust(6, "0")[:6])
