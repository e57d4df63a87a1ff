"""A job resolved against its template: what the engine stores and agents execute.

`manifests.render` produces it from a `Job` and its `TaskTemplate`: strict variables are
rendered into the steps' `run`, `http`, `ask` and `instructions`; fuzzy values stay apart,
to reach an LLM agent marked as given by a person. Digests let the engine see which steps a
commit changed (a new generation) and void approvals bound to an older definition.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict

from georgebot.model.specs import Step


def digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class RenderedJob(BaseModel):
    model_config = ConfigDict(frozen=True, ignored_types=(cached_property,))

    name: str
    template: str
    channel: str
    deadline: timedelta | None
    params: dict[str, Any]
    fuzzy: dict[str, str]
    steps: list[Step]
    allow_self_approval: bool = False  # the template waives the four-eyes rule
    retriers: tuple[str, ...] = ()  # users and user groups who may retry; none: anyone in its channel
    author: str | None = None  # e-mail of the Git author of the job's document: not its approver

    def step(self, name: str) -> Step:
        return self.by_name[name]

    @cached_property
    def by_name(self) -> dict[str, Step]:
        """Steps by name: a pass looks steps up by name for every step of a long job."""
        return {s.name: s for s in self.steps}

    @cached_property
    def needs(self) -> dict[str, frozenset[str]]:
        """Each step's `needs`, by step name (readiness is checked on every pass)."""
        return {s.name: frozenset(s.needs) for s in self.steps}

    @cached_property
    def digest(self) -> str:
        """Changes with the job's definition; not with who last committed its file."""
        return digest(self.model_dump(mode="json", by_alias=True, exclude={"author"}))

    def step_digest(self, name: str) -> str:
        """Changes when the step's definition, or a fuzzy value it can see, changes."""
        return self._step_digests[name]

    @cached_property
    def _step_digests(self) -> dict[str, str]:
        return {
            s.name: digest([s.model_dump(mode="json", by_alias=True), self.fuzzy if s.instructions else None])
            for s in self.steps
        }
