"""The tools an LLM agent gets: exactly its AgentSpec's grants, plus `ask_human` and `report_status`.

`llm.py` sends `definitions(agent)` with every request; `toolcalls.py` reads each `tool_use` the
model sends with `parse`, checks it with `refusal` and words approval requests with `describe`.
Tool names follow the API's rule (`^[a-zA-Z0-9_-]{1,64}$`), so a command path such as
`tools/create-account` is an input of `run_command`, never a tool's name.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from yarl import URL

from georgebot import errors
from georgebot.agents import grants
from georgebot.agents.ask import same_channel
from georgebot.model.specs import AgentSpec, HttpCheck
from georgebot.model.urls import is_credential_header, redact

RUN_COMMAND = "run_command"
HTTP_REQUEST = "http_request"
POST_MESSAGE = "post_message"
ASK_HUMAN = "ask_human"
REPORT_STATUS = "report_status"

KIND = {RUN_COMMAND: "shell", HTTP_REQUEST: "http", POST_MESSAGE: "slack"}
"""The capability kind behind each side-effecting tool, as `requireApproval` names it."""

STATUSES = ("succeeded", "failed", "blocked")
REASON = re.compile(r"^[A-Z][A-Za-z0-9]*$")
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


@dataclass(frozen=True)
class Command:
    command: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class Request:
    check: HttpCheck


@dataclass(frozen=True)
class Post:
    channel: str
    text: str


@dataclass(frozen=True)
class Question:
    question: str


@dataclass(frozen=True)
class Report:
    status: str
    reason: str
    message: str
    capability: str


Action = Command | Request | Post
Call = Action | Question | Report


class InvalidInput(Exception):
    """The model's input does not fit the tool; the message goes back to it as an error."""


def definitions(agent: AgentSpec) -> list[dict[str, Any]]:
    """The tool list, in a fixed order so that the prompt prefix stays cacheable."""
    spec = agent.spec
    tools = []
    if spec.commands:
        tools.append(
            _tool(
                RUN_COMMAND,
                "Run one of the commands you are granted, with arguments, and get its exit status and "
                "the tail of its output. There is no shell: each argument is passed as written, so "
                "quotes, pipes, globs and variables have no special meaning.",
                {
                    "command": {"type": "string", "enum": sorted(spec.commands)},
                    "args": {"type": "array", "items": {"type": "string"}, "description": "One per element."},
                },
                ["command"],
            )
        )
    if spec.hosts:
        hosts = ", ".join(sorted(spec.hosts))
        tools.append(
            _tool(
                HTTP_REQUEST,
                f"Send one HTTP request to a host you are granted ({hosts}; `*.` matches any subdomain; "
                "a host without a port means port 80 for http and 443 for https only) "
                "and get its status and the start of its body. Redirects are followed only to granted hosts.",
                {
                    "method": {"type": "string", "enum": _METHODS},
                    "url": {"type": "string", "description": "An http or https URL."},
                    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                    "json": {"description": "A JSON body to send, if any."},
                },
                ["method", "url"],
            )
        )
    if spec.channels:
        tools.append(
            _tool(
                POST_MESSAGE,
                "Post a message in a Slack channel you are granted. It does not wait for an answer: "
                "to ask something and wait for the reply, use ask_human.",
                {
                    "channel": {"type": "string", "enum": sorted(spec.channels)},
                    "text": {"type": "string", "description": "Slack mrkdwn."},
                },
                ["channel", "text"],
            )
        )
    tools.append(
        _tool(
            ASK_HUMAN,
            "Ask the people following this job a question in its Slack thread, then stop working: "
            "the step waits, and the conversation continues with their reply as this tool's result.",
            {"question": {"type": "string"}},
            ["question"],
        )
    )
    tools.append(
        _tool(
            REPORT_STATUS,
            "End the step: call it exactly once, alone, as your last action. `succeeded` only when "
            "the done-when condition holds; `failed` when it cannot be met; `blocked` when something "
            "outside your control must change first (with reason CapabilityMissing when you lack a "
            "tool, command, host or channel the step needs, naming it in `capability`).",
            {
                "status": {"type": "string", "enum": list(STATUSES)},
                "reason": {
                    "type": "string",
                    "description": "A CamelCase code, e.g. Done, CapabilityMissing, NoSuchUser.",
                },
                "message": {"type": "string", "description": "One or two sentences for people."},
                "capability": {
                    "type": "string",
                    "description": "With CapabilityMissing: what is missing, "
                    "e.g. `shell: tools/reset-password`.",
                },
            },
            ["status", "reason", "message"],
        )
    )
    return tools


