"""`expect.json` of an `http` step: field paths into a JSON document, and what did not match.

`agents/http.py` calls `mismatches` on the decoded response body. A path is a top-level key
or dotted (`user.emails.0.address`); a digit segment indexes a list. Comparison follows JSON
types, so `true` never equals `1`, while `1` equals `1.0`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

MISSING: Any = object()
_SHOWN = 5
_VALUE_CHARS = 120


def field(document: Any, path: str) -> Any:
    """The value at `path`, or MISSING. A top-level key spelled with dots wins over the path."""
    if isinstance(document, dict) and path in document:
        return document[path]
    value = document
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return value


def same(expected: Any, got: Any) -> bool:
    if isinstance(expected, bool) or isinstance(got, bool):
        return type(expected) is type(got) and expected == got
    if isinstance(expected, dict):
        return (
            isinstance(got, dict)
            and expected.keys() == got.keys()
            and all(same(v, got[k]) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(got, list)
            and len(expected) == len(got)
            and all(same(e, g) for e, g in zip(expected, got, strict=True))
        )
    if isinstance(expected, int | float) and isinstance(got, int | float):
        return expected == got
    return type(expected) is type(got) and bool(expected == got)


def mismatches(document: Any, expected: Mapping[str, Any]) -> list[str]:
    """One line per field that differs: "`active`: expected true, got false"."""
    found = []
    for path, want in expected.items():
        got = field(document, path)
        if got is MISSING:
            found.append(f"`{path}`: expected {show(want)}, missing")
        elif not same(want, got):
            found.append(f"`{path}`: expected {show(want)}, got {show(got)}")
    return found


def summary(lines: list[str]) -> str:
    """At most a few lines, so a message stays readable on a card."""
    more = f"; and {len(lines) - _SHOWN} more" if len(lines) > _SHOWN else ""
    return "; ".join(lines[:_SHOWN]) + more


def show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 1] + "…"
