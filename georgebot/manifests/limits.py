"""The budgets every manifest document is read, checked and rendered under, in one place.

`parsing.py` (file size, documents, depth, nodes, value size, steps), `templating.py` and
`render.py` (rendered size and render work, per job) and `patterns.py` (the time limit of the
backtracking engine) read a `Limits`; `source.ManifestSource` and `validation.Validator` are
given one (the defaults when none is). Work is counted, not timed, so a commit validates the
same on a busy machine; only patterns the linear-time engine cannot run use a clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from georgebot.errors import ConfigError, ManifestError
from georgebot.manifests import messages

ENV_PREFIX = "GEORGE_LIMIT_"

MAX_INT_DIGITS = 4300
"""Numbers a template computes stay below this many digits: Python refuses to print longer
ones anyway (`sys.get_int_max_str_digits`), and their arithmetic gets slow. Not a setting."""


def _about(what: str, unit: str) -> dict[str, str]:
    return {"what": what, "unit": unit}


@dataclass(frozen=True)
class Limits:
    """The defaults suit a 200-person company's processes (a 10,000-step template loads). Each
    field is set by a variable `GEORGE_LIMIT_<FIELD>`, e.g. `GEORGE_LIMIT_FILE_BYTES=4194304`:
    `from_environment` reads them from the mapping its caller passes."""

    file_bytes: int = field(default=1 << 20, metadata=_about("size of a manifest file", "bytes"))
    documents: int = field(default=10_000, metadata=_about("documents in one file", "documents"))
    depth: int = field(default=64, metadata=_about("nesting depth of a document", "levels"))
    nodes: int = field(default=100_000, metadata=_about(
        "values in one document (keys aside), an alias counting as the values it repeats", "values"
    ))
    value_chars: int = field(default=65_536, metadata=_about("length of one YAML value", "characters"))
    steps: int = field(default=10_000, metadata=_about("steps in one template", "steps"))
    rendered_chars: int = field(default=262_144, metadata=_about(
        "characters one template string renders to", "characters"
    ))
    job_rendered_chars: int = field(default=8_388_608, metadata=_about(
        "characters rendered for one job, all its strings together", "characters"
    ))
    render_work: int = field(default=1_000_000, metadata=_about("render work of one job", "units"))
    # A loop iteration costs 1; a call, filter, test or operator 1 plus the characters or
    # items it reads and makes. Counted, never timed.
    pattern_seconds: float = field(default=0.1, metadata=_about(
        "time to check one value against a pattern the linear-time engine cannot run", "seconds"
    ))

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Limits:
        """The defaults, with each `GEORGE_LIMIT_<FIELD>` found in `environ` (the caller
        passes the settings' view of the environment). Raises ConfigError for a bad value."""
        values: dict[str, float] = {}
        for item in dataclasses.fields(cls):
            raw = environ.get(env_name(item.name))
            if raw is None or raw.strip() == "":
                continue
            try:
                value: float = float(raw) if item.type == "float" else int(raw.replace("_", ""))
            except ValueError:
                value = -1
            if value <= 0:
                raise ConfigError(
                    f"{env_name(item.name)}={raw!r} is not a positive "
                    f"{'number' if item.type == 'float' else 'whole number'} of "
                    f"{item.metadata['unit']}"
                )
            values[item.name] = value
        return cls(**values)  # type: ignore[arg-type]


DEFAULT = Limits()


def env_name(limit: str) -> str:
    return ENV_PREFIX + limit.upper()


def describe(limit: str) -> str:
    """`file_bytes` → what it bounds, as README's table says it."""
    return str(_field(limit).metadata["what"])


def unit(limit: str) -> str:
    return str(_field(limit).metadata["unit"])


def _field(limit: str) -> dataclasses.Field[object]:
    for item in dataclasses.fields(Limits):
        if item.name == limit:
            return item
    raise KeyError(limit)


class LimitExceeded(ManifestError):
    """A document, a template or a job went over one of the `Limits`. `limit` is the field's
    name, `value` its setting; the message says what went over and how to raise it."""

    def __init__(self, limit: str, value: float, what: str) -> None:
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        super().__init__(
            messages.over_limit(what, limit, f"{shown} {unit(limit)}", describe(limit), env_name(limit))
        )
        self.limit = limit
        self.value = value
        self.what = what
