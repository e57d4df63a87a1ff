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
from typing import Any

from pydantic import BaseModel, ConfigDict

from georgebot.model.specs import Step


def digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class RenderedJob(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    template: str
    channel: str
    deadline: timedelta | None
    params: dict[str, Any]
    fuzzy: dict[str, str]
    steps: list[Step]

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    @property
    def digest(self) -> str:
        return digest(self.model_dump(mode="json", by_alias=True))

    def step_digest(self, name: str) -> str:
        """Changes when the step's definition, or a fuzzy value it can see, changes."""
        step = self.step(name)
        return digest(
            [step.model_dump(mode="json", by_alias=True), self.fuzzy if step.instructions else None]
        )
