"""Checks across documents, and the `Snapshot` they produce.

`source.py` hands a `Validator` every parsed file of a revision; the validator finds
duplicate names, unknown templates and agents, bad `needs`, variables used where they may
not be, renders each job, and sorts what is valid from what is not. It keeps what it worked
out per template and per job, keyed by the parsed objects (reused for unchanged files), so a
new revision costs little more than its changed files.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from georgebot.errors import ManifestError
from georgebot.manifests import messages, patterns
from georgebot.manifests.limits import DEFAULT, LimitExceeded, Limits, env_name
from georgebot.manifests.parsing import Document, ParsedFile, YamlPath
from georgebot.manifests.render import (
    Problem,
    RenderError,
    coerce,
    names_in,
    names_or_none,
    render_job,
    step_texts,
)
from georgebot.manifests.snapshot import ManifestIssue, Revision, Snapshot
from georgebot.model.rendered import RenderedJob
from georgebot.model.specs import DEFAULT_URL, SELF, AgentSpec, Job, Step, StepForm, TaskTemplate, url_grant

_Found = list[tuple[YamlPath, str]]
log = logging.getLogger(__name__)


@dataclass
class _TemplateCheck:
    template: TaskTemplate
    problems: _Found
    warnings: _Found = field(default_factory=list)


@dataclass
class _JobResult:
    document: Document
    template: TaskTemplate
    rendered: RenderedJob | None
    issues: tuple[ManifestIssue, ...]


@dataclass
class _Pass:
    """What one `Validator.snapshot` call accumulates."""

    errors: list[ManifestIssue] = field(default_factory=list)
    warnings: list[ManifestIssue] = field(default_factory=list)


class Validator:
    """Turns the parsed files of a revision into a `Snapshot`; reuse one across revisions."""

    def __init__(
        self, default_channel: str, *, limits: Limits = DEFAULT, george_url: str = DEFAULT_URL
    ) -> None:
        self.default_channel = default_channel
        self.limits = limits
        self.george_url = george_url
        self._templates: dict[str, _TemplateCheck] = {}
        self._jobs: dict[str, _JobResult] = {}
        self.renders = 0  # jobs rendered so far: the cache keeps this low on a new revision

    def snapshot(self, revision: Revision, files: Iterable[ParsedFile]) -> Snapshot:
        run = _Pass()
        named, broken = _collect(files, run)
        unique = _unique(named["AgentSpec"], AgentSpec)
        agents = {name: own_server(agent, self.george_url) for name, agent in unique.items()}
        templates, template_docs = self._templates_of(named, agents, run)
        jobs, invalid, job_files = self._jobs_of(named, templates, template_docs, run)
        return Snapshot(
            revision=revision,
            agents=agents,
            templates=templates,
            jobs=jobs,
            job_files=job_files,
            invalid_jobs=invalid,
            broken_files=frozenset(broken),
            errors=tuple(sorted(run.errors, key=ManifestIssue.sort_key)),
            warnings=tuple(sorted(run.warnings, key=ManifestIssue.sort_key)),
        )

    def _templates_of(
        self, named: _Named, agents: Mapping[str, AgentSpec], run: _Pass
    ) -> tuple[dict[str, TaskTemplate], dict[str, Document]]:
        """(valid templates, the document of each template defined once)."""
        templates: dict[str, TaskTemplate] = {}
        docs_by_name: dict[str, Document] = {}
        for name, docs in named["TaskTemplate"].items():
            template = docs[0].manifest
            if len(docs) == 1 and isinstance(template, TaskTemplate):
                docs_by_name[name] = docs[0]
                if self._check_template(docs[0], template, agents, named["AgentSpec"], run):
                    templates[name] = template
        self._templates = {n: c for n, c in self._templates.items() if n in docs_by_name}
        return templates, docs_by_name

    def _jobs_of(
        self,
        named: _Named,
        templates: Mapping[str, TaskTemplate],
        template_docs: Mapping[str, Document],
        run: _Pass,
    ) -> tuple[dict[str, RenderedJob], dict[str, ManifestIssue], dict[str, str]]:
        """(rendered jobs, invalid jobs with their first error, the file of every job)."""
        jobs: dict[str, RenderedJob] = {}
        invalid: dict[str, ManifestIssue] = {}
        job_files: dict[str, str] = {}
        results: dict[str, _JobResult] = {}
        for name, docs in named["Job"].items():
            doc = docs[0]
            job_files[name] = doc.file
            if len(docs) > 1:
                invalid[name] = doc.issue(("metadata", "name"), messages.ambiguous("Job", name))
                continue
            if not isinstance(doc.manifest, Job):
                invalid[name] = doc.issues[0]
                continue
            template = templates.get(doc.manifest.spec.template)
            if template is None:
                message = self._template_missing(
                    doc.manifest.spec.template, named["TaskTemplate"], template_docs
                )
                invalid[name] = doc.issue(("spec", "template"), message)
                run.errors.append(invalid[name])
                continue
            results[name] = result = self._render(
                doc, doc.manifest, template, template_docs[doc.manifest.spec.template]
            )
            if result.rendered is not None:
                jobs[name] = result.rendered
            else:
                run.errors.extend(result.issues)
                invalid[name] = result.issues[0]
        self._jobs = results
        return jobs, invalid, job_files

    def _check_template(
        self,
        doc: Document,
        template: TaskTemplate,
        agents: Mapping[str, AgentSpec],
        agent_docs: Mapping[str, list[Document]],
        run: _Pass,
    ) -> bool:
        """True when the template is valid; its errors and capability warnings go to `run`.
        What the template says on its own is cached; what depends on agents is cheap."""
        cached = self._templates.get(template.metadata.name)
        if cached is None or cached.template is not template:
            cached = _TemplateCheck(template, *_template_problems(template, self.limits))
            self._templates[template.metadata.name] = cached
        problems = list(cached.problems)
        run.warnings.extend(doc.issue(path, message) for path, message in cached.warnings)
        for index, step in enumerate(template.spec.steps):
            if step.agent is None:
                continue
            where: YamlPath = ("spec", "steps", index, "agent")
            if len(agent_docs.get(step.agent, ())) > 1:
                problems.append((where, messages.ambiguous("AgentSpec", step.agent)))
            elif step.agent not in agents:
                problems.append((where, messages.unknown_agent(step.name, step.agent, agents)))
            else:
                run.warnings.extend(
                    doc.issue(("spec", "steps", index, *path), message)
                    for path, message in _capability_gaps(step, agents[step.agent])
                )
        run.errors.extend(doc.issue(path, message) for path, message in problems)
        return not problems

    @staticmethod
    def _template_missing(
        name: str, docs: Mapping[str, list[Document]], valid: Mapping[str, Document]
    ) -> str:
        if name in valid:
            return messages.invalid_template(name, f"{valid[name].file}:{valid[name].line}")
        if len(docs.get(name, ())) > 1:
            return messages.ambiguous("TaskTemplate", name)
        if name in docs:
            first = docs[name][0]
            return messages.invalid_template(name, f"{first.file}:{first.line}")
        return messages.unknown_template(name, docs)

    def _render(
        self, doc: Document, job: Job, template: TaskTemplate, template_doc: Document
    ) -> _JobResult:
        cached = self._jobs.get(job.metadata.name)
        if cached is not None and cached.document is doc and cached.template is template:
            return cached
        self.renders += 1
        try:
            rendered = render_job(job, template, self.default_channel, limits=self.limits,
                                  george_url=self.george_url)
        except RenderError as e:
            issues = tuple(doc.issue(p.path, _located(p, template_doc)) for p in e.problems)
            return _JobResult(doc, template, None, issues)
        except Exception as e:  # a bug must cost this job, never the sync
            log.exception("rendering job %s failed", job.metadata.name)
            message = messages.render_crashed(template.metadata.name, f"{type(e).__name__}: {e}")
            return _JobResult(doc, template, None, (doc.issue(("spec", "template"), message),))
        return _JobResult(doc, template, rendered, ())


def _located(problem: Problem, template_doc: Document) -> str:
    """A render failure's message, with the file and line of the template's string."""
    if problem.step is None:
        return problem.message
    line, _ = template_doc.locate(("spec", "steps", problem.step, *problem.text))
    return messages.rendered_at(problem.message, f"{template_doc.file}:{line}")


_KINDS = ("AgentSpec", "TaskTemplate", "Job")
_SCHEMES = ("http://", "https://")
_Named = dict[str, dict[str, list[Document]]]  # kind -> name -> its documents, in file order


def _collect(files: Iterable[ParsedFile], run: _Pass) -> tuple[_Named, set[str]]:
    """Documents by kind and name, the broken files, and parse and duplicate-name errors."""
    named: _Named = {kind: {} for kind in _KINDS}
    broken: set[str] = set()
    for parsed in sorted(files, key=lambda f: f.file):
        if parsed.broken:
            broken.add(parsed.file)
        for doc in parsed.documents:
            run.errors.extend(doc.issues)
            if doc.kind is not None and doc.name is not None:
                named[doc.kind].setdefault(doc.name, []).append(doc)
    for kind, by_name in named.items():
        for name, docs in by_name.items():
            first = f"{docs[0].file}:{docs[0].line}"
            message = messages.duplicate_name(kind, name, first)
            run.errors.extend(doc.issue(("metadata", "name"), message) for doc in docs[1:])
    return named, broken


OWN = "george"
"""Templates' own namespace: `{{ george.url }}` is George's own server."""


def own_server(agent: AgentSpec, george_url: str) -> AgentSpec:
    """The agent with its `http` grant `self` as George's own server: exactly its origin."""
    if not any(cap.http and SELF in cap.http.hosts for cap in agent.spec.capabilities):
        return agent
    mine = url_grant(george_url) or SELF
    capabilities = [
        cap.model_copy(update={"http": cap.http.model_copy(
            update={"hosts": [mine if h == SELF else h for h in cap.http.hosts]})}) if cap.http else cap
        for cap in agent.spec.capabilities
    ]
    return agent.model_copy(update={"spec": agent.spec.model_copy(update={"capabilities": capabilities})})


