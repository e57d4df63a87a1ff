"""The JSON Schema of the manifests, for editors (yaml-language-server) to complete and check
while typing. `georgebot schema` prints it; `manifests/george.schema.json` is a copy that a
test keeps equal to it.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Any

from pydantic import Field, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema

from georgebot.config import format_duration
from georgebot.model.specs import AgentSpec, Job, TaskTemplate


class _Generator(GenerateJsonSchema):
    def encode_default(self, dft: Any) -> Any:
        # Defaults as an operator writes them (`10s`), not ISO 8601 (`PT10S`).
        if isinstance(dft, timedelta):
            return format_duration(dft)
        return super().encode_default(dft)


def manifest_schema() -> dict[str, Any]:
    """One of the three kinds, told apart by `kind`, with field names as written in YAML."""
    manifest = Annotated[AgentSpec | TaskTemplate | Job, Field(discriminator="kind")]
    schema = TypeAdapter(manifest).json_schema(
        by_alias=True, mode="validation", schema_generator=_Generator
    )
    schema = _tidy(schema)
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "George manifest",
        "description": "An AgentSpec, a TaskTemplate or a Job (apiVersion george/v1).",
        **schema,
    }


def schema_text() -> str:
    return json.dumps(manifest_schema(), indent=2, sort_keys=True) + "\n"


def _tidy(node: Any) -> Any:
    """Drops the titles pydantic derives from attribute names ("Maxconcurrentsteps"): an
    editor shows the field name already, and the class docstrings say the rest."""
    if isinstance(node, dict):
        return {
            k: _tidy(v)
            for k, v in node.items()
            if not (k == "title" and isinstance(v, str) and "properties" not in node)
        }
    if isinstance(node, list):
        return [_tidy(v) for v in node]
    return node
