"""Rendering a job: its parameters checked against the template's variables, then put into the
steps by a sandboxed Jinja environment that fails on undefined names.

`validation.py` calls `render_job` for each job of a snapshot (and caches the result) and
`names_in` to check templates. Parameter values are data, never template source: a value
`{{ 7*7 }}` stays those characters, and `run` is rendered element by element, so a value
such as `Bob; rm -rf /` stays one argv element. A job renders within one budget of work and
characters (`templating.budget`, `Limits`); patterns run on a linear-time engine (`patterns`).
With `templating.py` the only module that imports jinja2.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from jinja2 import Template, TemplateError, meta

from georgebot.errors import ManifestError
from georgebot.manifests import messages, patterns, templating
from georgebot.manifests.limits import DEFAULT, LimitExceeded, Limits
from georgebot.model.rendered import RenderedJob
from georgebot.model.specs import DEFAULT_URL, Job, Step, TaskTemplate, Variable, VariableType

YamlPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    path: YamlPath  # where in the job's document, YAML spelling
    message: str
    step: int | None = None  # the template's step (index) that could not be rendered, and
    text: YamlPath = ()  # which of its strings, so validation can say where that is


class RenderError(ManifestError):
    """A job cannot be rendered; `problems` locates each reason in the job's document."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = tuple(problems)


@dataclass(frozen=True)
class Text:
    """One templated string of a step: where it is (under the step) and whether fuzzy
    variables may appear in it (only `instructions` and `done_when`)."""

    path: YamlPath
    text: str
    fuzzy_allowed: bool

    @property
    def field(self) -> str:
        return messages.dotted(self.path)


_ENV = templating.ENV


