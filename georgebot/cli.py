"""The `georgebot` command. Each command builds `Settings` once, hands them to the layer that
does the work, and turns the result into output and an exit code: 0 fine, 1 the thing
checked is not fine, 2 a configuration or usage error (DESIGN.md, command-line contract).

New commands take `@settings_options` for the options every command shares, and raise
`errors.ConfigError` for anything an operator must fix: `GeorgeGroup` prints it and exits 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import getpass
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

import click
from pydantic import ValidationError

from georgebot import __version__
from georgebot.config import Settings, environment_limits, environment_secrets
from georgebot.errors import ConfigError, InputError, TemporaryError
from georgebot.manifests.limits import Limits
from georgebot.manifests.schema import schema_text
from georgebot.manifests.snapshot import Snapshot
from georgebot.manifests.source import ManifestSource, find_root, load_worktree
from georgebot.model.views import StatusView, dollars, iso
from georgebot.secrets import Secrets
from georgebot.store import Store, reading
from georgebot.store.views import status_view

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class ConfigFailure(click.ClickException):
    """Exit 2 with what to do, on stderr."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"georgebot: {self.format_message()}", err=True)


class GeorgeGroup(click.Group):
    """Maps George's configuration errors (and a repository that cannot be reached right
    now) to exit 2 for every command, so commands need no try/except of their own."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as e:
            raise ConfigFailure(str(e)) from e
        except TemporaryError as e:
            raise ConfigFailure(f"{e}; try again") from e


def build_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the options that were given (not None) on top."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from e


def settings_options(command: F) -> F:
    """Adds --repo, --branch, --path and --database-url, and passes the command `settings`
    built from them."""

    @functools.wraps(command)
    def wrapper(*args: Any, repo: str | None, branch: str | None, path: str | None,
                database_url: str | None, **kwargs: Any) -> Any:
        settings = build_settings(repo=repo, branch=branch, path=path, database_url=database_url)
        return command(*args, settings=settings, **kwargs)

    options = (
        click.option("--repo", help="Git repository: a path or a URL [GEORGE_REPO, default .]"),
        click.option("--branch", help="branch to read [GEORGE_BRANCH, default: current]"),
        click.option("--path", help="manifests folder in the repository [GEORGE_PATH]"),
        click.option("--database-url", help="state database [GEORGE_DATABASE_URL, default sqlite:///george.db]"),
    )
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper  # type: ignore[return-value]


@click.group(cls=GeorgeGroup)
@click.version_option(__version__, prog_name="georgebot")
def main() -> None:
    """George runs your organisation's slow manual processes as jobs, from Git."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("slack_sdk", "slack_bolt", "aiohttp.access", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@main.command()
@settings_options
@click.option("--json", "as_json", is_flag=True, help="print the errors as a JSON list")
@click.option("--worktree", is_flag=True, help="check the files on disk, not the last commit")
def validate(settings: Settings, as_json: bool, worktree: bool) -> None:
    """Check the manifests committed on the branch.

    Prints `file:line: kind/name: message` for each error and exits 1 when any manifest is
    invalid; prints a one-line summary and exits 0 when all are valid.
    """
    limits = Limits.from_environment(environment_limits())
    if worktree:
        root = find_root(settings.repo)
        snapshot = load_worktree(root, settings.path, settings.default_channel, limits, settings.george_url)
    else:
        with ManifestSource.from_settings(settings, limits=limits) as source:
            snapshot = source.sync()
    for warning in snapshot.warnings:
        click.echo(f"warning: {warning}", err=True)
    secrets = Secrets(settings.secrets_dir, environment_secrets())
    for name, agent in sorted(snapshot.agents.items()):
        for secret in agent.spec.secrets:
            if (why := secrets.lookup(secret).why):
                click.echo(f"warning: -: AgentSpec/{name}: {why}; until then its steps are Blocked: "
                           f"CapabilityMissing (secret {secret})", err=True)
    if as_json:
        click.echo(json.dumps([issue.model_dump() for issue in snapshot.errors], indent=2))
    else:
        for issue in snapshot.errors:
            click.echo(str(issue))
    if snapshot.errors:
        click.echo(_summary(snapshot), err=True)
        raise SystemExit(1)
    click.echo(_summary(snapshot), err=as_json)


@main.command()
def schema() -> None:
    """Print the manifests' JSON Schema.

    For editors that use yaml-language-server: save it beside the manifests and start each
    file with `# yaml-language-server: $schema=george.schema.json`.
    """
    click.echo(schema_text(), nl=False)


def _summary(snapshot: Snapshot) -> str:
    revision = snapshot.revision
    at = revision.sha if revision.sha == "worktree" else revision.sha[:7]
    where = f"at {at} ({revision.message})"
    if snapshot.errors:
        files = len({issue.file for issue in snapshot.errors})
        count = len(snapshot.errors)
        return (
            f"invalid: {count} error{'s' * (count != 1)} in {files} "
            f"file{'s' * (files != 1)} {where}"
        )
    return (
        f"valid: {_count(snapshot.agents, 'agent')}, {_count(snapshot.templates, 'template')}, "
        f"{_count(snapshot.jobs, 'job')} {where}"
    )


