"""What the app hears: Events API callbacks, slash-command and block-action payloads.

`EventSource` decides, as Slack does, which events reach the app (it must be subscribed to the
type and, for channel events, be a member of the channel) and wraps each in an `event_callback`
for the `SocketHub`. The payload builders shape slash commands and button clicks like Slack's.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterable

from georgebot.devslack.shapes import message_json
from georgebot.devslack.socket import SocketHub
from georgebot.devslack.state import JSON, Channel, Message, Workspace

DEFAULT_EVENTS = frozenset({
    "message", "app_mention", "reaction_added", "reaction_removed", "app_home_opened",
})
"""The event types the app is subscribed to unless `LocalSlack(events=...)` says otherwise."""

VERIFICATION_TOKEN = "devslack-verification-token"


def _random_id(prefix: str, length: int = 10) -> str:
    alphabet = string.ascii_uppercase + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


def trigger_id() -> str:
    return f"{secrets.randbelow(10**10)}.{secrets.randbelow(10**10)}.{secrets.token_hex(16)}"


def channel_type(channel: Channel) -> str:
    if channel.is_im:
        return "im"
    return "group" if channel.is_private else "channel"


class EventSource:
    def __init__(self, ws: Workspace, hub: SocketHub, *, events: Iterable[str]) -> None:
        self.ws = ws
        self.hub = hub
        self.events = frozenset(events)

    def _emit(self, event: JSON, channel: Channel | None = None) -> None:
        if event["type"] not in self.events:
            return
        if channel is not None and self.ws.bot.user_id not in channel.members:
            return
        now = self.ws.now()
        self.hub.deliver("events_api", {
            "token": VERIFICATION_TOKEN,
            "team_id": self.ws.team_id,
            "context_team_id": self.ws.team_id,
            "context_enterprise_id": None,
            "api_app_id": self.ws.bot.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": _random_id("Ev"),
            "event_time": int(now),
            "authorizations": [{
                "enterprise_id": None,
                "team_id": self.ws.team_id,
                "user_id": self.ws.bot.user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }],
            "is_ext_shared_channel": False,
            "event_context": _random_id("4-", 24),
        })

    def message_posted(self, message: Message) -> None:
        channel = self.ws.channels[message.channel]
        event = message_json(self.ws, message)
        event.update(channel=channel.id, event_ts=message.ts, channel_type=channel_type(channel))
        self._emit(event, channel)
        mention = f"<@{self.ws.bot.user_id}>"
        if message.bot_id is None and message.subtype is None and mention in message.text:
            app_mention: JSON = {
                "type": "app_mention",
                "user": message.user,
                "text": message.text,
                "ts": message.ts,
                "team": self.ws.team_id,
                "channel": channel.id,
                "event_ts": message.ts,
            }
            if message.client_msg_id:
                app_mention["client_msg_id"] = message.client_msg_id
            if message.thread_ts:
                app_mention["thread_ts"] = message.thread_ts
            self._emit(app_mention, channel)

    def message_changed(self, message: Message, previous: Message) -> None:
        channel = self.ws.channels[message.channel]
        ts = self.ws.next_ts()
        self._emit({
            "type": "message",
            "subtype": "message_changed",
            "message": message_json(self.ws, message),
            "previous_message": message_json(self.ws, previous),
            "channel": channel.id,
            "hidden": True,
            "ts": ts,
            "event_ts": ts,
            "channel_type": channel_type(channel),
        }, channel)

    def message_deleted(self, message: Message) -> None:
        channel = self.ws.channels[message.channel]
        ts = self.ws.next_ts()
        self._emit({
            "type": "message",
            "subtype": "message_deleted",
            "previous_message": message_json(self.ws, message),
            "channel": channel.id,
            "hidden": True,
            "deleted_ts": message.ts,
            "ts": ts,
            "event_ts": ts,
            "channel_type": channel_type(channel),
        }, channel)

    def reaction(self, message: Message, name: str, user: str, *, added: bool) -> None:
        channel = self.ws.channels[message.channel]
        event: JSON = {
            "type": "reaction_added" if added else "reaction_removed",
            "user": user,
            "reaction": name,
            "item": {"type": "message", "channel": channel.id, "ts": message.ts},
            "event_ts": self.ws.next_ts(),
        }
        if message.user:
            event["item_user"] = message.user
        self._emit(event, channel)

    def member_joined(self, channel: Channel, user: str) -> None:
        self._emit({
            "type": "member_joined_channel",
            "user": user,
            "channel": channel.id,
            "channel_type": "G" if channel.is_private else "C",
            "team": self.ws.team_id,
            "event_ts": self.ws.next_ts(),
        }, channel)

    def app_home_opened(self, user: str, view: JSON | None) -> None:
        im = self.ws.im_for(user)
        event: JSON = {
            "type": "app_home_opened",
            "user": user,
            "channel": im.id,
            "tab": "home",
            "event_ts": self.ws.next_ts(),
        }
        if view is not None:
            event["view"] = view
        self._emit(event)


def slash_payload(
    ws: Workspace, *, user: str, channel: Channel, command: str, text: str, response_url: str,
) -> JSON:
    """The form fields Slack posts for a slash command, as Socket Mode carries them."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": ws.team_id,
        "team_domain": ws.team_domain,
        "channel_id": channel.id,
        "channel_name": "directmessage" if channel.is_im else channel.name,
        "user_id": user,
        "user_name": ws.users[user].name,
        "command": command,
        "text": text,
        "api_app_id": ws.bot.app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id(),
    }


def block_actions_payload(
    ws: Workspace,
    *,
    user: str,
    action: JSON,
    block_id: str,
    message: Message | None = None,
    home_view: JSON | None = None,
    response_url: str | None = None,
) -> JSON:
    """A `block_actions` interaction: a button clicked on a message or in App Home."""
    person = ws.users[user]
    clicked: JSON = {
        "action_id": action.get("action_id", ""),
        "block_id": block_id,
        "type": action.get("type", "button"),
        "action_ts": ws.next_ts(),
    }
    for key in ("text", "value", "style", "url"):
        if key in action:
            clicked[key] = action[key]
    payload: JSON = {
        "type": "block_actions",
        "user": {"id": user, "username": person.name, "name": person.name, "team_id": ws.team_id},
        "api_app_id": ws.bot.app_id,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id(),
        "team": {"id": ws.team_id, "domain": ws.team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "state": {"values": {}},
        "actions": [clicked],
    }
    if message is not None:
        channel = ws.channels[message.channel]
        payload["container"] = {
            "type": "message", "message_ts": message.ts, "channel_id": channel.id,
            "is_ephemeral": False,
        }
        payload["channel"] = {"id": channel.id, "name": channel.name}
        payload["message"] = message_json(ws, message)
        if response_url is not None:
            payload["response_url"] = response_url
    elif home_view is not None:
        payload["container"] = {"type": "view", "view_id": home_view["id"]}
        payload["view"] = home_view
    return payload
