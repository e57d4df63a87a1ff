"""`/george run TEMPLATE`: the modal that asks for a new job's name and its template's
variables, and what its submission says. Typed inputs for strict variables (a number input
for numbers, a menu for enums and yes/no, a date picker for dates), text for fuzzy ones,
defaults filled in. The job itself is written to Git by `manifests.writing.JobWriter`; the
sync then runs it like any other.
"""

from __future__ import annotations

import json
import re
from typing import Any

from slack_sdk.models.blocks import (
    DatePickerElement,
    InputBlock,
    NumberInputElement,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.blocks.basic_components import MarkdownTextObject
from slack_sdk.models.views import View

from georgebot.manifests.writing import NAME
from georgebot.model.specs import TaskTemplate, Variable, VariableType
from georgebot.slack.mrkdwn import escape

START_VIEW = "george_start"
NAME_BLOCK = "job_name"
_VALUE = "value"
_VARIABLE = "var:"
_TITLE_CHARS = 24
_LABEL_CHARS = 2000


def start_modal(template: TaskTemplate, *, channel: str) -> View:
    body = template.spec
    blocks: list[Any] = [
        SectionBlock(text=MarkdownTextObject(
            text=f"A new job of *{escape(template.metadata.name)}*"
                 + (f": {escape(body.description.rstrip('.'))}" if body.description else "")
                 + ". George commits it to Git as you, and its card appears once it is synced.")),
        InputBlock(block_id=NAME_BLOCK, label=PlainTextObject(text="Job name"),
                   hint=PlainTextObject(text="lowercase letters, digits and -, e.g. onboard-carol"),
                   element=PlainTextInputElement(action_id=_VALUE, max_length=63)),
    ]
    for name, variable in body.variables.items():
        blocks.append(InputBlock(
            block_id=f"{_VARIABLE}{name}", label=PlainTextObject(text=name[:_LABEL_CHARS]),
            hint=PlainTextObject(text=_hint(variable)) if _hint(variable) else None,
            element=_element(variable), optional=not variable.required,
        ))
    return View(type="modal", callback_id=START_VIEW,
                private_metadata=json.dumps({"template": template.metadata.name, "channel": channel}),
                title=PlainTextObject(text="Start a job"[:_TITLE_CHARS]),
                submit=PlainTextObject(text="Start"), close=PlainTextObject(text="Cancel"), blocks=blocks)


def _hint(variable: Variable) -> str:
    said = [variable.description] if variable.description else []
    if variable.fuzzy:
        said.append("free text, read by the agent")
    if variable.pattern:
        said.append(f"must match {variable.pattern}")
    return "; ".join(said)[:_LABEL_CHARS]


def _element(variable: Variable) -> Any:
    default = variable.default
    kind = None if variable.fuzzy else variable.kind
    if kind in (VariableType.INT, VariableType.NUMBER):
        return NumberInputElement(
            action_id=_VALUE, is_decimal_allowed=kind is VariableType.NUMBER,
            initial_value=str(default) if default is not None else None,
            min_value=_number(variable.min), max_value=_number(variable.max),
        )
    if kind in (VariableType.ENUM, VariableType.BOOL):
        values = variable.values if kind is VariableType.ENUM else [True, False]
        options = [Option(text=PlainTextObject(text=_shown(v)), value=json.dumps(v)) for v in values or []]
        chosen = next((o for o, v in zip(options, values or [], strict=True) if v == default), None)
        return StaticSelectElement(action_id=_VALUE, options=options, initial_option=chosen)
    if kind is VariableType.DATE:
        return DatePickerElement(action_id=_VALUE, initial_date=str(default) if default else None)
    return PlainTextInputElement(action_id=_VALUE, multiline=variable.fuzzy,
                                 initial_value=str(default) if default is not None else None)


def _number(value: float | None) -> str | None:
    return None if value is None else (str(int(value)) if float(value).is_integer() else str(value))


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def read_start(view: dict[str, Any], template: TaskTemplate) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(job name, params, errors by block) from a submitted start modal. A value left empty
    is left out, so the template's default applies; `validate` checks the rest."""
    values = (view.get("state") or {}).get("values") or {}
    name = str(_input(values, NAME_BLOCK).get("value") or "").strip()
    problems: dict[str, str] = {}
    if not NAME.match(name):
        problems[NAME_BLOCK] = "Use lowercase letters, digits and -, at most 63 (e.g. onboard-carol)."
    params: dict[str, Any] = {}
    for variable_name, variable in template.spec.variables.items():
        given = _input(values, f"{_VARIABLE}{variable_name}")
        kind = None if variable.fuzzy else variable.kind
        if isinstance(option := given.get("selected_option"), dict):
            try:
                params[variable_name] = json.loads(str(option.get("value")))
            except ValueError:  # not one of the options we offered: `validate` says why
                params[variable_name] = str(option.get("value"))
        elif given.get("selected_date"):
            params[variable_name] = str(given["selected_date"])
        elif (text := str(given.get("value") or "").strip()):
            if kind is VariableType.INT:
                params[variable_name] = int(text) if re.fullmatch(r"-?\d+", text) else text
            elif kind is VariableType.NUMBER:
                params[variable_name] = float(text) if re.fullmatch(r"-?\d+(\.\d+)?", text) else text
            else:
                params[variable_name] = text
    return name, params, problems


def _input(values: dict[str, Any], block: str) -> dict[str, Any]:
    found: dict[str, Any] = (values.get(block) or {}).get(_VALUE) or {}
    return found


def errors_of(message: str, template: TaskTemplate) -> dict[str, str]:
    """A validation error, shown under the input it is about (the name's, if none)."""
    for variable_name in template.spec.variables:
        if f"`{variable_name}`" in message or f"params.{variable_name}" in message:
            return {f"{_VARIABLE}{variable_name}": _short(message)}
    return {NAME_BLOCK: _short(message)}


def _short(message: str) -> str:
    text = message.split(": ", 2)[-1] if message.count(": ") >= 2 else message  # file:line: kind/name:
    return text[:300]