def _count(items: Any, noun: str) -> str:
    return f"{len(items)} {noun}{'s' * (len(items) != 1)}"


# --- the engine, headless -------------------------------------------------------------


@main.command()
@settings_options
@click.option("--wait", is_flag=True,
              help="Keep going until every job is finished, waiting for people, or blocked.")
@click.option("--timeout", type=float, default=None, metavar="S", help="Give up after S seconds (exit 1).")
def reconcile(settings: Settings, wait: bool, timeout: float | None) -> None:
    """Sync Git and run jobs headless (no chat: messages stay queued)."""
    from georgebot.runtime import George, harden_process

    harden_process()

    async def go() -> bool:
        george = George(settings)
        await george.open()
        try:
            return await george.reconcile(wait=wait, limit=timeout)
        finally:
            await george.close()

    finished = asyncio.run(go())
    if not finished:
        click.echo(f"timed out after {timeout}s with jobs still going", err=True)
        sys.exit(1)


@main.command("migrate")
@settings_options
@click.option("--sql", "as_sql", is_flag=True,
              help="Print the upgrade as SQL instead, changing nothing (data fix-ups are left out).")
def migrate_schema(settings: Settings, as_sql: bool) -> None:
    """Bring the database's schema up to this George's, as `run` does at start; print the schema
    it was at and the one it is at now."""
    from georgebot.model.urls import redact
    from georgebot.store import database

    with database.connected(settings.database_url) as db:
        if as_sql:
            click.echo(database.upgrade_script(db), nl=False)
            return
        done = database.migrate(db)
    where = redact(settings.database_url)
    if done.before == done.after:
        click.echo(f"{where}: already at {done.after}")
    else:
        click.echo(f"{where}: schema {done.before or 'none'} → {done.after}")


@main.command()
@settings_options
@click.argument("job")
def retry(settings: Settings, job: str) -> None:
    """Retry a job's failed and blocked steps (a running George picks them up on its next pass)."""
    from georgebot.runtime import George

    actor = f"cli:{getpass.getuser()}"

    async def go() -> str:
        george = George(settings)
        try:
            return (await george.engine.retry(job, actor=actor)).message
        finally:
            await george.close()

    try:
        click.echo(asyncio.run(go()))
    except InputError as e:
        click.echo(f"georgebot: {e}", err=True)
        sys.exit(1)