def _unique(named: Mapping[str, list[Document]], kind: type[AgentSpec]) -> dict[str, AgentSpec]:
    return {
        name: docs[0].manifest
        for name, docs in named.items()
        if len(docs) == 1 and isinstance(docs[0].manifest, kind)
    }


def _template_problems(template: TaskTemplate, limits: Limits) -> tuple[_Found, _Found]:
    """(errors, warnings) of a template on its own (agents aside): cached per template object."""
    body = template.spec
    found: _Found = []
    warned: _Found = []
    for name, variable in body.variables.items():
        if not name.isidentifier():
            found.append((("spec", "variables", name), messages.bad_variable_name(name)))
        elif name == OWN:
            found.append((("spec", "variables", name), messages.reserved_variable(name)))
        if variable.pattern is not None and not variable.fuzzy:
            where: YamlPath = ("spec", "variables", name, "pattern")
            try:
                check = patterns.checker(variable.pattern)
            except ValueError as e:
                found.append((where, messages.bad_pattern(name, str(e))))
                continue
            if not check.linear:
                warned.append((where, messages.backtracking_pattern(
                    name, check.reason, limits.pattern_seconds, env_name("pattern_seconds")
                )))
        if variable.default is not None and not variable.fuzzy:
            try:
                coerce(variable, variable.default, limits)
            except LimitExceeded as e:
                found.append((("spec", "variables", name, "default"), messages.bad_default(name, e.message)))
            except ValueError as e:
                path: YamlPath = ("spec", "variables", name, "default")
                found.append((path, messages.bad_default(name, str(e))))
    steps = _step_indexes(body.steps, found)
    found.extend(_need_problems(body.steps, steps))
    fuzzy = {name for name, v in body.variables.items() if v.fuzzy}
    for index, step in enumerate(body.steps):
        url = step.http.url if step.http is not None else ""
        if url and "{" not in url.split("/", 1)[0] and not url.startswith(_SCHEMES):
            path = ("spec", "steps", index, "http", "url")
            found.append((path, messages.not_http(step.name, url)))
        for text in step_texts(step):
            path = ("spec", "steps", index, *text.path)
            try:
                names = names_in(text.text)
            except ManifestError as e:
                found.append((path, messages.template_syntax(step.name, text.field, e.message)))
                continue
            for name in sorted(names - {OWN}):
                if name not in body.variables:
                    message = messages.undefined_name(step.name, text.field, name, body.variables)
                    found.append((path, message))
                elif name in fuzzy and not text.fuzzy_allowed:
                    message = messages.fuzzy_outside_instructions(step.name, text.field, name)
                    found.append((path, message))
    return found, warned


