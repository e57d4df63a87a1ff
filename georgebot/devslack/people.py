"""Acting as people: what a person does in the Slack client, for tests and the web page.

`People` posts messages (turning `@george` into a mention and `/george …` into a slash
command, as the Slack client does), adds and removes reactions, runs slash commands, opens the
App Home and clicks buttons; each action changes the `Workspace` and delivers the events Slack
would. `routes()` exposes the same actions under `/local/api/`, to the page (`Guard` checks).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from georgebot.devslack.events import EventSource, block_actions_payload, slash_payload
from georgebot.devslack.responses import ResponseRejected, ResponseUrls
from georgebot.devslack.shapes import message_json, view_json
from georgebot.devslack.socket import Delivery, SocketHub
from georgebot.devslack.state import JSON, Channel, Message, Workspace
from georgebot.devslack.views import Modals, ViewError

DEFAULT_COMMANDS = frozenset({"/george"})

_CONTROL = re.compile(r"<(?:[@#!][^<>\s]+|https?://[^<>\s]+|mailto:[^<>\s]+)>")
_MENTION = re.compile(r"(?<![\w@/<])@([A-Za-z0-9][A-Za-z0-9._-]*)")
_CHANNEL = re.compile(r"(?<![\w&<#/])#([a-z0-9][a-z0-9_-]*)")
_SPECIAL = {"here", "channel", "everyone"}


class ActionError(Exception):
    """A person's action that cannot happen (unknown user, channel, message or button)."""

    def __init__(self, error: str, status: int = 400) -> None:
        super().__init__(error)
        self.error = error
        self.status = status


@dataclass
class SlashCommand:
    """One slash command a person ran; `delivery` is None when it never reached the app."""

    payload: JSON
    response_url: str
    delivery: Delivery | None


