"""The Web API at `/api/<method>`: the methods George calls, answered as Slack answers them.

`WebApi.handle` reads arguments from the query, a form or a JSON body, checks the token (this
start's bot token, or its app token for `apps.connections.open`), applies injected 429s and
calls one method function. Each method checks its arguments the way Slack does (an absent required
argument is `invalid_arguments`; one that names nothing is `channel_not_found`,
`message_not_found`, ...), mutates the `Workspace` and has the `EventSource` tell the app.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from georgebot.devslack.blocks import (
    MAX_TEXT_CHARS,
    BlocksFormatError,
    check_blocks,
    parse_blocks,
)
from georgebot.devslack.events import EventSource
from georgebot.devslack.faults import Faults
from georgebot.devslack.shapes import (
    channel_json,
    group_json,
    message_json,
    user_json,
    view_json,
)
from georgebot.devslack.socket import SocketHub
from georgebot.devslack.state import JSON, Channel, Message, Workspace, ts_key
from georgebot.devslack.views import Modals, ViewError

log = logging.getLogger(__name__)

_APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
_CHANNEL_TYPES = frozenset({"public_channel", "private_channel", "mpim", "im"})
MAX_CHANNEL_NAME = 80
_CHANNEL_NAME = re.compile(r"[a-z0-9_-]+")


class ApiError(Exception):
    """A Slack error answer: `{"ok": false, "error": error}` plus any `response_metadata`."""

    def __init__(self, error: str, *messages: str) -> None:
        super().__init__(error)
        self.error = error
        self.messages = list(messages)

    def body(self) -> JSON:
        body: JSON = {"ok": False, "error": self.error}
        if self.messages:
            body["response_metadata"] = {"messages": self.messages}
        return body


def _missing(name: str) -> ApiError:
    return ApiError("invalid_arguments", f"[ERROR] missing required field: {name}")


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    token: str

    def text(self, name: str) -> str | None:
        value = self.args.get(name)
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float | str):
            return str(value)
        return json.dumps(value)

    def required(self, name: str) -> str:
        value = self.text(name)
        if value is None:
            raise _missing(name)
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.args.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        return str(value).lower() in ("1", "true", "yes")

    def number(self, name: str, default: int) -> int:
        value = self.text(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError as e:
            raise ApiError("invalid_arguments", f"[ERROR] {name} must be a number") from e


@dataclass(frozen=True)
class ApiCall:
    """One Web API call as the local Slack saw it, kept for tests and benchmarks."""

    method: str
    at: float
    status: int
    error: str | None


class WebApi:
    def __init__(
        self,
        ws: Workspace,
        *,
        events: EventSource,
        hub: SocketHub,
        faults: Faults,
        base_url: Callable[[], str],
        bot_token: str,
        app_token: str,
        modals: Modals | None = None,
    ) -> None:
        self.ws = ws
        self.modals = modals or Modals(ws, hub)
        self._bot_token = bot_token
        self._app_token = app_token
        self.events = events
        self.hub = hub
        self.faults = faults
        self._base_url = base_url
        self.calls: deque[ApiCall] = deque(maxlen=10_000)
        self._methods: dict[str, Callable[[Call], JSON]] = {
            "api.test": self.api_test,
            "auth.test": self.auth_test,
            "apps.connections.open": self.apps_connections_open,
            "chat.postMessage": self.chat_post_message,
            "chat.update": self.chat_update,
            "chat.delete": self.chat_delete,
            "chat.postEphemeral": self.chat_post_ephemeral,
            "chat.getPermalink": self.chat_get_permalink,
            "reactions.add": self.reactions_add,
            "reactions.remove": self.reactions_remove,
            "reactions.get": self.reactions_get,
            "conversations.history": self.conversations_history,
            "conversations.replies": self.conversations_replies,
            "conversations.list": self.conversations_list,
            "conversations.info": self.conversations_info,
            "conversations.create": self.conversations_create,
            "conversations.join": self.conversations_join,
            "conversations.members": self.conversations_members,
            "conversations.open": self.conversations_open,
            "users.info": self.users_info,
            "users.lookupByEmail": self.users_lookup_by_email,
            "users.list": self.users_list,
            "usergroups.list": self.usergroups_list,
            "usergroups.users.list": self.usergroups_users_list,
            "views.publish": self.views_publish,
            "views.open": self.views_open,
            "views.update": self.views_update,
        }

    # -- HTTP ----------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        status, headers = 200, {}
        try:
            call = await self._read_call(request, method)
            retry_after = self.faults.take_rate_limit(method)
            if retry_after is not None:
                status, headers = 429, {"Retry-After": str(retry_after)}
                raise ApiError("ratelimited")
            body = self._methods[method](call)
            body = {"ok": True, **body}
        except ApiError as e:
            if e.error == "unknown_method":
                status = 404
            body = e.body()
        except Exception:
            log.exception("%s failed", method)
            status, body = 500, ApiError("internal_error").body()
        self.calls.append(ApiCall(method, self.ws.now(), status, body.get("error")))
        if not body["ok"]:
            log.info("%s answered %s", method, body["error"])
        return web.json_response(body, status=status, headers=headers)

    async def _read_call(self, request: web.Request, method: str) -> Call:
        args: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.body_exists:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except json.JSONDecodeError as e:
                    raise ApiError("invalid_json") from e
                if not isinstance(body, dict):
                    raise ApiError("invalid_json")
                args.update(body)
            elif request.content_type in (
                "application/x-www-form-urlencoded", "multipart/form-data",
            ):
                form = await request.post()
                args.update({k: v for k, v in form.items() if isinstance(v, str)})
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        token = token or str(args.pop("token", "") or "")
        args.pop("token", None)
        if method not in self._methods:
            raise ApiError("unknown_method")
        if not token:
            raise ApiError("not_authed")
        is_bot = hmac.compare_digest(token.encode(), self._bot_token.encode())
        is_app = hmac.compare_digest(token.encode(), self._app_token.encode())
        if not (is_bot or is_app):
            raise ApiError("invalid_auth")
        if is_app != (method in _APP_TOKEN_METHODS):
            raise ApiError("not_allowed_token_type")
        return Call(method, args, token)

    # -- shared checks -------------------------------------------------------------------

    @property
    def _bot(self) -> str:
        return self.ws.bot.user_id

    def _visible(self, channel: Channel | None) -> Channel:
        """A channel the bot can see: every public one, and private ones it is in."""
        if channel is None:
            raise ApiError("channel_not_found")
        if (channel.is_private or channel.is_im) and self._bot not in channel.members:
            raise ApiError("channel_not_found")
        return channel

    def _channel(self, call: Call, name: str = "channel", *, absent: str | None = None) -> Channel:
        """The channel named by ID; `absent` is the error when the argument is missing."""
        ref = call.text(name)
        if ref is None:
            raise ApiError(absent) if absent else _missing(name)
        return self._visible(self.ws.channel(ref))

    def _member(self, channel: Channel) -> Channel:
        if self._bot not in channel.members:
            raise ApiError("not_in_channel")
        return channel

    def _content(
        self, call: Call, *, required: bool = True
    ) -> tuple[str | None, list[JSON] | None]:
        text = call.text("text")
        try:
            blocks = parse_blocks(call.args.get("blocks"))
        except BlocksFormatError as e:
            raise ApiError("invalid_blocks_format", f"[ERROR] {e}") from e
        has_attachments = bool(call.args.get("attachments"))
        if required and not text and not blocks and not has_attachments:
            raise ApiError("no_text")
        if blocks is not None:
            problems = check_blocks(blocks)
            if problems:
                raise ApiError("invalid_blocks", *problems)
        if text is not None and len(text) > MAX_TEXT_CHARS:
            raise ApiError("msg_too_long")
        return text, blocks

    def _message(self, channel: Channel, ts: str) -> Message:
        message = self.ws.message(channel.id, ts)
        if message is None:
            raise ApiError("message_not_found")
        return message

    def _permalink(self, message: Message) -> str:
        link = f"{self._base_url()}/archives/{message.channel}/p{message.ts.replace('.', '')}"
        if message.is_reply:
            link += f"?thread_ts={message.thread_ts}&cid={message.channel}"
        return link

    # -- api, auth, apps -----------------------------------------------------------------

    def api_test(self, call: Call) -> JSON:
        return {"args": dict(call.args)}

    def auth_test(self, call: Call) -> JSON:
        return {
            "url": f"{self._base_url()}/",
            "team": self.ws.team_name,
            "user": self.ws.bot.name,
            "team_id": self.ws.team_id,
            "user_id": self._bot,
            "bot_id": self.ws.bot.bot_id,
            "is_enterprise_install": False,
        }

    def apps_connections_open(self, call: Call) -> JSON:
        ticket = self.hub.issue_ticket()
        base = self._base_url().replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        return {"url": f"{base}/socket?ticket={ticket}&app_id={self.ws.bot.app_id}"}

    # -- chat ----------------------------------------------------------------------------

    def _post_target(self, call: Call) -> Channel:
        ref = call.text("channel")
        if not ref:
            raise ApiError("channel_not_found")
        if ref.startswith(("U", "W")) and ref in self.ws.users:
            return self.ws.im_for(ref)
        return self._member(self._visible(self.ws.resolve_channel(ref)))

    def chat_post_message(self, call: Call) -> JSON:
        channel = self._post_target(call)
        text, blocks = self._content(call)
        thread_ts = call.text("thread_ts") or None
        if thread_ts is not None:
            parent = self.ws.message(channel.id, thread_ts)
            if parent is not None and parent.is_reply:
                thread_ts = parent.thread_ts
        metadata = call.args.get("metadata")
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata)
            except json.JSONDecodeError as e:
                raise ApiError("invalid_metadata_format") from e
        message = self.ws.add_message(
            channel, text=text or "", user=self._bot, blocks=blocks, from_bot=True,
            thread_ts=thread_ts, metadata=metadata if isinstance(metadata, dict) else None,
        )
        self.events.message_posted(message)
        return {"channel": channel.id, "ts": message.ts, "message": message_json(self.ws, message)}

    def chat_update(self, call: Call) -> JSON:
        channel = self._channel(call, absent="channel_not_found")
        message = self._message(channel, call.required("ts"))
        if message.bot_id != self.ws.bot.bot_id:
            raise ApiError("cant_update_message")
        text, blocks = self._content(call)
        previous = self.ws.update_message(message, text=text, blocks=blocks, editor=self._bot)
        self.events.message_changed(message, previous)
        return {
            "channel": channel.id,
            "ts": message.ts,
            "text": message.text,
            "message": message_json(self.ws, message),
        }

    def chat_delete(self, call: Call) -> JSON:
        channel = self._channel(call, absent="channel_not_found")
        message = self._message(channel, call.required("ts"))
        if message.bot_id != self.ws.bot.bot_id:
            raise ApiError("cant_delete_message")
        self.ws.delete_message(message)
        self.events.message_deleted(message)
        return {"channel": channel.id, "ts": message.ts}

    def chat_post_ephemeral(self, call: Call) -> JSON:
        channel = self._post_target(call)
        user_id = call.required("user")
        if user_id not in self.ws.users:
            raise ApiError("user_not_found")
        if user_id not in channel.members:
            raise ApiError("user_not_in_channel")
        text, blocks = self._content(call)
        ephemeral = self.ws.add_ephemeral(
            channel, user_id, text=text or "", blocks=blocks,
            thread_ts=call.text("thread_ts") or None,
        )
        return {"message_ts": ephemeral.ts}

    def chat_get_permalink(self, call: Call) -> JSON:
        channel = self._channel(call)
        message = self._message(channel, call.required("message_ts"))
        return {"channel": channel.id, "permalink": self._permalink(message)}

    # -- reactions -----------------------------------------------------------------------

    def _reaction_item(self, call: Call) -> Message:
        channel_id, ts = call.text("channel"), call.text("timestamp")
        if not channel_id or not ts:
            raise ApiError("no_item_specified")
        channel = self._visible(self.ws.channel(channel_id))
        return self._message(channel, ts)

    def _reaction_name(self, call: Call) -> str:
        name = call.required("name").strip(":")
        base, _, tone = name.partition("::")
        valid_tone = not tone or tone in {f"skin-tone-{n}" for n in range(2, 7)}
        if not base or not valid_tone or not all(c.isalnum() or c in "_+-'" for c in base):
            raise ApiError("invalid_name")
        return name

    def reactions_add(self, call: Call) -> JSON:
        message = self._reaction_item(call)
        name = self._reaction_name(call)
        self._member(self.ws.channels[message.channel])
        if not self.ws.add_reaction(message, name, self._bot):
            raise ApiError("already_reacted")
        self.events.reaction(message, name, self._bot, added=True)
        return {}

    def reactions_remove(self, call: Call) -> JSON:
        message = self._reaction_item(call)
        name = self._reaction_name(call)
        if not self.ws.remove_reaction(message, name, self._bot):
            raise ApiError("no_reaction")
        self.events.reaction(message, name, self._bot, added=False)
        return {}

    def reactions_get(self, call: Call) -> JSON:
        message = self._reaction_item(call)
        body = message_json(self.ws, message)
        body["permalink"] = self._permalink(message)
        return {"type": "message", "channel": message.channel, "message": body}

    # -- conversations -------------------------------------------------------------------

    def _page(self, call: Call, items: list[Any], *, default_limit: int) -> tuple[list[Any], str]:
        limit = call.number("limit", default_limit) or default_limit
        limit = max(1, min(limit, 1000))
        start = 0
        cursor = call.text("cursor")
        if cursor:
            try:
                kind, _, offset = base64.b64decode(cursor).decode().partition(":")
                start = int(offset)
            except (binascii.Error, UnicodeDecodeError, ValueError) as e:
                raise ApiError("invalid_cursor") from e
            if kind != "offset" or start < 0:
                raise ApiError("invalid_cursor")
        page = items[start:start + limit]
        more = start + limit < len(items)
        next_cursor = (
            base64.b64encode(f"offset:{start + limit}".encode()).decode() if more else ""
        )
        return page, next_cursor

    def _window(self, call: Call, messages: list[Message]) -> list[Message]:
        inclusive = call.flag("inclusive")
        oldest, latest = call.text("oldest"), call.text("latest")
        out = []
        for m in messages:
            key = ts_key(m.ts)
            if oldest and (key < ts_key(oldest) or (key == ts_key(oldest) and not inclusive)):
                continue
            if latest and (key > ts_key(latest) or (key == ts_key(latest) and not inclusive)):
                continue
            out.append(m)
        return out

    def conversations_history(self, call: Call) -> JSON:
        channel = self._member(self._channel(call))
        messages = self._window(call, self.ws.top_level(channel.id))[::-1]
        page, next_cursor = self._page(call, messages, default_limit=100)
        return {
            "messages": [message_json(self.ws, m) for m in page],
            "has_more": bool(next_cursor),
            "pin_count": 0,
            "channel_actions_ts": None,
            "channel_actions_count": 0,
            "response_metadata": {"next_cursor": next_cursor},
        }

    def conversations_replies(self, call: Call) -> JSON:
        channel = self._member(self._channel(call))
        ts = call.required("ts")
        message = self.ws.message(channel.id, ts)
        if message is None:
            raise ApiError("thread_not_found")
        parent_ts = message.thread_ts if message.is_reply else message.ts
        parent = self.ws.message(channel.id, parent_ts or ts)
        thread = ([parent] if parent else []) + self.ws.replies(channel.id, parent_ts or ts)
        thread = [thread[0], *self._window(call, thread[1:])] if thread else thread
        page, next_cursor = self._page(call, thread, default_limit=1000)
        return {
            "messages": [message_json(self.ws, m) for m in page],
            "has_more": bool(next_cursor),
            "response_metadata": {"next_cursor": next_cursor},
        }

    def conversations_list(self, call: Call) -> JSON:
        asked = (call.text("types") or "public_channel").split(",")
        types = {t.strip() for t in asked if t.strip()}
        if not types or not types <= _CHANNEL_TYPES:
            raise ApiError("invalid_types")
        channels = []
        for channel in self.ws.channels.values():
            if channel.is_im:
                wanted = "im" in types and self._bot in channel.members
            elif channel.is_private:
                wanted = "private_channel" in types and self._bot in channel.members
            else:
                wanted = "public_channel" in types
            if wanted:
                channels.append(channel)
        page, next_cursor = self._page(call, channels, default_limit=100)
        return {
            "channels": [channel_json(self.ws, c) for c in page],
            "response_metadata": {"next_cursor": next_cursor},
        }

    def conversations_info(self, call: Call) -> JSON:
        channel = self._channel(call)
        return {"channel": channel_json(self.ws, channel)}

    def conversations_create(self, call: Call) -> JSON:
        """Slack's rules for the name: required, at most 80 characters of lowercase letters,
        digits, `-` and `_`, not all punctuation, and not an existing channel's."""
        name = call.text("name") or ""
        if not name.strip():
            raise ApiError("invalid_name_required")
        if len(name) > MAX_CHANNEL_NAME:
            raise ApiError("invalid_name_maxlength")
        if not _CHANNEL_NAME.fullmatch(name):
            raise ApiError("invalid_name_specials")
        if not any(c.isalnum() for c in name):
            raise ApiError("invalid_name_punctuation")
        if self.ws.channel_by_name(name) is not None:
            raise ApiError("name_taken")
        channel = self.ws.create_channel(name, self._bot, is_private=call.flag("is_private"))
        return {"channel": channel_json(self.ws, channel)}

    def conversations_join(self, call: Call) -> JSON:
        channel = self._channel(call)
        if channel.is_private or channel.is_im:
            raise ApiError("method_not_supported_for_channel_type")
        if not self.ws.join(channel, self._bot):
            return {
                "channel": channel_json(self.ws, channel),
                "warning": "already_in_channel",
                "response_metadata": {"warnings": ["already_in_channel"]},
            }
        joined = self.ws.add_message(
            channel, text=f"<@{self._bot}> has joined the channel", user=self._bot,
            subtype="channel_join",
        )
        self.events.message_posted(joined)
        self.events.member_joined(channel, self._bot)
        return {"channel": channel_json(self.ws, channel)}

    def conversations_members(self, call: Call) -> JSON:
        channel = self._channel(call)
        page, next_cursor = self._page(call, list(channel.members), default_limit=100)
        return {"members": page, "response_metadata": {"next_cursor": next_cursor}}

    def conversations_open(self, call: Call) -> JSON:
        channel_id = call.text("channel")
        if channel_id:
            channel = self._channel(call)
        else:
            users = [u for u in (call.required("users")).split(",") if u]
            if len(users) != 1:
                raise ApiError("not_supported", "[ERROR] only one-person conversations here")
            if users[0] not in self.ws.users:
                raise ApiError("user_not_found")
            channel = self.ws.im_for(users[0])
        if call.flag("return_im"):
            return {"channel": channel_json(self.ws, channel)}
        return {"no_op": True, "already_open": True, "channel": {"id": channel.id}}

    # -- users and groups ----------------------------------------------------------------

    def users_info(self, call: Call) -> JSON:
        user = self.ws.user(call.required("user"))
        if user is None:
            raise ApiError("user_not_found")
        return {"user": user_json(self.ws, user)}

    def users_lookup_by_email(self, call: Call) -> JSON:
        wanted = call.required("email").strip().lower()
        for user in self.ws.users.values():
            if str(user_json(self.ws, user)["profile"].get("email", "")).lower() == wanted:
                return {"user": user_json(self.ws, user)}
        raise ApiError("users_not_found")

    def users_list(self, call: Call) -> JSON:
        page, next_cursor = self._page(call, list(self.ws.users.values()), default_limit=1000)
        return {
            "members": [user_json(self.ws, u) for u in page],
            "cache_ts": int(self.ws.now()),
            "response_metadata": {"next_cursor": next_cursor},
        }

    def usergroups_list(self, call: Call) -> JSON:
        include_users = call.flag("include_users")
        return {
            "usergroups": [
                group_json(self.ws, g, include_users=include_users) for g in self.ws.groups.values()
            ]
        }

    def usergroups_users_list(self, call: Call) -> JSON:
        group = self.ws.groups.get(call.required("usergroup"))
        if group is None:
            raise ApiError("no_such_subteam")
        return {"users": list(group.users)}

    # -- views ---------------------------------------------------------------------------

    def views_publish(self, call: Call) -> JSON:
        user_id = call.required("user_id")
        raw = call.args.get("view")
        if raw is None:
            raise _missing("view")
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError as e:
                raise ApiError("invalid_arguments", "[ERROR] failed to parse view") from e
        if not isinstance(raw, dict):
            raise ApiError("invalid_arguments", "[ERROR] view must be an object")
        if raw.get("type") != "home":
            raise ApiError(
                "invalid_arguments", "[ERROR] must be home [json-pointer:/view/type]"
            )
        try:
            blocks = parse_blocks(raw.get("blocks")) or []
        except BlocksFormatError as e:
            raise ApiError("invalid_arguments", f"[ERROR] {e} [json-pointer:/view/blocks]") from e
        problems = check_blocks(blocks, surface="home")
        if problems:
            raise ApiError("invalid_arguments", *(p.replace("[json-pointer:", "[json-pointer:/view")
                                                  for p in problems))
        if user_id not in self.ws.users:
            raise ApiError("user_not_found")
        current = self.ws.home.get(user_id)
        given_hash = call.text("hash")
        if given_hash and current is not None and given_hash != current.hash:
            raise ApiError("hash_conflict")
        home = self.ws.publish_home(user_id, {**raw, "blocks": blocks})
        return {"view": view_json(self.ws, home)}

    def views_open(self, call: Call) -> JSON:
        if call.args.get("view") is None:
            raise _missing("view")
        try:
            return self.modals.open(call.text("trigger_id"), call.args["view"])
        except ViewError as e:
            raise ApiError(e.error, *e.messages) from e

    def views_update(self, call: Call) -> JSON:
        if call.args.get("view") is None:
            raise _missing("view")
        try:
            return self.modals.update(call.text("view_id"), call.text("external_id"),
                                      call.args["view"], call.text("hash"))
        except ViewError as e:
            raise ApiError(e.error, *e.messages) from e
