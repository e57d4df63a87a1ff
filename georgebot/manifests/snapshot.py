"""What one sync of the manifests yields: a revision, the valid objects and the errors.

The engine consumes a `Snapshot`; pruning follows DESIGN.md: a job missing from the
snapshot is cancelled only if its file is not in `broken_files` (a typo never cancels a
running job); a job in `invalid_jobs` keeps its last valid generation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
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

    def sort_key(self) -> tuple[str, int, int]:
        """Errors are listed by file, then line, then column."""
        return self.file, self.line or 0, self.column or 0


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
    job_authors: Mapping[str, str] = field(default_factory=dict)  # job name -> e-mail of its last committer
    invalid_jobs: Mapping[str, ManifestIssue] = field(default_factory=dict)
    broken_files: frozenset[str] = frozenset()  # files that did not parse cleanly
    errors: tuple[ManifestIssue, ...] = ()
    warnings: tuple[ManifestIssue, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.errors


def with_errors(snapshot: Snapshot, errors: Iterable[ManifestIssue]) -> Snapshot:
    """`snapshot` with errors found outside the manifests (symlinks of the revision) merged in
    order; they name no job, so they change neither `invalid_jobs` nor `broken_files`."""
    extra = tuple(errors)
    if not extra:
        return snapshot
    merged = tuple(sorted((*snapshot.errors, *extra), key=ManifestIssue.sort_key))
    return replace(snapshot, errors=merged)
