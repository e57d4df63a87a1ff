"""Read-only views for `status`, `audit`, the Slack cards and App Home.

These only read: `georgebot status` and `audit` are safe beside a running `georgebot run`.
"""

from __future__ import annotations

from collections.abc import Sequence

from georgebot.model.specs import AgentSpec
from georgebot.model.status import StepStatus
from georgebot.model.views import AgentView, JobView, StatusView, StepView, Usage, WaitView
from georgebot.store.repository import Store
from georgebot.store.shapes import RunState


def job_view(
    run: RunState,
    usage: dict[tuple[int, str], Usage] | None = None,
    approved: dict[str, list[str]] | None = None,
) -> JobView:
    usage = usage or {}
    names = {s.name for s in run.spec.steps}
    steps = []
    for state in run.steps:
        if state.name not in names:
            continue
        spec = run.spec.step(state.name)
        waiting = None
        if state.waits and state.status is StepStatus.WAITING:
            w = state.waits
            waiting = WaitView(
                channel=w.channel,
                text=w.text,
                approvers=w.approvers,
                quorum=w.quorum,
                approved_by=tuple((approved or {}).get(w.request, [])),
                kind=w.kind,
                request=w.request,
                escalated_to=w.escalate_to if w.escalated else (),
            )
        steps.append(
            StepView(
                name=state.name,
                form=spec.form.value,
                status=state.status,
                reason=state.reason,
                message=state.message,
                attempts=state.attempts,
                needs=tuple(spec.needs),
                agent=spec.agent,
                next_attempt_at=state.next_attempt_at,
                started_at=state.started_at,
                finished_at=state.finished_at,
                waiting=waiting,
                usage=usage.get((run.id, state.name), Usage()),
                replica=state.lease_owner if state.status is StepStatus.RUNNING else None,
            )
        )
    total = sum((s.usage for s in steps), Usage())
    return JobView(
        name=run.name,
        template=run.template,
        status=run.status,
        generation=run.generation,
        channel=run.channel,
        revision=run.revision,
        steps=tuple(steps),
        created_at=run.created_at,
        updated_at=run.updated_at,
        conditions=run.conditions,
        usage=total,
        run_id=run.id,
    )


def job_views(store: Store, runs: Sequence[RunState]) -> list[JobView]:
    usage = store.usage([r.id for r in runs])
    approved = store.approvals([s.waits.request for r in runs for s in r.steps if s.waits])
    return [job_view(r, usage, approved) for r in runs]


def status_view(store: Store, job: str | None = None) -> StatusView:
    current = store.current_revision()
    runs = store.load_runs([job] if job else None)
    running: dict[str, int] = {}
    for run in runs:
        for state in run.steps:
            if state.status is StepStatus.RUNNING and state.name in {s.name for s in run.spec.steps}:
                agent = run.spec.step(state.name).agent
                if agent:
                    running[agent] = running.get(agent, 0) + 1
    agents = []
    if current is not None:
        for name, raw in sorted(current[2].items()):
            spec = AgentSpec.model_validate(raw)
            agents.append(
                AgentView(
                    name=name,
                    capabilities=_capabilities(spec),
                    running=running.get(name, 0),
                    model=spec.spec.model,
                )
            )
    replicas = tuple(store.replicas())
    return StatusView(
        revision=current[0] if current else None,
        manifest_errors=tuple(current[1]) if current else (),
        agents=tuple(agents),
        jobs=tuple(job_views(store, runs)),
        replicas=replicas,
        sandbox=replicas[-1].sandbox if replicas else "",
    )


def _capabilities(spec: AgentSpec) -> dict[str, list[str]]:
    body = spec.spec
    out: dict[str, list[str]] = {}
    if body.commands:
        out["shell"] = sorted(body.commands)
    if body.hosts:
        out["http"] = sorted(body.hosts)
    if body.channels:
        out["slack"] = sorted(body.channels)
    return out