class People:
    def __init__(
        self,
        ws: Workspace,
        *,
        events: EventSource,
        hub: SocketHub,
        responses: ResponseUrls,
        commands: Iterable[str] = DEFAULT_COMMANDS,
        modals: Modals | None = None,
    ) -> None:
        self.ws = ws
        self.modals = modals or Modals(ws, hub)
        self.events = events
        self.hub = hub
        self.responses = responses
        self.commands = frozenset(commands)

    # -- lookups -------------------------------------------------------------------------

    def _person(self, user_id: str) -> str:
        user = self.ws.user(user_id) or self.ws.user_by_name(user_id.removeprefix("@"))
        if user is None or user.is_bot:
            raise ActionError("user_not_found")
        return user.id

    def _channel(self, ref: str, user: str) -> Channel:
        channel = self.ws.resolve_channel(ref)
        if channel is None:
            raise ActionError("channel_not_found")
        if user not in channel.members:
            raise ActionError("not_in_channel")
        return channel

    def _message(self, channel: Channel, ts: str) -> Message:
        message = self.ws.message(channel.id, ts)
        if message is None:
            raise ActionError("message_not_found")
        return message

    # -- the client's text handling ------------------------------------------------------

    def format_text(self, text: str) -> str:
        """What the Slack client sends for typed text: mentions and channels encoded."""
        kept: list[str] = []

        def keep(match: re.Match[str]) -> str:
            kept.append(match.group(0))
            return f"\x00{len(kept) - 1}\x00"

        text = _CONTROL.sub(keep, text)
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

        def mention(match: re.Match[str]) -> str:
            name = match.group(1).rstrip("._-")
            rest = match.group(1)[len(name):]
            if name.lower() in _SPECIAL:
                return f"<!{name.lower()}>{rest}"
            user = self.ws.user_by_name(name)
            if user is not None:
                return f"<@{user.id}>{rest}"
            group = self.ws.group_by_handle(name)
            if group is not None:
                return f"<!subteam^{group.id}>{rest}"
            return match.group(0)

        def channel(match: re.Match[str]) -> str:
            found = self.ws.channel_by_name(match.group(1))
            return f"<#{found.id}|{found.name}>" if found else match.group(0)

        text = _CHANNEL.sub(channel, _MENTION.sub(mention, text))
        return re.sub("\x00(\\d+)\x00", lambda m: kept[int(m.group(1))], text)

    # -- actions -------------------------------------------------------------------------

    def post_as(
        self, user: str, channel: str, text: str, *, thread_ts: str | None = None
    ) -> Message | SlashCommand:
        """Posts `text` as `user`; text starting with `/` runs that slash command instead."""
        user = self._person(user)
        target = self._channel(channel, user)
        if text.lstrip().startswith("/"):
            command, _, rest = text.strip().partition(" ")
            return self.slash(user, target.id, command, rest.strip())
        if not text.strip():
            raise ActionError("no_text")
        if thread_ts is not None:
            parent = self._message(target, thread_ts)
            thread_ts = parent.thread_ts if parent.is_reply else parent.ts
        message = self.ws.add_message(
            target, text=self.format_text(text), user=user, thread_ts=thread_ts,
            client_msg_id=str(uuid.uuid4()),
        )
        self.events.message_posted(message)
        return message

    def react(self, user: str, channel: str, ts: str, name: str, *, remove: bool = False) -> bool:
        """Adds (or removes) `user`'s reaction; False when there was nothing to change."""
        user = self._person(user)
        target = self._channel(channel, user)
        message = self._message(target, ts)
        name = name.strip(":")
        if not name:
            raise ActionError("invalid_name")
        if remove:
            changed = self.ws.remove_reaction(message, name, user)
        else:
            changed = self.ws.add_reaction(message, name, user)
        if changed:
            self.events.reaction(message, name, user, added=not remove)
        return changed

    def slash(self, user: str, channel: str, command: str, text: str = "") -> SlashCommand:
        user = self._person(user)
        target = self._channel(channel, user)
        command = command if command.startswith("/") else f"/{command}"
        url = self.responses.issue(user=user, channel=target.id)
        payload = self.modals.issued(slash_payload(
            self.ws, user=user, channel=target, command=command, text=text, response_url=url,
        ))
        if command not in self.commands:
            self._slackbot(target, user, f"`{command}` is not a valid command. In Slack, all "
                           "messages that start with the \"/\" character are interpreted as "
                           "commands.")
            return SlashCommand(payload, url, None)
        if self.hub.connections == 0:
            self._slackbot(target, user, f'{command} failed with the error "dispatch_failed"')
            return SlashCommand(payload, url, None)
        response = self.responses.target_of(url)

        def on_ack(body: JSON | None) -> None:
            if body and response is not None:
                try:
                    self.responses.apply(response, body)
                except ResponseRejected as e:
                    self._slackbot(target, user, f'{command} failed with the error "{e.error}"')

        def on_timeout() -> None:
            self._slackbot(target, user, f'{command} failed with the error "operation_timeout"')

        delivery = self.hub.deliver(
            "slash_commands", payload, accepts_response_payload=True,
            on_ack=on_ack, on_timeout=on_timeout,
        )
        return SlashCommand(payload, url, delivery)

    def open_home(self, user: str) -> None:
        user = self._person(user)
        home = self.ws.home.get(user)
        self.events.app_home_opened(user, view_json(self.ws, home) if home else None)

    def click(
        self,
        user: str,
        action_id: str,
        *,
        channel: str | None = None,
        ts: str | None = None,
        block_id: str | None = None,
    ) -> Delivery | None:
        """Clicks the button `action_id` on a message (`channel`, `ts`) or in the App Home."""
        user = self._person(user)
        message: Message | None = None
        home_view: JSON | None = None
        if channel is not None and ts is not None:
            target = self._channel(channel, user)
            message = self._message(target, ts)
            blocks = message.blocks or []
        else:
            home = self.ws.home.get(user)
            if home is None:
                raise ActionError("view_not_found")
            home_view = view_json(self.ws, home)
            blocks = home_view["blocks"]
        found = _find_action(blocks, action_id, block_id)
        if found is None:
            raise ActionError("action_not_found")
        action, found_block_id = found
        response_url = None
        if message is not None:
            response_url = self.responses.issue(
                user=user, channel=message.channel, message_ts=message.ts
            )
        payload = self.modals.issued(block_actions_payload(
            self.ws, user=user, action=action, block_id=found_block_id, message=message,
            home_view=home_view, response_url=response_url,
        ))
        if self.hub.connections == 0:
            return None
        return self.hub.deliver("interactive", payload)

    def submit_view(self, user: str, view_id: str, values: dict[str, dict[str, str]]) -> Delivery | None:
        """Presses the submit button of the person's open modal with `values` typed in."""
        try:
            return self.modals.submit(self._person(user), view_id, values)
        except ViewError as e:
            raise ActionError(e.error) from e

    def close_view(self, user: str, view_id: str) -> None:
        try:
            self.modals.close(self._person(user), view_id)
        except ViewError as e:
            raise ActionError(e.error) from e

    def _slackbot(self, channel: Channel, user: str, text: str) -> None:
        self.ws.add_ephemeral(channel, user, text=text, sender="slackbot")

    # -- HTTP ----------------------------------------------------------------------------

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.post("/local/api/messages", self._http_message),
            web.post("/local/api/reactions", self._http_reaction),
            web.post("/local/api/commands", self._http_command),
            web.post("/local/api/app_home_opened", self._http_home),
            web.post("/local/api/actions", self._http_action),
            web.post("/local/api/views/submit", self._http_view_submit),
            web.post("/local/api/views/close", self._http_view_close),
        ]

    async def _http_message(self, request: web.Request) -> web.Response:
        async def act(body: _Body) -> JSON:
            result = self.post_as(
                body.required("user"), body.required("channel"), body.required("text"),
                thread_ts=body.optional("thread_ts"),
            )
            if isinstance(result, SlashCommand):
                return {"command": result.payload["command"], "text": result.payload["text"],
                        "delivered": result.delivery is not None}
            return {"channel": result.channel, "ts": result.ts,
                    "message": message_json(self.ws, result)}
        return await _answer(request, act)

    async def _http_reaction(self, request: web.Request) -> web.Response:
        async def act(body: _Body) -> JSON:
            changed = self.react(
                body.required("user"), body.required("channel"), body.required("ts"),
                body.required("name"), remove=body.flag("remove"),
            )
            return {"changed": changed}
        return await _answer(request, act)

    async def _http_command(self, request: web.Request) -> web.Response:
        async def act(body: _Body) -> JSON:
            result = self.slash(
                body.required("user"), body.required("channel"), body.required("command"),
                body.optional("text") or "",
            )
            return {"delivered": result.delivery is not None}
        return await _answer(request, act)

    async def _http_home(self, request: web.Request) -> web.Response:
        async def act(body: _Body) -> JSON:
            self.open_home(body.required("user"))
            return {}
        return await _answer(request, act)

    async def _http_action(self, request: web.Request) -> web.Response:
        async def act(body: _Body) -> JSON:
            delivery = self.click(
                body.required("user"), body.required("action_id"),
                channel=body.optional("channel"), ts=body.optional("ts"),
                block_id=body.optional("block_id"),
            )
            return {"delivered": delivery is not None}
        return await _answer(request, act)


    async def _http_view_submit(self, request: web.Request) -> web.Response:
        async def act(body: _Body) -> JSON:
            raw = body.data.get("values") or {}
            if not isinstance(raw, dict):
                raise ActionError("invalid_values")
            values = {str(b): {str(a): str(v) for a, v in inputs.items()}
                      for b, inputs in raw.items() if isinstance(inputs, dict)}
            delivery = self.submit_view(body.required("user"), body.required("view_id"), values)
            return {"delivered": delivery is not None}
        return await _answer(request, act)

    async def _http_view_close(self, request: web.Request) -> web.Response:
        async def act(body: _Body) -> JSON:
            self.close_view(body.required("user"), body.required("view_id"))
            return {}
        return await _answer(request, act)


