"""Benchmark of the manifests layer: how much an incremental sync saves over a cold load.

Builds a Git repository of 1,000 jobs over 50 templates in a temporary folder, then times a
cold load (a new `ManifestSource`), a sync of an unchanged revision, and a sync after a commit
that changes one job file (and, for information, one template file), each also as a ratio of
the cold load. Run it from the repository root:

    .venv/bin/python bench/manifests.py [--jobs 1000] [--templates 50]

Exits 1 when a target is missed: unchanged sync under 1% of the cold load, one changed file
under 5%.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from georgebot.manifests.source import ManifestSource

TARGETS = {"unchanged revision": 0.01, "one job file changed": 0.05}

AGENTS = """\
apiVersion: george/v1
kind: AgentSpec
metadata: {name: it-helper}
spec:
  capabilities:
    - shell: {commands: [tools/create-account, tools/order-laptop]}
    - http: {hosts: [127.0.0.1]}
    - slack: {channels: ["#it"]}
---
apiVersion: george/v1
kind: AgentSpec
metadata: {name: concierge}
spec:
  model: claude-sonnet-4-5
  capabilities:
    - slack: {channels: ["#general"]}
"""

TEMPLATE = """\
apiVersion: george/v1
kind: TaskTemplate
metadata:
  name: process-{n}
  labels: {{team: team-{n}}}
spec:
  description: Benchmark process number {n}.
  channel: "#ops-{n}"
  variables:
    name: {{type: string, required: true, pattern: "^[A-Za-z .'-]+$", max: 80}}
    start: {{type: date, required: true}}
    level: {{type: enum, values: [junior, senior], default: junior}}
    seats: {{type: int, min: 1, max: 50, default: 1}}
    team: {{fuzzy: true, description: the team they join}}
  steps:
    - name: create-account
      agent: it-helper
      run: [tools/create-account, "{{{{ name }}}}", --start, "{{{{ start }}}}"]
      retries: 2
      backoff: 10s
    - name: directory-check
      agent: it-helper
      needs: [create-account]
      http:
        url: "http://127.0.0.1:8080/healthz?user={{{{ name | urlencode }}}}"
        expect: {{status: 200, json: {{ok: true}}}}
    - name: order-laptop
      agent: it-helper
      needs: [create-account]
      run: [tools/order-laptop, "{{{{ name }}}}", --level, "{{{{ level }}}}"]
    - name: laptop-ready
      needs: [order-laptop]
      ask:
        channel: "#it"
        message: "{{{{ seats }}}} {{{{ level }}}} laptop(s) for {{{{ name }}}}: ready?"
        approvers: [U01ALEX]
    - name: welcome
      agent: concierge
      needs: [laptop-ready, directory-check]
      instructions: Welcome {{{{ name }}}} ({{{{ team }}}}), who starts on {{{{ start }}}}.
      done_when: A welcome for {{{{ name }}}} is posted in #general.
"""

JOB = """\
apiVersion: george/v1
kind: Job
metadata: {{name: job-{n:04d}}}
spec:
  template: process-{template}
  params:
    name: Person {words}
    start: 2026-12-01
    level: {level}
    seats: {seats}
    team: {team}
  deadline: 7d
"""


def job_text(n: int, templates: int, revision: int = 0) -> str:
    words = " ".join(chr(ord("A") + int(d)) + "x" for d in f"{n:04d}")
    return JOB.format(
        n=n, template=n % templates, words=words, level=("junior", "senior")[n % 2],
        seats=1 + (n + revision) % 50, team=f"the team of project {n % 97}, revision {revision}",
    )


class Repository:
    """A throwaway Git repository; commits go through the git command line."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {
            **os.environ, "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
            "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
        }
        root.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> None:
        subprocess.run(["git", "-c", "commit.gpgsign=false", *args], cwd=self.root,
                       env=self.env, check=True, capture_output=True)

    def write(self, path: str, text: str) -> None:
        file = self.root / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--templates", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="george-bench-") as tmp:
        repo = Repository(Path(tmp, "repo"))
        repo.write("manifests/agents.yaml", AGENTS)
        for n in range(args.templates):
            repo.write(f"manifests/templates/process-{n}.yaml", TEMPLATE.format(n=n))
        for n in range(args.jobs):
            repo.write(f"manifests/jobs/job-{n:04d}.yaml", job_text(n, args.templates))
        repo.commit("benchmark manifests")
        home = Path(tmp, "home")

        colds = []
        for _ in range(3):
            with ManifestSource(str(repo.root), home=home) as fresh:
                colds.append(timed(fresh.sync))
                snapshot = fresh.last
        assert snapshot is not None and snapshot.valid, snapshot and snapshot.errors[:3]
        assert len(snapshot.jobs) == args.jobs

        with ManifestSource(str(repo.root), home=home) as source:
            source.sync()
            unchanged = [timed(source.sync) for _ in range(args.rounds * 4)]
            one_job, one_template = [], []
            for r in range(1, args.rounds + 1):
                n = (r * 37) % args.jobs
                repo.write(f"manifests/jobs/job-{n:04d}.yaml", job_text(n, args.templates, r))
                repo.commit(f"change job {n}")
                parsed = source.parsed_files
                one_job.append(timed(source.sync))
                assert source.parsed_files == parsed + 1
                t = r % args.templates
                text = TEMPLATE.format(n=t).replace("Benchmark process", f"Process (r{r})")
                repo.write(f"manifests/templates/process-{t}.yaml", text)
                repo.commit(f"change template {t}")
                one_template.append(timed(source.sync))

    cold = statistics.median(colds)
    rows = {
        "cold load": cold,
        "unchanged revision": statistics.median(unchanged),
        "one job file changed": statistics.median(one_job),
        "one template changed": statistics.median(one_template),
    }
    print(f"{args.jobs} jobs over {args.templates} templates, {os.cpu_count()} CPUs; "
          "medians of repeated runs")
    print(f"{'':<24}{'time':>10}{'of cold':>10}   target")
    missed = False
    for name, seconds in rows.items():
        ratio = seconds / cold
        target = TARGETS.get(name)
        verdict = ""
        if target is not None:
            met = ratio < target
            missed |= not met
            verdict = f"< {target:.0%}  {'met' if met else 'MISSED'}"
        print(f"{name:<24}{seconds * 1000:>8.1f}ms{ratio:>10.2%}   {verdict}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