@main.command()
@settings_options
@click.argument("job", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object (the documented, stable form).")
def status(settings: Settings, job: str | None, as_json: bool) -> None:
    """Revision, manifest errors, agents and jobs, read from the database only."""
    view = _read(settings, lambda store: status_view(store, job))
    if not view.sandbox:  # no George runs now: say what one would use on this machine
        from georgebot.agents.sandbox import Sandbox

        info = Sandbox.detect(settings.sandbox).info
        view = dataclasses.replace(view, sandbox=f"{info.kind}: {info.detail} (no George is running)")
    if as_json:
        click.echo(json.dumps(view.to_json(), indent=2))
    else:
        click.echo(_status_text(view, _plain_text(settings, _status_texts(view))))
    if job and not view.jobs:
        click.echo(f"no job named {job}", err=True)
        sys.exit(1)


@main.command()
@settings_options
@click.argument("job")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of events, oldest first.")
def audit(settings: Settings, job: str, as_json: bool) -> None:
    """The job's event log, oldest first: who changed what, from which status to which, why."""
    events = _read(settings, lambda store: store.events(job))
    if as_json:
        click.echo(json.dumps([e.to_json() for e in events], indent=2))
    plain = _plain_text(settings, [e.message for e in events]) if not as_json else str
    for e in [] if as_json else events:
        change = f"{e.from_status or '-'} → {e.to_status}" if e.to_status else (e.reason or "")
        click.echo(f"{iso(e.at)}  {e.step or '(job)':<20} {e.actor:<22} {change:<22} "
                   f"{plain(e.message)}")
    if not events:
        click.echo(f"no events for a job named {job}", err=True)
        sys.exit(1)


def _read(settings: Settings, query: Callable[[Store], T]) -> T:
    """Reads only (no migration, no sync): safe beside a running `georgebot run`."""
    with reading(settings.database_url) as db:
        return query(Store(db))


def _plain_text(settings: Settings, texts: list[str]) -> Callable[[str], str]:
    """Slack mrkdwn as plain text, people and channels by name: the local Slack's people
    when no Slack tokens are set, else Slack's `users.info` (ids when Slack does not answer)."""
    from georgebot.slack.mrkdwn import Names, mentioned, plain

    refs = set().union(*(mentioned(t) for t in texts))
    names = Names()
    if refs and settings.uses_local_slack:
        from georgebot.devslack import DEMO_SEED

        names = Names({p.id: p.real_name for p in DEMO_SEED.people},
                      {c.id: c.name for c in DEMO_SEED.channels},
                      {g.id: g.handle for g in DEMO_SEED.groups})
    elif refs and settings.slack_bot_token is not None:
        from georgebot.slack.directory import names_in_slack

        names = asyncio.run(names_in_slack(settings.slack_bot_token.get_secret_value(),
                                           settings.slack_api_url, refs))
    return lambda text: plain(text, names)


def _status_texts(view: StatusView) -> list[str]:
    return [text for job in view.jobs
            for text in (*(c.message for c in job.conditions), *(s.message for s in job.steps))]


_LEADS = {"sync": "the Git sync", "outbox": "Slack delivery"}


def _status_text(view: StatusView, plain: Callable[[str], str] = str) -> str:
    lines = []
    rev = view.revision
    lines.append(f"revision  {rev.sha[:12]} {rev.message} (synced {iso(rev.synced_at)})"
                 if rev else "revision  none synced yet")
    if view.sync_error:
        lines.append(f"sync      FAILING (jobs go on at this revision): {view.sync_error}")
    kind, _, detail = view.sandbox.partition(": ")
    confined = kind == "bubblewrap"
    lines.append(f"sandbox   {detail}" if confined else f"sandbox   none: steps are NOT sandboxed ({detail})")
    for r in view.replicas:
        leads = [_LEADS.get(name.partition(":")[0], name) for name in r.leads]
        lines.append(f"george    {r.id} on {r.host} (pid {r.pid}, {r.version}), started {iso(r.started_at)}, "
                     f"last seen {iso(r.heartbeat_at)}" + (f"; leads {' and '.join(leads)}" if leads else ""))
    for err in view.manifest_errors:
        where = err["file"] if err["line"] is None else f"{err['file']}:{err['line']}"
        lines.append(f"error     {where}: {err['kind']}/{err['name']}: {err['message']}")
    for agent in view.agents:
        caps = "; ".join(f"{k}: {', '.join(v)}" for k, v in agent.capabilities.items()) or "no capabilities"
        lines.append(f"agent     {agent.name:<20} running {agent.running}  {caps}")
    for job in view.jobs:
        usage = job.usage
        cost = (f"  {dollars(usage.cost_usd)} ({usage.input_tokens + usage.output_tokens} tokens)"
                if usage.input_tokens or usage.output_tokens else "")
        head = f"job       {job.name:<20} {job.status.value:<10} {job.template} gen {job.generation}"
        lines.append(head + cost)
        for c in job.conditions:
            if c.status:
                lines.append(f"            condition {c.type}: {plain(c.message)}")
        for s in job.steps:
            why = f"{s.reason}: " if s.reason else ""
            on = f"  (on {s.replica})" if s.replica else ""
            line = f"            {s.name:<20} {s.status.value:<10} attempts {s.attempts}  {why}"
            line += plain(s.message) + on
            lines.append(line.rstrip())
    return "\n".join(lines)


# --- the bot ----------------------------------------------------------------------------


@main.command()
@settings_options
def run(settings: Settings) -> None:
    """Run George: Git sync, the engine, the HTTP server and Slack (the local Slack when no
    Slack tokens are set). Stop it with Ctrl-C; running steps resume at the next start."""
    from georgebot.runtime import run_bot

    asyncio.run(run_bot(settings, announce=lambda line: click.echo(line)))
    click.echo("George stopped.", err=True)


@main.command("local-slack")
@click.option("--port", type=int, default=None, help="port [GEORGE_LOCAL_SLACK_PORT, default 3000]")
def local_slack(port: int | None) -> None:
    """Run only the local Slack: its page, Web API and Socket Mode."""
    from georgebot.devslack import serve

    settings = build_settings(local_slack_port=port)

    def ready(slack: Any) -> None:
        click.echo(f"local Slack on {slack.url} (Web API {slack.api_url})")

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve("127.0.0.1", settings.local_slack_port, on_ready=ready))


@main.command("slack-manifest")
def slack_manifest() -> None:
    """Print the Slack app manifest George needs (Socket Mode, /george, events, scopes)."""
    from georgebot.slack import slack_app_manifest

    click.echo(json.dumps(slack_app_manifest(), indent=2))


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def init(directory: Path) -> None:
    """Create a manifests repository in DIRECTORY: the demo agents, templates, jobs and tools,
    committed. Then: GEORGE_REPO=DIRECTORY georgebot run."""
    from georgebot.manifests.demo import create_demo_repository

    sha = create_demo_repository(directory)
    click.echo(f"created a manifests repository in {directory} at {sha[:7]}; "
               f"run it with: GEORGE_REPO={directory} georgebot run")
