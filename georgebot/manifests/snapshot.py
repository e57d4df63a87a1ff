"""What one sync of the manifests yields: a revision, the valid objects and the errors.

The engine consumes a `Snapshot`; pruning follows DESIGN.md: a job missing from the
snapshot is cancelled only if its file is not in `broken_files` (a typo never cancels a
running job); a job in `invalid_jobs` keeps its last valid generation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from georgebot.model.rendered import RenderedJob
from georgebot.model.specs import AgentSpec, TaskTemplate


class ManifestIssue(BaseModel):
    """The one error shape (`validate --json`, `status --json`'s `manifest_errors`)."""

    model_config = ConfigDict(frozen=True)

    file: str  # relative to the repository root; "-" when not known
    line: int | None
    column: int | None
    kind: str  # "-" when not known
    name: str  # "-" when not known
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.kind}/{self.name}: {self.message}"


@dataclass(frozen=True)
class Revision:
    sha: str
    message: str  # the commit's summary line
    committed_at: datetime | None = None


@dataclass(frozen=True)
class Snapshot:
    revision: Revision
    agents: Mapping[str, AgentSpec] = field(default_factory=dict)
    templates: Mapping[str, TaskTemplate] = field(default_factory=dict)
    jobs: Mapping[str, RenderedJob] = field(default_factory=dict)
    job_files: Mapping[str, str] = field(default_factory=dict)  # job name -> file of its document
    invalid_jobs: Mapping[str, ManifestIssue] = field(default_factory=dict)
    broken_files: frozenset[str] = frozenset()  # files that did not parse cleanly
    errors: tuple[ManifestIssue, ...] = ()
    warnings: tuple[ManifestIssue, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.errors
