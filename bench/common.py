"""What the engine benchmarks share: a manifest source that serves one snapshot, and jobs of
chained `true` steps built in code (no Git), run by an agent allowed exactly `true`."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from georgebot.manifests.snapshot import Revision, Snapshot
from georgebot.model.rendered import RenderedJob
from georgebot.model.specs import AgentSpec, Step


@dataclass
class Source:
    """The engine's `ManifestPort`: always the same snapshot; the checkout is an empty folder
    under `root` (the steps run `true`: they need no files, and an unconfined attempt copies
    its checkout)."""

    snapshot: Snapshot
    root: Path

    def sync(self) -> Snapshot:
        return self.snapshot

    def checkout(self, sha: str) -> Path:
        folder = self.root / "checkout"
        folder.mkdir(exist_ok=True)
        return folder

    def prune_checkouts(self, keep: set[str]) -> int:
        return 0


def agent(max_steps: int | None = None) -> AgentSpec:
    spec: dict[str, object] = {"capabilities": [{"shell": {"commands": ["true"]}}]}
    if max_steps is not None:
        spec["maxConcurrentSteps"] = max_steps
    return AgentSpec.model_validate(
        {"apiVersion": "george/v1", "kind": "AgentSpec", "metadata": {"name": "bench"}, "spec": spec}
    )


def chained(name: str, length: int) -> RenderedJob:
    """A job of `length` `true` steps, each needing the one before."""
    steps = [
        Step.model_validate(
            {"name": f"s{k}", "agent": "bench", "run": ["true"], "needs": [f"s{k - 1}"] if k else []}
        )
        for k in range(length)
    ]
    return RenderedJob(
        name=name, template="bench", channel="#bench", deadline=None, params={}, fuzzy={}, steps=steps
    )


def chains(jobs: int, length: int, *, sha: str = "b" * 40, max_steps: int | None = None) -> Snapshot:
    """`jobs` jobs named job-0, job-1, … of `length` chained steps each."""
    rendered = {f"job-{i}": chained(f"job-{i}", length) for i in range(jobs)}
    return Snapshot(
        Revision(sha, "bench"),
        agents={"bench": agent(max_steps)},
        jobs=rendered,
        job_files={n: "manifests/bench.yaml" for n in rendered},
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def table(rows: list[tuple[str, ...]]) -> None:
    """Columns aligned over the rows of 2 cells or more; a 1-cell row is a heading."""
    cells = [r for r in rows if len(r) > 1]
    widths = [max(len(r[i]) for r in cells if len(r) > i) for i in range(max(map(len, cells)))]
    for row in rows:
        if len(row) == 1:
            print(row[0])
            continue
        out = [c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)]
        print("  ".join(out).rstrip())


def finish(missed: list[str], *, check: bool) -> None:
    """Names the missed targets; with `--check`, a miss exits 1."""
    if missed:
        print(f"missed: {'; '.join(missed)}")
    if check and missed:
        sys.exit(1)