def _step_indexes(steps: Sequence[Step], found: _Found) -> dict[str, int]:
    indexes: dict[str, int] = {}
    for index, step in enumerate(steps):
        if step.name in indexes:
            found.append((("spec", "steps", index, "name"), messages.duplicate_step(step.name)))
        else:
            indexes[step.name] = index
    return indexes


def _need_problems(steps: Sequence[Step], indexes: Mapping[str, int]) -> _Found:
    found: _Found = []
    for index, step in enumerate(steps):
        for n, need in enumerate(step.needs):
            if need not in indexes:
                path: YamlPath = ("spec", "steps", index, "needs", n)
                found.append((path, messages.unknown_need(step.name, need, indexes)))
    # Depth-first search, with a stack of its own (a chain of 10,000 steps is deeper than
    # Python recurses); a step met again while still on the path closes a cycle.
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    reported: set[frozenset[str]] = set()
    for root in indexes:
        if root in state:
            continue
        state[root] = 1
        trail = [root]
        pending = [iter(steps[indexes[root]].needs)]
        while pending:
            following: str | None = next(pending[-1], None)
            if following is None:
                pending.pop()
                state[trail.pop()] = 2
                continue
            need = following
            if need not in indexes:
                continue
            if state.get(need) == 1:
                cycle = [*trail[trail.index(need):], need]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    first = min(cycle, key=lambda s: indexes[s])
                    where: YamlPath = ("spec", "steps", indexes[first], "needs")
                    start = cycle.index(first)
                    ordered = [*cycle[start:-1], *cycle[:start], first]
                    found.append((where, messages.needs_cycle(ordered)))
            elif need not in state:
                state[need] = 1
                trail.append(need)
                pending.append(iter(steps[indexes[need]].needs))
    return found


def _capability_gaps(step: Step, agent: AgentSpec) -> _Found:
    """What the step will ask of its agent that the agent is not granted (warnings only:
    capabilities are checked when the step runs, so a later commit may grant them)."""
    body = agent.spec
    name = agent.metadata.name
    gaps: _Found = []
    form = step.form
    if form is StepForm.RUN and step.run and names_or_none(step.run[0]) == frozenset():
        if step.run[0] not in body.commands:
            gaps.append((("run", 0), messages.capability_warning(name, f"`{step.run[0]}` (shell)")))
    elif form is StepForm.HTTP and step.http is not None:
        url = step.http.url
        host = _host(url)
        wanted = url_grant(url)  # None while the port is still a template expression
        if host and "{" not in host and (
            not body.allows_url(url) if wanted is not None else not body.allows_host(host)
        ):
            what = f"`{wanted or host}` (http)"
            gaps.append((("http", "url"), messages.capability_warning(name, what)))
    elif form is StepForm.ASK and step.ask is not None and step.ask.channel:
        channel = step.ask.channel
        if names_or_none(channel) == frozenset() and channel not in body.channels:
            what = f"`{channel}` (slack)"
            gaps.append((("ask", "channel"), messages.capability_warning(name, what)))
    return gaps


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""