def _tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "input_schema": {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        },
    }


def parse(name: str, data: Any) -> Call:
    """Raises InvalidInput with what is wrong, in words the model can act on."""
    if not isinstance(data, dict):
        raise InvalidInput("the input must be a JSON object")
    if name == RUN_COMMAND:
        args = data.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise InvalidInput("`args` must be a list of strings")
        return Command(_text(data, "command"), tuple(args))
    if name == HTTP_REQUEST:
        headers = data.get("headers") or {}
        try:
            check = HttpCheck.model_validate(
                {
                    "method": data.get("method", "GET"),
                    "url": _text(data, "url"),
                    "headers": headers,
                    "json": data.get("json"),
                }
            )
        except ValidationError as e:
            raise InvalidInput(
                "; ".join(f"`{'.'.join(map(str, x['loc']))}`: {x['msg']}" for x in e.errors())
            ) from e
        url = URL(check.url)
        if url.scheme not in ("http", "https") or not url.host:
            raise InvalidInput(f"{check.url!r} is not an http(s) URL with a host")
        return Request(check)
    if name == POST_MESSAGE:
        return Post(_text(data, "channel"), _text(data, "text"))
    if name == ASK_HUMAN:
        return Question(_text(data, "question"))
    if name == REPORT_STATUS:
        status = _text(data, "status")
        if status not in STATUSES:
            raise InvalidInput(f"`status` must be one of {', '.join(STATUSES)}")
        return _report(status, data)
    raise InvalidInput(f"there is no tool named {name!r}; use only the tools you were given")


def _text(data: dict[str, Any], field: str) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"`{field}` is required and must be a non-empty string")
    return value


def refusal(agent: AgentSpec, action: Action) -> errors.CapabilityMissing | None:
    """The missing grant, worded as the other executors word it; None when the call is granted."""
    if isinstance(action, Command):
        if action.command not in agent.spec.commands:
            return grants.missing(agent, "shell", action.command, "run")
    elif isinstance(action, Request):
        url = URL(action.check.url)
        try:
            grants.require_origin(agent, url.scheme, (url.host or "").rstrip("."), url.port)
        except errors.CapabilityMissing as missing:
            return missing
    elif not any(same_channel(action.channel, c) for c in agent.spec.channels):
        return grants.missing(agent, "slack", action.channel, "post in")
    return None


DEFAULT_REASONS = {"succeeded": "Done", "failed": "StepFailed", "blocked": "ConditionsNotMet"}
_MISSING = re.compile(r"capabilit|not granted|no (?:tool|command|access|permission)|missing", re.IGNORECASE)


def _report(status: str, data: dict[str, Any]) -> Report:
    """A report as the model wrote it, forgiven its form: a `reason` that is a sentence rather
    than a code is kept in the message, and the reason is derived from it (CapabilityMissing
    when a blocked step says something is missing or not granted) or the status's default."""
    said = data.get("reason")
    reason = said.strip() if isinstance(said, str) else ""
    message = data.get("message") if isinstance(data.get("message"), str) else ""
    message = str(message).strip()
    capability = data.get("capability") if isinstance(data.get("capability"), str) else ""
    if reason and not REASON.match(reason):
        message = f"{message} ({reason})" if message else reason
        reason = ("CapabilityMissing" if status == "blocked" and (capability or _MISSING.search(reason))
                  else DEFAULT_REASONS[status])
    return Report(status, reason or DEFAULT_REASONS[status], message or status, str(capability or ""))


def kind(action: Action) -> str:
    if isinstance(action, Command):
        return "shell"
    return "http" if isinstance(action, Request) else "slack"


def describe(action: Action) -> str:
    """The exact call, for people asked to approve it and for the step's context."""
    if isinstance(action, Command):
        return f"run `{shlex.join([action.command, *action.args])}`"
    if isinstance(action, Request):
        check = action.check
        text = f"send `{check.method} {redact(check.url)}`"
        if check.headers:
            shown = {k: "***" if is_credential_header(k) else v for k, v in check.headers.items()}
            text += f" with headers `{json.dumps(shown, ensure_ascii=False)}`"
        if check.body is not None:
            text += f" with the JSON body `{json.dumps(check.body, ensure_ascii=False)}`"
        return text
    return f"post in {action.channel}:\n{action.text}"

