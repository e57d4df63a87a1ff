"""What George looks up in Slack and keeps for a while: channel ids by name (joining public
channels it is not in; creating missing ones in the local Slack), user-group members, its own
identity, and a person's latest reply in a thread. Owned by `SlackSurface`; the publisher and
the listeners share one. `names()` names people, groups and channels for `georgebot status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from georgebot import errors
from georgebot.slack.calls import CallFailed, call
from georgebot.slack.mrkdwn import Names, is_channel_id
from georgebot.slack.pacing import MonotonicTicker, Ticker

log = logging.getLogger(__name__)

MAX_PAGES = 50
_CHANNEL_NAME = re.compile(r"[a-z0-9_-]{1,80}")  # what conversations.create accepts


@dataclass(frozen=True)
class Identity:
    user_id: str
    bot_id: str


class Directory:
    def __init__(self, client: AsyncWebClient, *, ttl: float = 300.0,
                 ticker: Ticker | None = None, create_channels: bool = False) -> None:
        self.client = client
        self.ttl = ttl
        self.create_channels = create_channels
        """The local Slack: a channel the manifests name that does not exist is created."""
        self._missing: set[str] = set()  # names already reported as missing
        self._ticker = ticker or MonotonicTicker()
        self._channels: dict[str, str] = {}  # name without '#' -> id
        self._channels_at: float | None = None
        self._joined: set[str] = set()
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}
        self._by_email: dict[str, tuple[float, str | None]] = {}
        self._members: dict[str, tuple[float, frozenset[str]]] = {}
        self._identity: Identity | None = None

    # --- identity -------------------------------------------------------------------

    async def identity(self) -> Identity:
        if self._identity is None:
            answer = await call("auth.test", self.client.auth_test())
            self._identity = Identity(str(answer.get("user_id") or ""),
                                      str(answer.get("bot_id") or ""))
        return self._identity

    # --- channels -------------------------------------------------------------------

    async def channel(self, ref: str) -> str | None:
        """The id of a channel given as an id, `#name` or `name`, joined if it is public;
        None when no channel George can see has that name."""
        if not ref:
            return None
        if is_channel_id(ref):
            await self.join(ref)
            return ref
        name = ref.removeprefix("#").lower()
        found = self._channels.get(name)
        if found is None and self._stale():
            await self._load_channels()
            found = self._channels.get(name)
        if found is None:
            found = await self._missing_channel(name)
        if found is not None:
            await self.join(found)
        return found

    async def _missing_channel(self, name: str) -> str | None:
        """In the local Slack, creates the channel; in Slack, says once what to do about it."""
        if self.create_channels and _CHANNEL_NAME.fullmatch(name):
            try:
                answer = await call("conversations.create",
                                    self.client.conversations_create(name=name))
            except CallFailed as e:
                if e.temporary:
                    raise
                if e.error != "name_taken":
                    log.warning("could not create #%s in the local Slack: %s", name, e.error)
                    return None
                await self._load_channels()  # made meanwhile (another George, the page)
                return self._channels.get(name)
            created = answer.get("channel") or {}
            channel_id = str(created.get("id") or "")
            if not channel_id:
                return None
            log.info("created #%s in the local Slack (a manifest names it)", name)
            self._channels[name] = channel_id
            if created.get("is_member"):
                self._joined.add(channel_id)
            return channel_id
        if name not in self._missing:
            self._missing.add(name)
            log.warning("no public channel named #%s: create it, or if it is private invite "
                        "George there (/invite @George); until then Slack refuses its cards "
                        "and messages with channel_not_found", name)
        return None

    def _stale(self) -> bool:
        return self._channels_at is None or self._ticker.now() - self._channels_at > self.ttl

    async def _load_channels(self) -> None:
        names: dict[str, str] = {}
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = await call("conversations.list", self.client.conversations_list(
                types="public_channel", exclude_archived=True, limit=1000, cursor=cursor))
            for channel in page.get("channels") or []:
                names[str(channel.get("name", "")).lower()] = str(channel.get("id"))
                if channel.get("is_member"):
                    self._joined.add(str(channel.get("id")))
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        self._channels = names
        self._channels_at = self._ticker.now()

    async def join(self, channel_id: str) -> None:
        """Joins a public channel once, so George hears replies and reactions there.
        Private channels need an invitation; that failure is only logged."""
        if channel_id in self._joined:
            return
        try:
            await call("conversations.join", self.client.conversations_join(channel=channel_id))
        except CallFailed as e:
            if e.temporary:
                raise
            log.info("could not join %s (%s); invite George there if it should post",
                     channel_id, e.error)
        self._joined.add(channel_id)

    def forget_channel(self, channel_id: str) -> None:
        """After `not_in_channel`: join again next time."""
        self._joined.discard(channel_id)

    # --- user groups ----------------------------------------------------------------

    async def members(self, group: str) -> frozenset[str]:
        now = self._ticker.now()
        cached = self._groups.get(group)
        if cached is not None and now - cached[0] <= self.ttl:
            return cached[1]
        answer = await call("usergroups.users.list",
                            self.client.usergroups_users_list(usergroup=group))
        users = frozenset(str(u) for u in answer.get("users") or [])
        self._groups[group] = (now, users)
        return users

    async def groups_of(self, user: str, candidates: frozenset[str]) -> frozenset[str]:
        """Which of the user groups in `candidates` (`S…` ids) `user` belongs to."""
        found: set[str] = set()
        for group in sorted(g for g in candidates if g.startswith("S")):
            try:
                if user in await self.members(group):
                    found.add(group)
            except CallFailed as e:
                log.warning("could not list the members of user group %s: %s", group, e.error)
        return frozenset(found)

    # --- people ---------------------------------------------------------------------

    async def is_member(self, channel: str, user: str) -> bool:
        """Whether `user` is in `channel` (a `#name` or an id): who may retry its jobs. A
        channel George cannot see counts as nobody's, and a failure to ask raises."""
        channel_id = await self.channel(channel)
        if channel_id is None:
            return False
        now = self._ticker.now()
        cached = self._members.get(channel_id)
        if cached is None or now - cached[0] > self.ttl:
            members: set[str] = set()
            cursor = None
            try:
                while True:
                    answer = await call("conversations.members", self.client.conversations_members(
                        channel=channel_id, cursor=cursor, limit=1000))
                    members.update(str(m) for m in answer.get("members") or [])
                    cursor = (answer.get("response_metadata") or {}).get("next_cursor")
                    if not cursor:
                        break
            except CallFailed as e:
                raise errors.TemporaryError(f"could not list the members of {channel} ({e.error})",
                                            reason="SlackUnavailable") from e
            cached = self._members[channel_id] = (now, frozenset(members))
        return user in cached[1]

    async def person(self, user: str) -> tuple[str, str]:
        """(name, e-mail) of a Slack user, as a commit made for them is authored; a user
        without a visible e-mail gets `<id>@users.slack` so the commit still names them."""
        answer = await call("users.info", self.client.users_info(user=user))
        found = answer.get("user") or {}
        profile = found.get("profile") or {}
        name = str(profile.get("real_name") or found.get("real_name") or found.get("name") or user)
        return name, str(profile.get("email") or f"{user}@users.slack")

    async def user_by_email(self, email: str) -> str | None:
        """The Slack user with this e-mail (`users.lookupByEmail`), None if there is none: whom
        the four-eyes rule keeps from approving the jobs they committed. Any other failure
        raises, so the rule is never skipped because Slack did not answer."""
        now = self._ticker.now()
        cached = self._by_email.get(email.lower())
        if cached is not None and now - cached[0] <= self.ttl:
            return cached[1]
        try:
            answer = await call("users.lookupByEmail", self.client.users_lookupByEmail(email=email))
            user: str | None = str((answer.get("user") or {}).get("id") or "") or None
        except CallFailed as e:
            if e.error != "users_not_found":
                raise errors.TemporaryError(f"could not look up the job's author in Slack ({e.error})",
                                            reason="SlackUnavailable") from e
            user = None
        self._by_email[email.lower()] = (now, user)
        return user

    # --- threads --------------------------------------------------------------------

    async def latest_reply(self, channel: str, thread_ts: str, user: str, after: str) -> str:
        """The text of `user`'s latest reply in a thread, posted after `after`; '' if none."""
        mine = [text for who, text in await self.replies(channel, thread_ts, after) if who == user]
        return mine[-1] if mine else ""

    async def replies(self, channel: str, thread_ts: str, after: str) -> list[tuple[str, str]]:
        """People's replies in a thread posted after `after`, oldest first: (user, text)."""
        found: list[tuple[str, str]] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = await call("conversations.replies", self.client.conversations_replies(
                channel=channel, ts=thread_ts, oldest=after, limit=200, cursor=cursor))
            for message in page.get("messages") or []:
                if (message.get("user") and not message.get("bot_id")
                        and _ts(str(message.get("ts", "0"))) > _ts(after)):
                    found.append((str(message["user"]), str(message.get("text") or "")))
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return found


