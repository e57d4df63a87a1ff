"""The words operators read when a manifest is wrong, in one place so they stay consistent.

`parsing`, `render`, `validation` and `links` build every `ManifestIssue` message with these
helpers. A message says what is wrong and, where it can, what to write instead.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

KINDS = ("AgentSpec", "TaskTemplate", "Job")


def dotted(path: Sequence[str | int]) -> str:
    """`("spec", "steps", 0, "run")` → `spec.steps[0].run`, as the operator sees the YAML."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


_SUGGEST = 100  # words and choices longer than this, or choices past this many, get no suggestion
_LISTED = 30  # a listing names at most this many, then says how many more


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    if len(word) > _SUGGEST:
        return ""
    candidates = [c for c in choices if len(c) <= _SUGGEST][: _SUGGEST * 10]
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


def listing(what: str, names: Iterable[str]) -> str:
    names = sorted(names)
    if not names:
        return f"there are no {what}"
    more = f" and {len(names) - _LISTED:,} more" if len(names) > _LISTED else ""
    return f"{what}: {', '.join(shown_name(n) for n in names[:_LISTED])}{more}"


def shown_name(name: str, size: int = 64) -> str:
    return name if len(name) <= size else f"{name[: size - 1]}…"


def describe(value: Any) -> str:
    """A value as an operator would name it, for 'expected X, got Y'."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, datetime):
        return f"a timestamp ({value.isoformat()})"
    if isinstance(value, date):
        return f"a date ({value.isoformat()})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return shown(value)


# --- documents ------------------------------------------------------------------------


def invalid_yaml(problem: str) -> str:
    if len(problem) > 300:
        problem = problem[:300] + "…"
    return f"invalid YAML: {problem}"


def not_utf8() -> str:
    return "the file is not UTF-8 text"


def not_a_mapping(value: Any) -> str:
    return (
        f"a manifest is a mapping with apiVersion, kind, metadata and spec, not {describe(value)}"
    )


def missing_kind() -> str:
    return f"missing field `kind`: write one of {', '.join(KINDS)}"


def unknown_kind(kind: Any) -> str:
    text = str(kind)
    return f"unknown kind `{text}`{did_you_mean(text, KINDS)}; kinds are {', '.join(KINDS)}"


def unknown_api_version(value: Any, expected: str) -> str:
    if value is None:
        return f"missing field `apiVersion`: write `apiVersion: {expected}`"
    return f"unknown apiVersion `{value}`: this George reads `{expected}`"


def missing_field(path: Sequence[str | int]) -> str:
    where = f" in `{dotted(path[:-1])}`" if len(path) > 1 else ""
    return f"missing required field `{path[-1]}`{where}"


def unknown_field(path: Sequence[str | int], known: Iterable[str]) -> str:
    names = list(known)
    hint = did_you_mean(str(path[-1]), names)
    if not hint and names:
        hint = f"; {listing('the fields here', names)}"
    return f"unknown field `{dotted(path)}`{hint}"


def bad_name(path: Sequence[str | int], value: Any) -> str:
    return (
        f"`{dotted(path)}`: {shown(value)} is not a valid name: use lowercase letters, digits and "
        "'-', starting and ending with a letter or digit, at most 63 characters"
    )


def bad_value(path: Sequence[str | int], message: str, value: Any) -> str:
    message = message.removeprefix("Value error, ").replace("Input should be", "should be")
    shown = ""
    if isinstance(value, str | int | float) and len(str(value)) <= 40:
        shown = f" (got {value!r})"
    return f"`{dotted(path)}`: {message}{shown}" if path else f"{message}{shown}"


def duplicate_name(kind: str, name: str, first: str) -> str:
    return f"{kind} `{name}` is already defined at {first}; names are unique per kind"


# --- templates -------------------------------------------------------------------------


def reserved_variable(name: str) -> str:
    return f"variable `{name}` is George's own (`{{{{ {name}.url }}}}` is George's server); name it otherwise"


def bad_variable_name(name: str) -> str:
    return (
        f"variable `{name}`: a variable name is letters, digits and '_' and does not start "
        "with a digit, so steps can write {{ " + name.replace("-", "_") + " }}"
    )


def bad_pattern(name: str, problem: str) -> str:
    return f"variable `{name}`: {problem}"


def backtracking_pattern(name: str, reason: str, seconds: float, setting: str) -> str:
    return (
        f"variable `{name}`: its pattern uses {reason}, which the linear-time engine (RE2) cannot "
        f"run, so values are checked by a backtracking engine for at most {seconds:g} s each, and "
        f"a value that takes longer makes its Job invalid ({setting} sets the time); write the "
        "pattern without it to have every value checked in linear time"
    )


def bad_default(name: str, problem: str) -> str:
    return f"variable `{name}`: its default {problem}"


def duplicate_step(name: str) -> str:
    return f"two steps are named `{name}`; step names are unique in a template"


def unknown_need(step: str, need: str, steps: Iterable[str]) -> str:
    names = list(steps)
    return (
        f"step `{step}` needs `{need}`, which is not a step of this template"
        f"{did_you_mean(need, names)}; {listing('steps', names)}"
    )


def needs_cycle(cycle: Sequence[str]) -> str:
    return f"`needs` makes a cycle: {' → '.join(cycle)}; steps must form a DAG"


def unknown_agent(step: str, agent: str, agents: Iterable[str]) -> str:
    names = list(agents)
    return (
        f"step `{step}`: unknown agent `{agent}`{did_you_mean(agent, names)}; "
        f"{listing('agents', names)}"
    )


def ambiguous(kind: str, name: str) -> str:
    return f"{kind} `{name}` is defined more than once; fix the duplicate first"


def template_syntax(step: str, field: str, problem: str) -> str:
    return f"step `{step}`, `{field}`: template syntax error: {problem}"


def undefined_name(step: str, field: str, name: str, variables: Iterable[str]) -> str:
    names = list(variables)
    return (
        f"step `{step}`, `{field}` uses `{{{{ {name} }}}}`, which is not a variable of this "
        f"template{did_you_mean(name, names)}; {listing('variables', names)}"
    )


def fuzzy_outside_instructions(step: str, field: str, name: str) -> str:
    return (
        f"step `{step}`, `{field}` uses the fuzzy variable `{name}`; fuzzy values may appear "
        "only in `instructions` and `done_when` (give it a `type` to make it strict)"
    )


def not_http(step: str, url: str) -> str:
    return f"step `{step}`: `http.url` {shown(url)} should start with http:// or https://"


def capability_warning(agent: str, what: str) -> str:
    return (
        f"agent `{agent}` is not granted {what}: the step will be Blocked (CapabilityMissing) "
        "until a commit grants it"
    )


# --- jobs ------------------------------------------------------------------------------


def unknown_template(template: str, templates: Iterable[str]) -> str:
    names = list(templates)
    return (
        f"unknown template `{template}`{did_you_mean(template, names)}; "
        f"{listing('templates', names)}"
    )


def invalid_template(template: str, where: str) -> str:
    return f"template `{template}` is invalid (see the errors at {where})"


def unknown_param(name: str, variables: Iterable[str]) -> str:
    names = list(variables)
    return (
        f"unknown parameter `{name}`{did_you_mean(name, names)}; "
        f"{listing('the template variables', names)}"
    )


def missing_param(name: str, description: str) -> str:
    about = f" ({description})" if description else ""
    return f"missing required parameter `{name}`{about}"


def bad_param(name: str, problem: str) -> str:
    return f"parameter `{name}` {problem}"


def param_over_limit(name: str, problem: str) -> str:
    return f"parameter `{name}`: {problem}"


def render_failed(template: str, step: str, field: str, problem: str) -> str:
    if len(problem) > 500:
        problem = problem[:500] + "…"
    return f"template `{template}`, step `{step}`, `{field}` cannot be rendered: {problem}"


def render_crashed(template: str, problem: str) -> str:
    return f"template `{template}` cannot be rendered for this job: {problem[:500]}"


def rendered_at(message: str, where: str) -> str:
    """A render failure, with where the template's string is."""
    return f"{message} (the string is at {where})"


# --- the repository ----------------------------------------------------------------------

_LEFT_OUT = (
    "it is left out of the checkout, so a step that runs or reads it fails; make it a relative "
    "link to a file inside the repository, or remove it"
)


def symlink_outside(link: str, target: str) -> str:
    return f"{link} is a symlink to {target}, outside the repository: {_LEFT_OUT}"


def symlink_outside_via(link: str, target: str, via: str, via_target: str) -> str:
    return (
        f"{link} is a symlink to {target}, which leads outside the repository through {via} "
        f"(a symlink to {via_target}): {_LEFT_OUT}"
    )


# --- limits ----------------------------------------------------------------------------


def over_limit(what: str, limit: str, value: str, about: str, setting: str) -> str:
    return f"{what} (limit `{limit}` = {value}: {about}); raise it with {setting} if this is intended"


def shown(value: Any, size: int = 60) -> str:
    """`value!r`, cut to about `size` characters: a message never repeats a huge value."""
    text = repr(value)
    return text if len(text) <= size else f"{text[: size - 5]}…{text[-4:]} ({len(str(value)):,} characters)"
