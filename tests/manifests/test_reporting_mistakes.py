"""A repository holding each kind of mistake: every one is reported with its file, line and
object, in words an operator can act on, while the valid documents still load."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from georgebot.manifests.snapshot import Snapshot
from georgebot.manifests.source import ManifestSource
from tests.manifests.helpers import AGENTS, GitRepo, job

TEMPLATE = """\
apiVersion: george/v1
kind: TaskTemplate
metadata: {name: onboard-employee}
spec:
  variables:
    name: {type: string, required: true}
    level: {type: enum, values: [junior, senior], default: junior}
    start: {type: date}
    team: {fuzzy: true}
  steps:
    - name: create-account
      agent: it-helper
      run: [tools/create-account, "{{ name }}", "{{ level }}"]
"""

BROKEN_YAML = """\
apiVersion: george/v1
kind: Job
metadata: {name: onboard-carol}
spec:
  template: onboard-employee
  params: {name: Carol King, team: [unclosed
---
apiVersion: george/v1
kind: Job
metadata: {name: onboard-dave}
spec:
  template: onboard-employee
  params: {name: Dave Diaz, team: sales}
"""

KINDS = """\
apiVersion: george/v1
kind: Jobb
metadata: {name: typo-kind}
spec: {}
---
apiVersion: george/v2
kind: Job
metadata: {name: onboard-erin}
spec:
  template: onboard-employee
  params: {name: Erin Ek}
"""

FIELDS = """\
apiVersion: george/v1
kind: Job
metadata: {name: onboard-frank}
spec:
  tempalte: onboard-employee
  params: {name: Frank Fu}
"""

DUPLICATE = """\
apiVersion: george/v1
kind: Job
metadata: {name: onboard-dave}
spec:
  template: onboard-employee
  params: {name: Dave Again}
"""

JOBS = """\
apiVersion: george/v1
kind: Job
metadata: {name: onboard-gina}
spec:
  template: onboard-employe
  params: {name: Gina Gold}
---
apiVersion: george/v1
kind: Job
metadata: {name: onboard-hank}
spec:
  template: onboard-employee
  params:
    tema: platform
    level: principal
    start: next monday
---
apiVersion: george/v1
kind: Job
metadata: {name: onboard-ivy}
spec:
  template: cyclic
  params: {}
"""

TEMPLATES = """\
apiVersion: george/v1
kind: TaskTemplate
metadata: {name: cyclic}
spec:
  steps:
    - name: a
      agent: it-helpr
      needs: [c]
      run: [tools/create-account]
    - name: b
      agent: it-helper
      needs: [a, nope]
      run: [tools/create-account]
    - name: c
      agent: it-helper
      needs: [b]
      run: [tools/create-account]
---
apiVersion: george/v1
kind: TaskTemplate
metadata: {name: formless}
spec:
  steps:
    - name: nothing
      agent: it-helper
    - name: both
      agent: it-helper
      run: [tools/create-account]
      ask: {message: ok?, approvers: [U01ALEX]}
---
apiVersion: george/v1
kind: TaskTemplate
metadata: {name: leaky}
spec:
  variables:
    name: {type: string}
    team: {fuzzy: true}
  steps:
    - name: create
      agent: it-helper
      run: [tools/create-account, "{{ team }}"]
    - name: greet
      ask:
        message: "Hello {{ nmae }}"
        approvers: [U01ALEX]
    - name: broken
      agent: it-helper
      run: [tools/create-account, "{{ name"]
"""

EXPECTED = [
    ("manifests/broken.yaml", 6, "-", "-", "invalid YAML"),
    ("manifests/dupes.yaml", 3, "Job", "onboard-dave",
     "Job `onboard-dave` is already defined at manifests/broken.yaml:8"),
    ("manifests/fields.yaml", 4, "Job", "onboard-frank",
     "missing required field `template` in `spec`"),
    ("manifests/fields.yaml", 5, "Job", "onboard-frank",
     "unknown field `spec.tempalte` (did you mean `template`?)"),
    ("manifests/jobs.yaml", 5, "Job", "onboard-gina",
     "unknown template `onboard-employe` (did you mean `onboard-employee`?)"),
    ("manifests/jobs.yaml", 13, "Job", "onboard-hank", "missing required parameter `name`"),
    ("manifests/jobs.yaml", 14, "Job", "onboard-hank",
     "unknown parameter `tema` (did you mean `team`?)"),
    ("manifests/jobs.yaml", 15, "Job", "onboard-hank",
     "parameter `level` should be one of junior, senior, not 'principal'"),
    ("manifests/jobs.yaml", 16, "Job", "onboard-hank",
     "parameter `start` should be a date such as 2026-12-01, not 'next monday'"),
    ("manifests/jobs.yaml", 22, "Job", "onboard-ivy", "template `cyclic` is invalid"),
    ("manifests/kinds.yaml", 2, "-", "typo-kind", "unknown kind `Jobb` (did you mean `Job`?)"),
    ("manifests/kinds.yaml", 6, "Job", "onboard-erin",
     "unknown apiVersion `george/v2`: this George reads `george/v1`"),
    ("manifests/templates.yaml", 7, "TaskTemplate", "cyclic",
     "step `a`: unknown agent `it-helpr` (did you mean `it-helper`?)"),
    ("manifests/templates.yaml", 8, "TaskTemplate", "cyclic",
     "`needs` makes a cycle: a → c → b → a"),
    ("manifests/templates.yaml", 12, "TaskTemplate", "cyclic",
     "step `b` needs `nope`, which is not a step of this template"),
    ("manifests/templates.yaml", 24, "TaskTemplate", "formless",
     "`spec.steps[0]`: a step needs exactly one of run, http, ask or instructions"),
    ("manifests/templates.yaml", 26, "TaskTemplate", "formless",
     "`spec.steps[1]`: a step has exactly one form, this one has run and ask"),
    ("manifests/templates.yaml", 41, "TaskTemplate", "leaky",
     "step `create`, `run[1]` uses the fuzzy variable `team`; fuzzy values may appear only in"),
    ("manifests/templates.yaml", 44, "TaskTemplate", "leaky",
     "step `greet`, `ask.message` uses `{{ nmae }}`, which is not a variable of this template "
     "(did you mean `name`?)"),
    ("manifests/templates.yaml", 48, "TaskTemplate", "leaky",
     "step `broken`, `run[1]`: template syntax error"),
]


@pytest.fixture
def snapshot(repo: GitRepo, make_source: Callable[..., ManifestSource]) -> Snapshot:
    repo.write("manifests/agents.yaml", AGENTS)
    repo.write("manifests/onboard.yaml", TEMPLATE)
    repo.write("manifests/broken.yaml", BROKEN_YAML)
    repo.write("manifests/kinds.yaml", KINDS)
    repo.write("manifests/fields.yaml", FIELDS)
    repo.write("manifests/dupes.yaml", DUPLICATE)
    repo.write("manifests/jobs.yaml", JOBS)
    repo.write("manifests/templates.yaml", TEMPLATES)
    repo.commit("every mistake")
    return make_source(repo.root).sync()


def test_every_mistake_is_reported_at_its_file_and_line(snapshot: Snapshot):
    found = [(e.file, e.line, e.kind, e.name, e.message) for e in snapshot.errors]

    for file, line, kind, name, words in EXPECTED:
        matches = [f for f in found if f[:4] == (file, line, kind, name) and words in f[4]]
        assert matches, f"no error {file}:{line} {kind}/{name}: {words!r} in\n" + "\n".join(
            map(str, snapshot.errors)
        )
    assert len(found) == len(EXPECTED), "\n".join(map(str, snapshot.errors))


def test_the_valid_documents_still_load(snapshot: Snapshot):
    assert set(snapshot.agents) == {"it-helper"}
    assert set(snapshot.templates) == {"onboard-employee"}
    assert set(snapshot.jobs) == set()  # onboard-dave is defined twice


def test_jobs_whose_documents_were_identified_keep_their_last_generation(snapshot: Snapshot):
    assert set(snapshot.invalid_jobs) == {
        "onboard-dave", "onboard-erin", "onboard-frank", "onboard-gina", "onboard-hank",
        "onboard-ivy",
    }
    assert snapshot.invalid_jobs["onboard-gina"].line == 5


def test_files_with_an_unidentified_document_are_broken(snapshot: Snapshot):
    assert snapshot.broken_files == {"manifests/broken.yaml", "manifests/kinds.yaml"}


def test_an_agent_missing_a_capability_is_a_warning_not_an_error(
    repo: GitRepo, make_source: Callable[..., ManifestSource]
):
    repo.write("manifests/agents.yaml", AGENTS)
    repo.write("manifests/onboard.yaml", TEMPLATE.replace(
        "run: [tools/create-account", "run: [tools/delete-account"
    ))
    repo.commit()

    snapshot = make_source(repo.root).sync()

    assert snapshot.valid
    assert "onboard-employee" in snapshot.templates
    [warning] = snapshot.warnings
    assert warning.line == 13
    assert "agent `it-helper` is not granted `tools/delete-account` (shell)" in warning.message


def test_a_template_defined_twice_makes_its_jobs_invalid_not_either_version(
    repo: GitRepo, make_source: Callable[..., ManifestSource]
):
    repo.write("manifests/agents.yaml", AGENTS)
    repo.write("manifests/a.yaml", TEMPLATE)
    repo.write("manifests/b.yaml", TEMPLATE)
    repo.write("manifests/job.yaml", job("onboard-alice"))
    repo.commit()

    snapshot = make_source(repo.root).sync()

    assert [str(e) for e in snapshot.errors] == [
        "manifests/b.yaml:3: TaskTemplate/onboard-employee: TaskTemplate `onboard-employee` is "
        "already defined at manifests/a.yaml:1; names are unique per kind",
        "manifests/job.yaml:5: Job/onboard-alice: TaskTemplate `onboard-employee` is defined "
        "more than once; fix the duplicate first",
    ]
    assert set(snapshot.invalid_jobs) == {"onboard-alice"}
    assert not snapshot.templates
