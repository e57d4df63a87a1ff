"""Modals: what `views.open` and `views.update` accept, checked as Slack checks them (a modal,
a title of at most 24 characters, blocks, a callback_id, a fresh trigger_id), and what becomes
of a modal a person submits: a `view_submission` with `view.state.values` goes to the app, and
its ack decides — empty closes the modal, `response_action: errors` shows the errors in it,
`update` replaces it, `clear` closes it. `WebApi` opens and updates; `People` submits and
closes; the page draws the open modal from `state_json`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from georgebot.devslack.blocks import BlocksFormatError, check_blocks, check_text, parse_blocks
from georgebot.devslack.events import VERIFICATION_TOKEN
from georgebot.devslack.socket import Delivery, SocketHub
from georgebot.devslack.state import JSON, Workspace

TRIGGER_SECONDS = 3.0
"""How long a trigger_id can open a modal after the click or command that made it."""
TITLE_CHARS = 24
REQUIRED = "Please complete this required field."


class ViewError(Exception):
    """A Web API error about a view: the error code and Slack's `[ERROR] …` messages."""

    def __init__(self, error: str, *messages: str) -> None:
        super().__init__(error)
        self.error = error
        self.messages = messages


@dataclass
class Modal:
    id: str
    user: str
    view: JSON
    hash: str
    values: dict[str, dict[str, JSON]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    submitting: bool = False


class Modals:
    def __init__(self, ws: Workspace, hub: SocketHub) -> None:
        self.ws = ws
        self.hub = hub
        self.open_modals: dict[str, Modal] = {}  # user -> the modal on their screen
        self._triggers: dict[str, tuple[str, float]] = {}  # trigger_id -> (user, made at)

    # -- the Web API ---------------------------------------------------------------------

    def issued(self, payload: JSON) -> JSON:
        """A payload with a trigger_id (a click, a slash command) was sent: it may open one
        modal, for its person, within `TRIGGER_SECONDS`."""
        user = payload.get("user", {}).get("id") if isinstance(payload.get("user"), dict) \
            else payload.get("user_id")
        if payload.get("trigger_id") and user:
            self._forget_old_triggers()
            self._triggers[str(payload["trigger_id"])] = (str(user), self.ws.now())
        return payload

    def open(self, trigger_id: str | None, raw: Any) -> JSON:
        if not trigger_id:
            raise ViewError("invalid_arguments", "[ERROR] missing required field: trigger_id")
        found = self._triggers.get(trigger_id)
        if found is None:
            raise ViewError("invalid_trigger_id")
        user, made_at = found
        if self.ws.now() - made_at > TRIGGER_SECONDS:
            raise ViewError("expired_trigger_id")
        view = checked(raw)
        del self._triggers[trigger_id]  # a trigger opens one modal
        self._forget_old_triggers()
        modal = Modal(self.ws.next_id("V"), user, view, _hash(view))
        self.open_modals[user] = modal
        self.ws.changed()
        return {"view": self.json(modal)}

    def _forget_old_triggers(self) -> None:
        now = self.ws.now()
        for trigger, (_, made_at) in list(self._triggers.items()):
            if now - made_at > TRIGGER_SECONDS:
                del self._triggers[trigger]

    def update(self, view_id: str | None, external_id: str | None, raw: Any,
               given_hash: str | None) -> JSON:
        modal = next((m for m in self.open_modals.values() if m.id == view_id or (
            external_id and m.view.get("external_id") == external_id)), None)
        if modal is None:
            raise ViewError("not_found")
        if given_hash and given_hash != modal.hash:
            raise ViewError("hash_conflict")
        self._replace(modal, checked(raw))
        return {"view": self.json(modal)}

    # -- a person ------------------------------------------------------------------------

    def submit(self, user: str, view_id: str, values: dict[str, dict[str, str]]) -> Delivery | None:
        """The person pressed the modal's submit button with `values` typed in (block id →
        action id → text). A required input left empty is refused in the modal, as the Slack
        client does; else the app gets a `view_submission`."""
        modal = self._mine(user, view_id)
        modal.values = {
            block_id: {action_id: _state(_element(modal.view, block_id), text)
                       for action_id, text in inputs.items()}
            for block_id, inputs in values.items()
        }
        missing = {
            b["block_id"]: REQUIRED for b in modal.view.get("blocks", [])
            if b.get("type") == "input" and not b.get("optional") and b.get("block_id")
            and not any(_given(v) for v in modal.values.get(b["block_id"], {}).values())
        }
        modal.errors = missing
        if missing or self.hub.connections == 0:
            self.ws.changed()
            return None
        modal.submitting = True
        self.ws.changed()
        person = self.ws.users[user]
        payload: JSON = {
            "type": "view_submission",
            "team": {"id": self.ws.team_id, "domain": self.ws.team_domain},
            "user": {"id": user, "username": person.name, "name": person.name,
                     "team_id": self.ws.team_id},
            "api_app_id": self.ws.bot.app_id,
            "token": VERIFICATION_TOKEN,
            "trigger_id": f"{self.ws.next_id('T')}.{self.ws.team_id}",
            "view": self.json(modal),
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
        self.issued(payload)
        return self.hub.deliver(
            "interactive", payload, accepts_response_payload=True,
            on_ack=lambda body: self._answered(modal, body),
            on_timeout=lambda: self._not_answered(modal),
        )

    def close(self, user: str, view_id: str) -> None:
        self._mine(user, view_id)
        del self.open_modals[user]
        self.ws.changed()

    def _answered(self, modal: Modal, body: JSON | None) -> None:
        modal.submitting = False
        action = (body or {}).get("response_action")
        if action == "errors":
            errors = (body or {}).get("errors")
            modal.errors = {str(k): str(v) for k, v in errors.items()} if isinstance(errors, dict) else {}
        elif action == "update" and isinstance((body or {}).get("view"), dict):
            try:
                self._replace(modal, checked((body or {})["view"]))
            except ViewError as e:
                modal.errors = {"": f"{e.error} {' '.join(e.messages)}".strip()}
        elif self.open_modals.get(modal.user) is modal:  # empty, `clear`, or `push` (not drawn)
            del self.open_modals[modal.user]
        self.ws.changed()

    def _not_answered(self, modal: Modal) -> None:
        modal.submitting = False
        modal.errors = {"": "We had some trouble connecting. Try again?"}  # what Slack shows
        self.ws.changed()

    def _mine(self, user: str, view_id: str) -> Modal:
        modal = self.open_modals.get(user)
        if modal is None or modal.id != view_id:
            raise ViewError("view_not_found")
        return modal

    def _replace(self, modal: Modal, view: JSON) -> None:
        modal.view, modal.hash, modal.errors = view, _hash(view), {}
        self.ws.changed()

    # -- shapes --------------------------------------------------------------------------

    def json(self, modal: Modal) -> JSON:
        view = modal.view
        return {
            "id": modal.id,
            "team_id": self.ws.team_id,
            "type": "modal",
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": modal.values},
            "hash": modal.hash,
            "title": view.get("title"),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": None,
            "root_view_id": modal.id,
            "app_id": self.ws.bot.app_id,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": self.ws.team_id,
            "bot_id": self.ws.bot.bot_id,
        }

    def state(self) -> dict[str, JSON]:
        """The open modals for the page, with the errors the app answered."""
        return {user: {**self.json(m), "errors": m.errors, "submitting": m.submitting}
                for user, m in self.open_modals.items()}


def checked(raw: Any) -> JSON:
    """A view argument as Slack accepts it for a modal, or the `ViewError` it answers."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ViewError("invalid_arguments", "[ERROR] failed to parse view") from e
    if not isinstance(raw, dict):
        raise ViewError("invalid_arguments", "[ERROR] view must be an object")
    problems: list[str] = []
    if raw.get("type") != "modal":
        problems.append("[ERROR] must be modal [json-pointer:/view/type]")
    problems += check_text(raw.get("title"), "/view/title", limit=TITLE_CHARS, plain_only=True)
    for button in ("submit", "close"):
        if raw.get(button) is not None:
            problems += check_text(raw[button], f"/view/{button}", limit=TITLE_CHARS, plain_only=True)
    callback = raw.get("callback_id")
    if callback is not None and (not isinstance(callback, str) or len(callback) > 255):
        problems.append("[ERROR] must be less than 256 characters [json-pointer:/view/callback_id]")
    metadata = raw.get("private_metadata")
    if metadata is not None and (not isinstance(metadata, str) or len(metadata) > 3000):
        problems.append("[ERROR] must be less than 3001 characters [json-pointer:/view/private_metadata]")
    try:
        blocks = parse_blocks(raw.get("blocks"))
    except BlocksFormatError as e:
        raise ViewError("invalid_arguments", f"[ERROR] {e} [json-pointer:/view/blocks]") from e
    if blocks is None:
        problems.append("[ERROR] missing required field: blocks [json-pointer:/view]")
        blocks = []
    problems += [p.replace("[json-pointer:", "[json-pointer:/view")
                 for p in check_blocks(blocks, surface="modal")]
    if any(b.get("type") == "input" for b in blocks) and raw.get("submit") is None:
        problems.append("[ERROR] must provide a submit property when using input blocks "
                        "[json-pointer:/view]")
    if problems:
        raise ViewError("invalid_arguments", *problems)
    return {**raw, "blocks": blocks}


def _element(view: JSON, block_id: str) -> JSON:
    for block in view.get("blocks", []):
        if block.get("block_id") == block_id and isinstance(block.get("element"), dict):
            element: JSON = block["element"]
            return element
    return {"type": "plain_text_input"}


def _given(state: JSON) -> bool:
    return bool(str(state.get("value") or "").strip() or state.get("selected_date")
                or state.get("selected_option"))


def _state(element: JSON, text: str) -> JSON:
    """An input's value as Slack reports it in `view.state.values`: a menu's chosen option
    (`text` is its value), a date picker's date, or the text typed."""
    kind = str(element.get("type", "plain_text_input"))
    if kind == "static_select":
        option = next((o for o in element.get("options", []) if o.get("value") == text), None)
        return {"type": kind, "selected_option": option}
    if kind == "datepicker":
        return {"type": kind, "selected_date": text or None}
    return {"type": kind, "value": text}


def _hash(view: JSON) -> str:
    return hashlib.sha1(json.dumps(view, sort_keys=True).encode()).hexdigest()[:20]
