"""Slack's JSON shapes for the workspace's objects: users, groups, channels, messages, views.

The Web API, the event payloads and `GET /local/api/state` all render through these, so a
message reads the same in `conversations.history`, in a `message` event and in the state dump.
"""

from __future__ import annotations

from typing import Any

from georgebot.devslack.state import JSON, Channel, Group, HomeView, Message, User, Workspace

_COLORS = ("9f69e7", "4bbe2e", "e7392d", "3c989f", "e0a729", "684b6c", "5b89d5")


def user_json(ws: Workspace, user: User) -> JSON:
    profile: JSON = {
        "title": user.title,
        "real_name": user.real_name,
        "real_name_normalized": user.real_name,
        "display_name": user.name,
        "display_name_normalized": user.name,
        "status_text": "",
        "status_emoji": "",
        "avatar_hash": "",
        "first_name": user.real_name.split(" ")[0],
        "last_name": " ".join(user.real_name.split(" ")[1:]),
        "team": ws.team_id,
    }
    if user.is_bot:
        profile["bot_id"] = user.bot_id
        profile["api_app_id"] = ws.bot.app_id
        profile["always_active"] = True
    else:
        profile["email"] = f"{user.name}@{ws.team_domain}.example"
    return {
        "id": user.id,
        "team_id": ws.team_id,
        "name": user.name,
        "deleted": False,
        "color": _COLORS[sum(map(ord, user.id)) % len(_COLORS)],
        "real_name": user.real_name,
        "tz": "Etc/UTC",
        "tz_label": "Coordinated Universal Time",
        "tz_offset": 0,
        "profile": profile,
        "is_admin": user.is_admin,
        "is_owner": False,
        "is_primary_owner": False,
        "is_restricted": False,
        "is_ultra_restricted": False,
        "is_bot": user.is_bot,
        "is_app_user": False,
        "updated": 0,
        "is_email_confirmed": not user.is_bot,
    }


def group_json(ws: Workspace, group: Group, *, include_users: bool = False) -> JSON:
    body: JSON = {
        "id": group.id,
        "team_id": ws.team_id,
        "is_usergroup": True,
        "is_subteam": True,
        "name": group.name,
        "description": group.description,
        "handle": group.handle,
        "is_external": False,
        "date_create": group.created,
        "date_update": group.created,
        "date_delete": 0,
        "auto_type": None,
        "auto_provision": False,
        "enterprise_subteam_id": "",
        "created_by": ws.bot.user_id,
        "updated_by": ws.bot.user_id,
        "deleted_by": None,
        "prefs": {"channels": [], "groups": []},
        "user_count": len(group.users),
        "channel_count": 0,
    }
    if include_users:
        body["users"] = list(group.users)
    return body


def channel_json(ws: Workspace, channel: Channel, *, viewer: str | None = None) -> JSON:
    """A conversation object as `conversations.info`/`list` return it; `viewer` sets `is_member`."""
    viewer = viewer or ws.bot.user_id
    if channel.is_im:
        return {
            "id": channel.id,
            "created": channel.created,
            "is_archived": False,
            "is_im": True,
            "is_org_shared": False,
            "context_team_id": ws.team_id,
            "updated": channel.created * 1000,
            "user": channel.im_user,
            "is_user_deleted": False,
            "priority": 0,
        }
    empty_topic = {"value": "", "creator": "", "last_set": 0}
    return {
        "id": channel.id,
        "name": channel.name,
        "is_channel": not channel.is_private,
        "is_group": channel.is_private,
        "is_im": False,
        "is_mpim": False,
        "is_private": channel.is_private,
        "created": channel.created,
        "is_archived": False,
        "is_general": channel.is_general,
        "unlinked": 0,
        "name_normalized": channel.name,
        "is_shared": False,
        "is_org_shared": False,
        "is_pending_ext_shared": False,
        "pending_shared": [],
        "context_team_id": ws.team_id,
        "updated": channel.created * 1000,
        "parent_conversation": None,
        "creator": "",
        "is_ext_shared": False,
        "shared_team_ids": [ws.team_id],
        "pending_connected_team_ids": [],
        "is_member": viewer in channel.members,
        "topic": {**empty_topic, "value": channel.topic},
        "purpose": {**empty_topic, "value": channel.purpose},
        "previous_names": [],
        "num_members": len(channel.members),
    }


def bot_profile(ws: Workspace) -> JSON:
    return {
        "id": ws.bot.bot_id,
        "deleted": False,
        "name": ws.bot.real_name,
        "updated": 0,
        "app_id": ws.bot.app_id,
        "icons": {},
        "team_id": ws.team_id,
    }