async def names(client: AsyncWebClient, refs: Iterable[str], *, within: float = 3.0) -> Names:
    """What Slack calls the people (`users.info`), user groups and channels among `refs`,
    within `within` seconds; whatever cannot be looked up (Slack unreachable, an unknown id)
    is left out, so its id is shown instead."""
    people: dict[str, str] = {}
    channels: dict[str, str] = {}
    groups: dict[str, str] = {}
    wanted = sorted(set(refs))

    async def one(ref: str) -> None:
        if ref[0] in "UW":
            user = (await call("users.info", client.users_info(user=ref))).get("user") or {}
            profile = user.get("profile") or {}
            name = (user.get("real_name") or profile.get("real_name")
                    or profile.get("display_name") or user.get("name"))
            if name:
                people[ref] = str(name)
        elif ref[0] in "CG":
            channel = (await call("conversations.info",
                                  client.conversations_info(channel=ref))).get("channel") or {}
            if channel.get("name"):
                channels[ref] = str(channel["name"])

    async def look() -> None:
        for ref in wanted:
            try:
                await one(ref)
            except CallFailed as e:
                if e.temporary:
                    return  # Slack is not reachable now: ids it is
                log.debug("no name for %s in Slack: %s", ref, e.error)
        if any(ref.startswith("S") for ref in wanted):
            try:
                listed = await call("usergroups.list", client.usergroups_list())
            except CallFailed as e:
                log.debug("no user-group names from Slack: %s", e.error)
                return
            for group in listed.get("usergroups") or []:
                if group.get("id") in wanted and group.get("handle"):
                    groups[str(group["id"])] = str(group["handle"])

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(look(), within)
    return Names(people, channels, groups)


async def names_in_slack(token: str, base_url: str | None, refs: Iterable[str], *,
                         within: float = 3.0) -> Names:
    """`names()` with a client of its own, for the command line."""
    async with aiohttp.ClientSession() as session:
        client = AsyncWebClient(token=token, base_url=base_url or AsyncWebClient.BASE_URL, session=session,
                                timeout=max(int(within), 1))
        return await names(client, refs, within=within)


def _ts(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    try:
        return int(seconds), int((micros or "0").ljust(6, "0")[:6])
    except ValueError:
        return 0, 0