def _find_action(
    blocks: list[JSON], action_id: str, block_id: str | None
) -> tuple[JSON, str] | None:
    for block in blocks:
        if block_id is not None and block.get("block_id") != block_id:
            continue
        candidates: list[Any] = []
        if block.get("type") == "actions":
            candidates = list(block.get("elements") or [])
        elif isinstance(block.get("accessory"), dict):
            candidates = [block["accessory"]]
        for element in candidates:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return element, str(block.get("block_id", ""))
    return None


class _Body:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def optional(self, name: str) -> str | None:
        value = self.data.get(name)
        return None if value is None or value == "" else str(value)

    def required(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            raise ActionError(f"missing_{name}")
        return value

    def flag(self, name: str) -> bool:
        value = self.data.get(name)
        return value is True or str(value).lower() in ("1", "true", "yes")


async def _answer(
    request: web.Request, act: Callable[[_Body], Awaitable[JSON]]
) -> web.Response:
    # JSON only (`Guard` refuses anything else): a form can be posted from any web page.
    try:
        data = await request.json()
    except json.JSONDecodeError:
        return web.json_response({"ok": False, "error": "invalid_json"}, status=400)
    if not isinstance(data, dict):
        return web.json_response({"ok": False, "error": "invalid_json"}, status=400)
    try:
        result = await act(_Body(data))
    except ActionError as e:
        return web.json_response({"ok": False, "error": e.error}, status=e.status)
    return web.json_response({"ok": True, **result})