def message_json(ws: Workspace, message: Message) -> JSON:
    """A message as `conversations.history`, `chat.postMessage` and events show it."""
    body: JSON = {"type": "message"}
    if message.subtype:
        body["subtype"] = message.subtype
    body["text"] = message.text
    if message.user:
        body["user"] = message.user
    if message.bot_id:
        body["bot_id"] = message.bot_id
        body["app_id"] = message.app_id
        body["bot_profile"] = bot_profile(ws)
    body["ts"] = message.ts
    body["team"] = ws.team_id
    if message.blocks:
        body["blocks"] = message.blocks
    if message.client_msg_id:
        body["client_msg_id"] = message.client_msg_id
    if message.metadata:
        body["metadata"] = message.metadata
    if message.edited:
        body["edited"] = dict(message.edited)
    if message.thread_ts:
        body["thread_ts"] = message.thread_ts
        if message.is_reply:
            parent = ws.message(message.channel, message.thread_ts)
            if parent is not None and parent.user:
                body["parent_user_id"] = parent.user
        else:
            replies = ws.replies(message.channel, message.ts)
            users = list(dict.fromkeys(r.user for r in replies if r.user))
            body["reply_count"] = len(replies)
            body["reply_users_count"] = len(users)
            body["reply_users"] = users
            if replies:
                body["latest_reply"] = replies[-1].ts
            body["is_locked"] = False
            body["subscribed"] = False
    if message.reactions:
        body["reactions"] = [
            {"name": name, "users": list(users), "count": len(users)}
            for name, users in message.reactions.items()
        ]
    return body


def view_json(ws: Workspace, home: HomeView) -> JSON:
    view = home.view
    return {
        "id": home.id,
        "team_id": ws.team_id,
        "type": view.get("type", "home"),
        "blocks": view.get("blocks", []),
        "private_metadata": view.get("private_metadata", ""),
        "callback_id": view.get("callback_id", ""),
        "state": {"values": {}},
        "hash": home.hash,
        "title": view.get("title", {"type": "plain_text", "text": "View Title", "emoji": True}),
        "clear_on_close": False,
        "notify_on_close": False,
        "close": view.get("close"),
        "submit": view.get("submit"),
        "previous_view_id": None,
        "root_view_id": home.id,
        "app_id": ws.bot.app_id,
        "external_id": view.get("external_id", ""),
        "app_installed_team_id": ws.team_id,
        "bot_id": ws.bot.bot_id,
    }


def state_json(ws: Workspace) -> JSON:
    """The whole workspace for `GET /local/api/state`: Slack's shapes plus threads nested."""

    def with_replies(message: Message) -> JSON:
        body = message_json(ws, message)
        body["replies"] = [message_json(ws, r) for r in ws.replies(message.channel, message.ts)]
        return body

    channels: list[JSON] = []
    for channel in ws.channels.values():
        top = ws.top_level(channel.id)
        top_ts = {m.ts for m in top}
        orphans = [
            message_json(ws, m) for m in ws.messages.get(channel.id, [])
            if m.is_reply and m.thread_ts not in top_ts
        ]
        channels.append({
            "id": channel.id,
            "name": channel.name,
            "is_private": channel.is_private,
            "is_im": channel.is_im,
            "im_user": channel.im_user,
            "topic": channel.topic,
            "purpose": channel.purpose,
            "members": list(channel.members),
            "messages": [with_replies(m) for m in top],
            "orphan_replies": orphans,
        })
    ephemerals: dict[str, list[JSON]] = {}
    for e in ws.ephemerals:
        entry: dict[str, Any] = {
            "channel": e.channel, "ts": e.ts, "text": e.text, "sender": e.sender,
        }
        if e.blocks:
            entry["blocks"] = e.blocks
        if e.thread_ts:
            entry["thread_ts"] = e.thread_ts
        ephemerals.setdefault(e.user, []).append(entry)
    return {
        "version": ws.version,
        "team": {"id": ws.team_id, "name": ws.team_name, "domain": ws.team_domain},
        "bot": {
            "user_id": ws.bot.user_id,
            "bot_id": ws.bot.bot_id,
            "app_id": ws.bot.app_id,
            "name": ws.bot.name,
            "real_name": ws.bot.real_name,
        },
        "users": [
            {
                "id": u.id, "name": u.name, "real_name": u.real_name, "title": u.title,
                "note": u.note, "is_bot": u.is_bot,
            }
            for u in ws.users.values()
        ],
        "usergroups": [
            {"id": g.id, "handle": g.handle, "name": g.name, "users": list(g.users)}
            for g in ws.groups.values()
        ],
        "channels": channels,
        "ephemerals": ephemerals,
        "home": {user: view_json(ws, home) for user, home in ws.home.items()},
    }
