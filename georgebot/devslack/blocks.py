"""Block Kit validation: the limits Slack enforces before it stores a message or a view.

`parse_blocks` turns a `blocks` argument (a JSON string from a form, or a list from a JSON body)
into a list; `check_blocks` lists what Slack would reject, worded like the `response_metadata`
messages of an `invalid_blocks` answer. `with_block_ids` fills in missing `block_id`s as Slack
does when it stores blocks.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

JSON = dict[str, Any]

Surface = Literal["message", "home", "modal"]

MAX_BLOCKS: dict[Surface, int] = {"message": 50, "home": 100, "modal": 100}
MAX_TEXT_CHARS = 40_000

_MESSAGE_BLOCKS = frozenset({
    "actions", "context", "divider", "file", "header", "image", "markdown", "rich_text",
    "section", "video",
})
_HOME_BLOCKS = _MESSAGE_BLOCKS | {"input"}
_ELEMENTS = frozenset({
    "button", "checkboxes", "datepicker", "datetimepicker", "email_text_input", "image",
    "multi_channels_select", "multi_conversations_select", "multi_external_select",
    "multi_static_select", "multi_users_select", "number_input", "overflow",
    "plain_text_input", "radio_buttons", "rich_text_input", "static_select", "timepicker",
    "url_text_input", "channels_select", "conversations_select", "external_select",
    "users_select", "workflow_button",
})


class BlocksFormatError(ValueError):
    """`blocks` is not a JSON array of objects (Slack: `invalid_blocks_format`)."""


def parse_blocks(value: object) -> list[JSON] | None:
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise BlocksFormatError(f"blocks is not valid JSON: {e}") from e
    if not isinstance(value, list) or not all(isinstance(b, dict) for b in value):
        raise BlocksFormatError("blocks must be a JSON array of objects")
    return value


def check_blocks(blocks: list[JSON], *, surface: Surface = "message") -> list[str]:
    """What is wrong with `blocks` on `surface`, as Slack words it; empty when they are fine."""
    problems = _Problems()
    limit = MAX_BLOCKS[surface]
    if len(blocks) > limit:
        problems.add(f"no more than {limit} items allowed", "/blocks")
    known = _MESSAGE_BLOCKS if surface == "message" else _HOME_BLOCKS
    seen_ids: set[str] = set()
    for i, block in enumerate(blocks):
        at = f"/blocks/{i}"
        kind = block.get("type")
        if not isinstance(kind, str):
            problems.add("missing required field: type", at)
            continue
        if kind not in known:
            problems.add(f"unsupported type: {kind}", f"{at}/type")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or not 0 < len(block_id) <= 255:
                problems.add("must be a string of 1 to 255 characters", f"{at}/block_id")
            elif block_id in seen_ids:
                problems.add(f"duplicate block_id: {block_id}", f"{at}/block_id")
            else:
                seen_ids.add(block_id)
        _CHECKS.get(kind, _no_check)(block, at, problems)
    return problems.messages


def with_block_ids(blocks: list[JSON], salt: str) -> list[JSON]:
    """Copies of `blocks`, each with a `block_id`; made-up ids are stable for the same salt."""
    out: list[JSON] = []
    for i, block in enumerate(blocks):
        block = dict(block)
        if "block_id" not in block:
            digest = hashlib.sha1(f"{salt}/{i}".encode()).hexdigest()
            block["block_id"] = digest[:5]
        out.append(block)
    return out


class _Problems:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, what: str, pointer: str) -> None:
        self.messages.append(f"[ERROR] {what} [json-pointer:{pointer}]")


def check_text(obj: Any, at: str, *, limit: int, plain_only: bool = False,
               required: bool = True) -> list[str]:
    """What is wrong with a text object (a view's title, a button's label), as Slack words it."""
    problems = _Problems()
    _text(obj, at, problems, limit=limit, plain_only=plain_only, required=required)
    return problems.messages


def _text(
    obj: Any, at: str, problems: _Problems, *, limit: int, plain_only: bool = False,
    required: bool = True,
) -> None:
    if obj is None:
        if required:
            problems.add("missing required field: text", at)
        return
    if not isinstance(obj, dict):
        problems.add("must be a text object", at)
        return
    allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if obj.get("type") not in allowed:
        problems.add(f"must be one of {', '.join(allowed)}", f"{at}/type")
    text = obj.get("text")
    if not isinstance(text, str):
        problems.add("missing required field: text", f"{at}/text")
    elif not text:
        problems.add("must be more than 0 characters", f"{at}/text")
    elif len(text) > limit:
        problems.add(f"must be less than {limit + 1} characters", f"{at}/text")


def _element(element: Any, at: str, problems: _Problems) -> None:
    if not isinstance(element, dict):
        problems.add("must be an object", at)
        return
    kind = element.get("type")
    if kind not in _ELEMENTS:
        problems.add(f"unsupported type: {kind}", f"{at}/type")
        return
    action_id = element.get("action_id")
    if action_id is not None and (not isinstance(action_id, str) or len(action_id) > 255):
        problems.add("must be a string of up to 255 characters", f"{at}/action_id")
    if kind == "button":
        _text(element.get("text"), f"{at}/text", problems, limit=75, plain_only=True)
        value = element.get("value")
        if value is not None and (not isinstance(value, str) or len(value) > 2000):
            problems.add("must be less than 2001 characters", f"{at}/value")
        url = element.get("url")
        if url is not None and (not isinstance(url, str) or len(url) > 3000):
            problems.add("must be less than 3001 characters", f"{at}/url")
        style = element.get("style")
        if style is not None and style not in ("primary", "danger"):
            problems.add("must be one of primary, danger", f"{at}/style")
    elif kind == "image":
        _image_source(element, at, problems)


def _image_source(obj: JSON, at: str, problems: _Problems) -> None:
    if "image_url" not in obj and "slack_file" not in obj:
        problems.add("missing required field: image_url", at)
    alt = obj.get("alt_text")
    if not isinstance(alt, str):
        problems.add("missing required field: alt_text", at)
    elif len(alt) > 2000:
        problems.add("must be less than 2001 characters", f"{at}/alt_text")


def _section(block: JSON, at: str, problems: _Problems) -> None:
    text, fields = block.get("text"), block.get("fields")
    if text is None and fields is None:
        problems.add("must provide either text or fields", at)
    _text(text, f"{at}/text", problems, limit=3000, required=False)
    if fields is not None:
        if not isinstance(fields, list) or not fields:
            problems.add("must be a non-empty array", f"{at}/fields")
        else:
            if len(fields) > 10:
                problems.add("no more than 10 items allowed", f"{at}/fields")
            for j, item in enumerate(fields):
                _text(item, f"{at}/fields/{j}", problems, limit=2000)
    if "accessory" in block:
        _element(block["accessory"], f"{at}/accessory", problems)


def _header(block: JSON, at: str, problems: _Problems) -> None:
    _text(block.get("text"), f"{at}/text", problems, limit=150, plain_only=True)


def _context(block: JSON, at: str, problems: _Problems) -> None:
    elements = block.get("elements")
    if not isinstance(elements, list) or not elements:
        problems.add("must be a non-empty array", f"{at}/elements")
        return
    if len(elements) > 10:
        problems.add("no more than 10 items allowed", f"{at}/elements")
    for j, element in enumerate(elements):
        where = f"{at}/elements/{j}"
        if isinstance(element, dict) and element.get("type") == "image":
            _image_source(element, where, problems)
        else:
            _text(element, where, problems, limit=3000)


def _actions(block: JSON, at: str, problems: _Problems) -> None:
    elements = block.get("elements")
    if not isinstance(elements, list) or not elements:
        problems.add("must be a non-empty array", f"{at}/elements")
        return
    if len(elements) > 25:
        problems.add("no more than 25 items allowed", f"{at}/elements")
    for j, element in enumerate(elements):
        _element(element, f"{at}/elements/{j}", problems)


def _image(block: JSON, at: str, problems: _Problems) -> None:
    _image_source(block, at, problems)
    if "title" in block:
        _text(block["title"], f"{at}/title", problems, limit=2000, plain_only=True)


def _markdown(block: JSON, at: str, problems: _Problems) -> None:
    text = block.get("text")
    if not isinstance(text, str) or not text:
        problems.add("missing required field: text", at)
    elif len(text) > 12_000:
        problems.add("must be less than 12001 characters", f"{at}/text")


def _rich_text(block: JSON, at: str, problems: _Problems) -> None:
    if not isinstance(block.get("elements"), list):
        problems.add("missing required field: elements", at)


def _input(block: JSON, at: str, problems: _Problems) -> None:
    _text(block.get("label"), f"{at}/label", problems, limit=2000, plain_only=True)
    if "element" not in block:
        problems.add("missing required field: element", at)
    else:
        _element(block["element"], f"{at}/element", problems)


def _no_check(block: JSON, at: str, problems: _Problems) -> None:
    return None


_CHECKS = {
    "section": _section,
    "header": _header,
    "context": _context,
    "actions": _actions,
    "image": _image,
    "markdown": _markdown,
    "rich_text": _rich_text,
    "input": _input,
}