def _templated(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


@functools.lru_cache(maxsize=4096)
def _compile(text: str) -> Template:
    return _ENV.from_string(text)


@functools.lru_cache(maxsize=4096)
def names_in(text: str) -> frozenset[str]:
    """The variables a text refers to. Raises `ManifestError` with the parser's or the
    compiler's complaint (a filter that does not exist, an `include`)."""
    if not _templated(text):
        return frozenset()
    try:
        found = meta.find_undeclared_variables(_ENV.parse(text))
        _compile(text)
    except TemplateError as e:
        raise ManifestError(str(e.message or e)) from e
    except Exception as e:  # nesting deeper than Python compiles (RecursionError, SyntaxError)
        raise ManifestError(f"the template cannot be compiled ({type(e).__name__}: {e})") from e
    return frozenset(found - set(_ENV.globals))


def names_or_none(text: str) -> frozenset[str] | None:
    """`names_in`, or None for a text that does not compile (reported elsewhere)."""
    try:
        return names_in(text)
    except ManifestError:
        return None


def step_texts(step: Step) -> Iterator[Text]:
    """Every string of a step that is rendered, in the order an operator reads the step."""
    if step.run is not None:
        for index, arg in enumerate(step.run):
            yield Text(("run", index), arg, False)
    if step.http is not None:
        yield Text(("http", "url"), step.http.url, False)
        for key, value in step.http.headers.items():
            yield Text(("http", "headers", key), value, False)
        yield from _leaves(("http", "json"), step.http.body)
        yield from _leaves(("http", "expect", "json"), step.http.expect.json_fields)
    if step.ask is not None:
        yield Text(("ask", "message"), step.ask.message, False)
        if step.ask.channel is not None:
            yield Text(("ask", "channel"), step.ask.channel, False)
    if step.instructions is not None:
        yield Text(("instructions",), step.instructions, True)
    if step.done_when is not None:
        yield Text(("done_when",), step.done_when, True)


def _leaves(path: YamlPath, value: Any) -> Iterator[Text]:
    if isinstance(value, str):
        yield Text(path, value, False)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves((*path, key), item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves((*path, index), item)


# --- parameters ------------------------------------------------------------------------


def coerce(variable: Variable, value: Any, limits: Limits = DEFAULT) -> Any:
    """A strict value checked against its variable, in the type the templates see.
    Raises ValueError with words that finish 'parameter `x` ...', or LimitExceeded when the
    pattern cannot check it in time."""
    kind = variable.kind
    if kind is VariableType.STRING:
        if not isinstance(value, str):
            raise ValueError(f"should be text, not {messages.describe(value)}: put it in quotes")
        if "\x00" in value:
            raise ValueError("contains a NUL character")
        _bounds(variable, len(value), "characters long")
        if variable.pattern is not None and not _matches(variable.pattern, value, limits):
            raise ValueError(
                f"{messages.shown(value)} does not match the pattern {messages.shown(variable.pattern)}"
            )
        return value
    if kind is VariableType.INT:
        number = _number(value, integral=True)
        _bounds(variable, number, "")
        return number
    if kind is VariableType.NUMBER:
        number = _number(value, integral=False)
        _bounds(variable, number, "")
        return number
    if kind is VariableType.BOOL:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(f"should be true or false, not {messages.describe(value)}")
    if kind is VariableType.DATE:
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise ValueError(f"should be a date such as 2026-12-01, not {messages.describe(value)}")
    values = variable.values or []
    if any(type(value) is type(v) and value == v for v in values):
        return value
    raise ValueError(
        f"should be one of {', '.join(map(str, values))}, not {messages.describe(value)}"
    )


def _matches(pattern: str, value: str, limits: Limits) -> bool:
    try:
        return patterns.checker(pattern).fullmatch(value, limits.pattern_seconds)
    except patterns.PatternTimeout as e:
        raise LimitExceeded(
            "pattern_seconds", limits.pattern_seconds,
            f"checking {messages.shown(value)} against the pattern {messages.shown(pattern)} takes "
            "too long (the pattern backtracks)",
        ) from e


def _number(value: Any, *, integral: bool) -> int | float:
    what = "a whole number" if integral else "a number"
    if isinstance(value, bool):
        raise ValueError(f"should be {what}, not {messages.describe(value)}")
    if isinstance(value, str):
        try:
            value = int(value) if re.fullmatch(r"[+-]?\d+", value.strip()) else float(value)
        except ValueError:
            raise ValueError(f"should be {what}, not {messages.shown(value)}") from None
    if isinstance(value, float) and integral and value.is_integer():
        value = int(value)
    if isinstance(value, int) or (isinstance(value, float) and not integral):
        return value
    raise ValueError(f"should be {what}, not {messages.describe(value)}")


def _bounds(variable: Variable, size: float, unit: str) -> None:
    suffix = f" {unit}" if unit else ""
    if variable.min is not None and size < variable.min:
        raise ValueError(f"should be at least {variable.min:g}{suffix}")
    if variable.max is not None and size > variable.max:
        raise ValueError(f"should be at most {variable.max:g}{suffix}")


def person_value(name: str, text: str) -> str:
    """A fuzzy value as `instructions` and `done_when` show it to the model: delimited, and
    escaped so it can close no tag (`</instructions>`, `</person_value>`) and open none. The
    system prompt names text in these tags as data, never instructions."""
    body = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f'<person_value name="{name}">{body}</person_value>'


def _fuzzy_text(value: Any) -> str:
    if isinstance(value, dict | list):
        raise ValueError(f"should be text, not {messages.describe(value)}")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def check_params(
    variables: Mapping[str, Variable], params: Mapping[str, Any], limits: Limits = DEFAULT
) -> tuple[dict[str, Any], dict[str, str], list[Problem]]:
    """(strict values, fuzzy texts, problems): every problem at once, so one `validate` run
    shows them all. Optional variables left out are None (rendered as nothing)."""
    strict: dict[str, Any] = {}
    fuzzy: dict[str, str] = {}
    problems = [
        Problem(("spec", "params", name), messages.unknown_param(name, variables))
        for name in params
        if name not in variables
    ]
    for name, variable in variables.items():
        given = name in params and params[name] is not None
        value = params[name] if given else variable.default
        if value is None:
            if variable.required:
                where: YamlPath = ("spec", "params", name) if name in params else ("spec", "params")
                problems.append(Problem(where, messages.missing_param(name, variable.description)))
            if not variable.fuzzy:
                strict[name] = None
            continue
        try:
            if variable.fuzzy:
                fuzzy[name] = _fuzzy_text(value)
            else:
                strict[name] = coerce(variable, value, limits)
        except LimitExceeded as e:
            where = ("spec", "params", name) if given else ("spec", "template")
            problems.append(Problem(where, messages.param_over_limit(name, e.message)))
        except ValueError as e:
            where = ("spec", "params", name) if given else ("spec", "template")
            problems.append(Problem(where, messages.bad_param(name, str(e))))
    return strict, fuzzy, problems


# --- rendering -------------------------------------------------------------------------


def render_job(
    job: Job, template: TaskTemplate, default_channel: str, *, limits: Limits = DEFAULT,
    george_url: str = DEFAULT_URL,
) -> RenderedJob:
    """The job's steps with its parameters in them. Raises `RenderError` (a ManifestError).
    All its strings render within one budget (`limits`): the first limit reached stops it."""
    body = template.spec
    strict, fuzzy, problems = check_params(body.variables, job.spec.params, limits)
    if problems:
        raise RenderError(problems)
    # Fuzzy values are seen only by `instructions` and `done_when`; left out, they are empty.
    unset: dict[str, Any] = {name: None for name, v in body.variables.items() if v.fuzzy}
    shown = {name: person_value(name, text) for name, text in fuzzy.items()}
    own = {"george": {"url": george_url}}  # George's own server, as its steps reach it
    context = {"strict": own | strict, "all": own | strict | unset | shown}
    name = template.metadata.name
    steps = []
    with templating.budget(limits) as spent:
        for index, step in enumerate(body.steps):
            try:
                steps.append(_render_step(name, index, step, context, problems, spent))
            except _Stopped:
                break
    if problems:
        raise RenderError(problems)
    return RenderedJob(
        name=job.metadata.name,
        template=template.metadata.name,
        channel=job.spec.channel or body.channel or default_channel,
        deadline=job.spec.deadline,
        params={k: v for k, v in strict.items() if v is not None},
        fuzzy=fuzzy,
        steps=steps,
        allow_self_approval=body.allow_self_approval,
        retriers=tuple(body.retriers),
    )


class _Stopped(Exception):
    """A limit was reached: the job's other strings are not rendered."""


def _render_step(
    template: str,
    index: int,
    step: Step,
    context: Mapping[str, Mapping[str, Any]],
    problems: list[Problem],
    spent: templating.Budget,
) -> Step:
    rendered: dict[YamlPath, str] = {}
    for text in step_texts(step):
        if not _templated(text.text):
            continue
        values = context["all" if text.fuzzy_allowed else "strict"]
        spent.text_chars = 0
        try:
            rendered[text.path] = _compile(text.text).render(values)
        except LimitExceeded as e:
            problem = messages.render_failed(template, step.name, text.field, e.message)
            problems.append(Problem(("spec", "template"), problem, index, text.path))
            raise _Stopped from e
        except Exception as e:  # template code can raise anything; each is the job's problem
            problem = messages.render_failed(template, step.name, text.field, str(e))
            problems.append(Problem(("spec", "template"), problem, index, text.path))
    if not rendered:
        return step
    return _apply(step, rendered)


def _apply(step: Step, rendered: Mapping[YamlPath, str]) -> Step:
    """A copy of the step with the rendered strings put where they came from."""

    def put(path: YamlPath, value: Any) -> Any:
        if path in rendered:
            return rendered[path]
        if isinstance(value, dict):
            return {k: put((*path, k), v) for k, v in value.items()}
        if isinstance(value, list):
            return [put((*path, i), v) for i, v in enumerate(value)]
        return value

    update: dict[str, Any] = {}
    if step.run is not None:
        update["run"] = put(("run",), step.run)
    if step.http is not None:
        http = step.http
        expect = http.expect.model_copy(
            update={"json_fields": put(("http", "expect", "json"), http.expect.json_fields)}
        )
        update["http"] = http.model_copy(update={
            "url": put(("http", "url"), http.url),
            "headers": put(("http", "headers"), http.headers),
            "body": put(("http", "json"), http.body),
            "expect": expect,
        })
    if step.ask is not None:
        update["ask"] = step.ask.model_copy(update={
            "message": put(("ask", "message"), step.ask.message),
            "channel": put(("ask", "channel"), step.ask.channel),
        })
    if step.instructions is not None:
        update["instructions"] = put(("instructions",), step.instructions)
        update["done_when"] = put(("done_when",), step.done_when)
    return step.model_copy(update=update)
