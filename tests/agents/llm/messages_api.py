"""A local server speaking the Messages API (`POST /v1/messages`) for the real SDK to call.

It plays a scripted conversation, one answer per request, and records every request. Like the
real API it answers 400 to a request that breaks the conversation rules (the user speaks first,
roles alternate, every `tool_use` is answered by a `tool_result` first in the next message,
tools carry JSON schemas and valid names), and it keeps a list of what was wrong.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ids = itertools.count(1)


@dataclass(frozen=True)
class Turn:
    content: list[dict[str, Any]]
    stop_reason: str = "tool_use"
    usage: dict[str, int] = field(default_factory=lambda: {"input_tokens": 100, "output_tokens": 20})
    stop_details: dict[str, Any] | None = None


@dataclass(frozen=True)
class Failure:
    status: int
    error_type: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Hang:
    """No answer until the test ends."""


Answer = Turn | Failure | Hang


def call(name: str, **tool_input: Any) -> dict[str, Any]:
    """A `tool_use` block, as the model would send it."""
    return {"type": "tool_use", "id": f"toolu_{next(_ids):04d}", "name": name, "input": tool_input}


def say(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def turn(*blocks: dict[str, Any], **usage: int) -> Turn:
    calls = any(b["type"] == "tool_use" for b in blocks)
    return Turn(list(blocks), "tool_use" if calls else "end_turn",
                {"input_tokens": 100, "output_tokens": 20, **usage})


def report(status: str, reason: str = "Done", message: str = "done", **extra: str) -> Turn:
    return turn(call("report_status", status=status, reason=reason, message=message, **extra))


class MessagesApi:
    def __init__(self) -> None:
        self.script: list[Answer] = []
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.violations: list[str] = []
        self.release = asyncio.Event()
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        self.server = TestServer(app)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def play(self, *answers: Answer) -> None:
        self.script.extend(answers)

    async def close(self) -> None:
        self.release.set()
        await self.server.close()

    async def _messages(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        wrong = problems(body)
        if wrong:
            self.violations.extend(wrong)
            return _error(400, "invalid_request_error", "; ".join(wrong))
        if not self.script:
            self.violations.append("a request after the script ran out")
            return _error(500, "api_error", "the script ran out")
        answer = self.script.pop(0)
        if isinstance(answer, Hang):
            await self.release.wait()
            return _error(500, "api_error", "gave up")
        if isinstance(answer, Failure):
            return _error(answer.status, answer.error_type, answer.message, answer.headers)
        return web.json_response({
            "id": f"msg_{len(self.requests):04d}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": answer.content,
            "stop_reason": answer.stop_reason,
            "stop_sequence": None,
            "stop_details": answer.stop_details,
            "usage": answer.usage,
        })


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"type": "error", "error": {"type": kind, "message": message}},
                             status=status, headers=headers)


def problems(body: dict[str, Any]) -> list[str]:
    """What the real API would refuse in this request body."""
    found = []
    for key in ("model", "max_tokens", "messages"):
        if key not in body:
            found.append(f"`{key}` is required")
    names = []
    for tool in body.get("tools", []):
        names.append(tool.get("name", ""))
        if not TOOL_NAME.match(tool.get("name", "")):
            found.append(f"tool name {tool.get('name')!r} does not match {TOOL_NAME.pattern}")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            found.append(f"tool {tool.get('name')} has no object input_schema")
    if len(names) != len(set(names)):
        found.append("tool names are not unique")
    messages = body.get("messages", [])
    if not messages or messages[0].get("role") != "user":
        found.append("the first message must be the user's")
    for i, message in enumerate(messages):
        content = message.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        if not content:
            found.append(f"messages.{i}: empty content")
            continue
        if i and message["role"] == messages[i - 1]["role"]:
            found.append(f"messages.{i}: roles must alternate")
        uses = [b["id"] for b in content if b.get("type") == "tool_use"]
        if message["role"] == "assistant" and uses:
            following = messages[i + 1]["content"] if i + 1 < len(messages) else []
            answered = [b.get("tool_use_id") for b in following if b.get("type") == "tool_result"]
            if sorted(answered) != sorted(uses):
                found.append(f"messages.{i}: tool_use ids {uses} answered by {answered}")
            kinds = [b.get("type") for b in following]
            if kinds[: len(answered)] != ["tool_result"] * len(answered):
                found.append(f"messages.{i + 1}: tool_result blocks must come first")
        if message["role"] == "user" and i and any(b.get("type") == "tool_result" for b in content):
            before = {b["id"] for b in messages[i - 1]["content"] if b.get("type") == "tool_use"}
            for block in content:
                if block.get("type") == "tool_result" and block.get("tool_use_id") not in before:
                    found.append(f"messages.{i}: tool_result {block.get('tool_use_id')} answers no tool_use")
    breakpoints = sum(
        1
        for part in [*body.get("tools", []), *body.get("system", []),
                     *(b for m in messages for b in m.get("content", []))]
        if isinstance(part, dict) and "cache_control" in part
    )
    if breakpoints > 4:
        found.append(f"{breakpoints} cache_control breakpoints; at most 4 are allowed")
    return found
