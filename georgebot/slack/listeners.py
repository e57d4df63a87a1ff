"""The bolt listeners: each acknowledges, parses, delegates to the engine and renders the
answer (STYLE.md rule 3). Acknowledging comes first and the rest runs in `Work`, so Slack
hears back within its 3 seconds however busy the engine is.

Slack text is untrusted data: it is stored as context as it came and never evaluated.
`SlackSurface` builds `Listeners` and `app.build_app` registers them on the bolt app.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.models.blocks import Block
from slack_sdk.web.async_client import AsyncWebClient

from georgebot import errors
from georgebot.config import Settings
from georgebot.engine.service import Decision, Engine, Verdict
from georgebot.manifests.writing import Author, JobWriter, Written
from georgebot.model.views import StatusView
from georgebot.slack import blocks as render
from georgebot.slack import commands, messages, starting
from georgebot.slack.calls import CallFailed, call, reply
from georgebot.slack.commands import Command
from georgebot.slack.directory import Directory
from georgebot.slack.work import Work

log = logging.getLogger(__name__)

COMMAND = "/george"
EVENTS = ("app_mention", "reaction_added", "reaction_removed", "message", "app_home_opened")
"""The event types the app subscribes to; each has a listener (see `manifest.py`)."""

_REPLY_SUBTYPES = (None, "thread_broadcast")
RECORD_WITHIN = 2.0
"""Seconds a click or a submitted modal waits for its decision to be recorded before the
person is told it was not (DESIGN.md: interactions that cannot be recorded)."""

T = TypeVar("T")


class NotRecorded(Exception):
    """A decision the store could not record in time (busy, or slower than `RECORD_WITHIN`)."""


class _Sweep(Protocol):
    def soon(self) -> None: ...


class _NoSweep:
    def soon(self) -> None:
        pass


class Listeners:
    def __init__(self, settings: Settings, engine: Engine, client: AsyncWebClient,
                 *, directory: Directory, work: Work | None = None, writer: JobWriter | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.desk = engine.desk
        self.client = client
        self.directory = directory
        self.work = work or Work()
        self.sweep: _Sweep = _NoSweep()
        self.record_within = RECORD_WITHIN
        self.writer = writer  # jobs started and cancelled from Slack, through Git

    def register(self, app: AsyncApp) -> None:
        app.command(COMMAND)(self.on_command)
        app.event("app_mention")(self.on_mention)
        app.event("reaction_added")(self.on_reaction_added)
        app.event("reaction_removed")(self.on_reaction_removed)
        app.event("message")(self.on_message)
        app.event("app_home_opened")(self.on_home_opened)
        app.action(render.APPROVE_ACTION)(self.on_approve_clicked)
        app.action(render.REJECT_ACTION)(self.on_reject_clicked)
        app.view(render.REJECT_VIEW)(self.on_reject_submitted)
        app.view(starting.START_VIEW)(self.on_start_submitted)

    async def idle(self) -> None:
        """Waits until nothing acknowledged is still being handled."""
        await self.work.idle()

    async def close(self) -> None:
        await self.work.close()

    # --- listeners: ack → parse → delegate → render ---------------------------------

    async def on_command(self, ack: AsyncAck, command: dict[str, Any],
                         respond: AsyncRespond) -> None:
        await ack()
        if respond.response_url is None:
            log.info("%s without a response_url: acknowledged, cannot be answered", COMMAND)
            return
        parsed = commands.parse(str(command.get("text") or ""))
        user = str(command.get("user_id") or "")
        where = (str(command.get("trigger_id") or ""), str(command.get("channel_id") or ""))
        self.work.spawn(f"{COMMAND} {parsed.verb}", self._command(parsed, user, respond, where))

    async def on_mention(self, ack: AsyncAck, event: dict[str, Any]) -> None:
        await ack()
        parsed = commands.parse(str(event.get("text") or ""))
        channel, user = str(event.get("channel") or ""), str(event.get("user") or "")
        ts = str(event.get("ts") or "")
        thread = str(event["thread_ts"]) if event.get("thread_ts") else None
        self.work.spawn(f"mention {parsed.verb}", self._mention(parsed, channel, user, ts, thread))

    async def on_reaction_added(self, ack: AsyncAck, event: dict[str, Any]) -> None:
        await ack()
        item = event.get("item") or {}
        approve = commands.vote(str(event.get("reaction") or ""), self.settings.approve_reactions,
                                self.settings.reject_reactions)
        if approve is None or item.get("type") != "message" or not event.get("user"):
            return
        channel, ts, user = str(item.get("channel")), str(item.get("ts")), str(event["user"])
        author = str(event.get("item_user") or "")
        self.work.spawn(f"reaction by {user}", self._decide(channel, ts, user, approve, author))

    async def on_reaction_removed(self, ack: AsyncAck, event: dict[str, Any]) -> None:
        await ack()  # a decision stands; taking a reaction back does not undo it
        log.debug("reaction %s removed by %s", event.get("reaction"), event.get("user"))

    async def on_message(self, ack: AsyncAck, event: dict[str, Any]) -> None:
        await ack()
        thread, ts = event.get("thread_ts"), event.get("ts")
        if (event.get("subtype") not in _REPLY_SUBTYPES or event.get("bot_id")
                or not event.get("user") or not thread or thread == ts):
            return
        self.work.spawn("thread reply", self._reply(
            str(event.get("channel")), str(thread), str(ts), str(event["user"]),
            str(event.get("text") or "")))

    async def on_home_opened(self, ack: AsyncAck, event: dict[str, Any]) -> None:
        await ack()
        if event.get("tab", "home") != "home" or not event.get("user"):
            return
        self.work.spawn("app home", self._home(str(event["user"])))

    async def on_approve_clicked(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        click = _Click.of(body)
        if click is None:
            return
        self.work.spawn(f"approve by {click.user}", self._clicked(click))

    async def on_reject_clicked(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        click = _Click.of(body)
        if click is None or not body.get("trigger_id"):
            return
        self.work.spawn(f"reject by {click.user}", self._ask_reason(click, str(body["trigger_id"])))

    async def on_reject_submitted(self, ack: AsyncAck, body: dict[str, Any],
                                  view: dict[str, Any]) -> None:
        """The Reject modal's reason rejects the request; the modal closes once that is
        recorded and shows an error in place when it cannot be."""
        user = str((body.get("user") or {}).get("id") or "")
        request_id, _, where = str(view.get("private_metadata") or "").partition(" ")
        channel, _, ts = where.partition(" ")
        values = ((view.get("state") or {}).get("values") or {}).get(render.REASON_BLOCK) or {}
        reason = str((values.get(render.REASON_INPUT) or {}).get("value") or "").strip()
        if not reason:
            await ack(response_action="errors", errors={render.REASON_BLOCK: messages.reason_needed()})
            return
        try:
            verdict, root = await self._within(self._decide_request(
                request_id, channel, ts, user, approve=False, note=reason),
                late=lambda told: self.tell(told[0], channel, told[1]))
        except NotRecorded:
            await ack(response_action="errors", errors={render.REASON_BLOCK: messages.not_recorded()})
            return
        await ack()
        self.work.spawn(f"rejection by {user}", self.tell(verdict, channel, root))

    # --- delegates ------------------------------------------------------------------

    async def _clicked(self, click: _Click) -> None:
        try:
            verdict, root = await self._within(self._decide_request(
                click.request, click.channel, click.ts, click.user, approve=True),
                late=lambda told: self.tell(told[0], click.channel, told[1]))
        except NotRecorded:
            await self._ephemeral(click.channel, click.user, messages.not_recorded())
            return
        await self.tell(verdict, click.channel, root)

    async def _ask_reason(self, click: _Click, trigger_id: str) -> None:
        try:
            request = await self._within(self.desk.request(click.request))
            job = await self._within(self.desk.job_name(request.job_id)) if request else ""
        except NotRecorded:
            await self._ephemeral(click.channel, click.user, messages.not_recorded())
            return
        if request is None:
            await self._ephemeral(click.channel, click.user, messages.request_gone())
            return
        shown = render.RequestShown(id=request.id, job=job, step=request.step, text=request.text)
        modal = render.reject_modal(shown, channel=click.channel, ts=click.ts)
        await call("views.open", self.client.views_open(trigger_id=trigger_id, view=modal))

    async def _within(self, pending: Awaitable[T],
                      late: Callable[[T], Awaitable[None]] | None = None) -> T:
        """`pending`, if the store answers within `record_within` seconds; else NotRecorded.
        What it was doing goes on: a decision recorded after all counts once, and `late` says
        so in Slack."""
        task = asyncio.ensure_future(pending)
        done, _ = await asyncio.wait({task}, timeout=self.record_within)
        if not done:
            if late is None:
                task.add_done_callback(_quietly)
            else:
                self.work.spawn("a decision recorded late", self._late(task, late))
            raise NotRecorded
        try:
            return task.result()
        except (errors.StoreBusy, errors.TemporaryError) as e:
            raise NotRecorded from e

    async def _late(self, task: asyncio.Future[T], then: Callable[[T], Awaitable[None]]) -> None:
        try:
            result = await task
        except (errors.StoreBusy, errors.TemporaryError) as e:
            log.info("a decision George said it could not record was not recorded: %s", e)
            return
        await then(result)

    async def _decide_request(self, request_id: str, channel: str, ts: str, user: str, *,
                              approve: bool, note: str = "") -> tuple[Verdict, str]:
        """A click or a modal's answer on a request: the same decision as a reaction. The id
        came from Slack, so it is only a name: `decide` checks the request and its approvers."""
        request = await self.desk.request(request_id)
        if request is None:
            return Verdict(Decision.UNKNOWN, user=user, why="not a request of George's"), ts
        groups = await self.directory.groups_of(user, frozenset(request.approvers))
        root = await self._thread_root(request.job_id, channel, ts)
        verdict = await self.engine.decide(request_id, user=user, approve=approve,
                                           user_groups=groups, note=note,
                                           user_of=self.directory.user_by_email)
        return verdict, root


    async def _command(self, command: Command, user: str, respond: AsyncRespond,
                       where: tuple[str, str] = ("", "")) -> None:
        if command.verb == "status":
            shown = await self._status(command.job, user)
        elif command.verb == "retry":
            shown = render.notice(await self._retry(command.job, user))
        elif command.verb == "run":
            said = await self._open_start(command.job, *where)
            if said is None:
                return  # the modal is open
            shown = render.notice(said)
        elif command.verb == "cancel":
            shown = render.notice(await self._cancel(command.job, user))
        else:
            shown = _help(command)
        answer = await reply(respond(blocks=shown[0], text=shown[1], response_type="ephemeral"))
        if answer.status_code != 200:
            log.warning("Slack refused the answer to %s: %s %s", COMMAND, answer.status_code,
                        answer.body)

    async def _mention(self, command: Command, channel: str, user: str, ts: str,
                       thread: str | None) -> None:
        job = command.job or (await self._job_of_thread(channel, thread) if thread else None)
        if command.verb == "retry":
            shown = render.notice(await self._retry(job, user))
        elif command.verb == "status":
            shown = await self._status(job, user)
        else:
            shown = _help(command)
        await self._post(channel, shown, thread_ts=thread or ts)

    # --- jobs started and cancelled from Slack, through Git ------------------------------

    async def _open_start(self, template_name: str | None, trigger_id: str, channel: str) -> str | None:
        """Opens the start modal for a template; what went wrong otherwise."""
        templates = self.engine.snapshot.templates if self.engine.snapshot else {}
        if self.writer is None:
            return messages.writing_off()
        template = templates.get(template_name or "")
        if template is None:
            return messages.no_such_template(template_name, sorted(templates))
        if not trigger_id:
            return messages.refused("Slack sent no trigger to open a form with; try again")
        modal = starting.start_modal(template, channel=channel)
        await call("views.open", self.client.views_open(trigger_id=trigger_id, view=modal))
        return None

    async def on_start_submitted(self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        """The start modal: the job is committed (and pushed) before the modal closes, so
        a taken name or what `validate` says of it shows in the modal; a slow remote closes it
        and the answer follows privately."""
        user = str((body.get("user") or {}).get("id") or "")
        try:  # ours when we opened the modal, but it comes back through Slack: not trusted
            meta = json.loads(str(view.get("private_metadata") or "{}"))
        except ValueError:
            meta = {}
        meta = meta if isinstance(meta, dict) else {}
        snapshot = self.engine.snapshot
        template = snapshot.templates.get(str(meta.get("template"))) if snapshot else None
        if template is None or self.writer is None:
            await ack(response_action="errors",
                      errors={starting.NAME_BLOCK: "That template is gone from Git; close and start again."})
            return
        name, params, problems = starting.read_start(view, template)
        if problems:
            await ack(response_action="errors", errors=problems)
            return
        channel = str(meta.get("channel") or "")
        start = asyncio.ensure_future(self._commit_start(user, name, template.metadata.name, params))
        done, _ = await asyncio.wait({start}, timeout=self.record_within)
        if not done:
            await ack()
            self.work.spawn(f"start of {name}", self._started_late(start, user, channel))
            return
        try:
            written = start.result()
        except (errors.InputError, errors.ManifestError) as e:
            await ack(response_action="errors", errors=starting.errors_of(str(e), template))
            return
        except (errors.TemporaryError, CallFailed) as e:
            await ack(response_action="errors", errors={starting.NAME_BLOCK: str(e)[:300]})
            return
        await ack()
        await self._started(written, user, channel)

    async def _commit_start(self, user: str, name: str, template: str, params: dict[str, Any]) -> Written:
        assert self.writer is not None
        who, email = await self.directory.person(user)
        writer = self.writer
        return await asyncio.to_thread(writer.start, name=name, template=template, params=params,
                                       author=Author(who, email))

    async def _started_late(self, start: asyncio.Future[Written], user: str, channel: str) -> None:
        try:
            written = await start
        except (errors.GeorgeError, CallFailed) as e:
            await self._ephemeral(channel, user, messages.refused(str(e)), or_direct=True)
            return
        await self._started(written, user, channel)

    async def _started(self, written: Written, user: str, channel: str) -> None:
        self.engine.wake(sync=True)  # its card appears at once, not at the next poll
        await self._ephemeral(channel, user, messages.job_started(written), or_direct=True)

    async def _cancel(self, job: str | None, user: str) -> str:
        if self.writer is None:
            return messages.writing_off()
        if not job:
            return messages.refused("say which job: `/george cancel JOB`")
        try:
            who, email = await self.directory.person(user)
            written = await asyncio.to_thread(self.writer.cancel, job, Author(who, email))
        except errors.GeorgeError as e:
            return messages.refused(str(e))
        except CallFailed as e:
            return messages.refused(f"Slack did not say who you are ({e.error}); try again")
        self.engine.wake(sync=True)
        return messages.job_cancelled(written)

    async def _status(self, job: str | None, user: str) -> render.Rendered:
        view = await self.desk.status(job)
        if job is not None:
            if not view.jobs:
                return render.notice(messages.no_such_job(job))
            return render.job_card(view.jobs[0])
        return render.status_summary(view, user, await self._groups_in(view, user))

    async def _retry(self, job: str | None, user: str) -> str:
        if job is None:
            return messages.retry_which_job()
        try:
            result = await self.engine.retry(
                job, actor=f"user:{user}",
                groups_of=lambda wanted: self.directory.groups_of(user, wanted),
                in_channel=lambda channel: self.directory.is_member(channel, user),
            )
        except (errors.InputError, errors.TemporaryError) as e:
            return messages.refused(str(e))
        if not result.steps:
            return messages.retry_nothing(result.message)
        return messages.retry_done(result.message)

    async def _decide(self, channel: str, ts: str, user: str, approve: bool, author: str = "") -> None:
        message = await self.desk.message_at(channel, ts)
        if message is None and author and author == (await self.directory.identity()).user_id:
            self.sweep.soon()  # George's, not recorded yet: perhaps a request still being posted
            return
        if message is None or message.kind != "approval" or not message.request_id:
            return
        approvers = await self.engine.approvers_of(message.request_id)
        groups = await self.directory.groups_of(user, frozenset(approvers))
        root = await self._thread_root(message.job_id, channel, ts)
        note = "" if approve else await self.directory.latest_reply(channel, root, user, after=ts)
        verdict = await self.engine.decide(message.request_id, user=user, approve=approve,
                                           user_groups=groups, note=note,
                                           user_of=self.directory.user_by_email)
        await self.tell(verdict, channel, root)

    async def tell(self, verdict: Verdict, channel: str, root: str) -> None:
        """Says in Slack what a decision did: in the thread when it counted; when it did not,
        privately to the person, in the channel where they answered, with who can approve."""
        user, step, who = verdict.user, verdict.step, verdict.approvers
        if verdict.decision is Decision.OUTDATED:
            await self._ephemeral(channel, user, messages.stale_request(step, verdict.why, who))
        elif verdict.decision is Decision.APPROVED:
            await self._post(channel, render.notice(messages.approved(user, step)), root)
        elif verdict.decision is Decision.ALREADY_COUNTED:
            await self._ephemeral(channel, user, messages.already_counted(
                step, verdict.approvals, verdict.quorum, who))
        elif verdict.decision is Decision.RECORDED:
            await self._post(channel, render.notice(messages.approval_recorded(
                user, step, len(verdict.approvals), verdict.quorum)), root)
        elif verdict.decision is Decision.REJECTED:
            await self._post(channel, render.notice(messages.rejected(user, step, verdict.note)), root)
        elif verdict.decision is Decision.NOT_APPROVER:
            await self._ephemeral(channel, user, messages.not_an_approver(step, who))
        elif verdict.decision is Decision.OWN_JOB:
            others = [a for a in who if a != user]
            await self._ephemeral(channel, user, messages.own_job(verdict.job, step, others))
        elif verdict.decision is Decision.NOT_WAITING:
            status = verdict.status.value if verdict.status else "gone"
            await self._ephemeral(channel, user, messages.not_waiting(step, status, who))
        elif verdict.decision is Decision.UNKNOWN:
            await self._ephemeral(channel, user, messages.request_gone())

    async def _reply(self, channel: str, thread: str, ts: str, user: str, text: str) -> None:
        owner = await self.desk.message_at(channel, thread)
        if owner is None:
            return
        identity = await self.directory.identity()
        if identity.user_id and f"<@{identity.user_id}>" in text:
            return  # a command to George, answered by the mention listener
        job = await self.desk.job_name(owner.job_id)
        if commands.in_thread(text) is not None:  # `retry`, said in the job's thread
            await self._post(channel, render.notice(await self._retry(job, user)), thread)
            return
        step = owner.step if owner.kind == "approval" else None
        await self.engine.reply(job, user=user, text=text, step=step, run_id=owner.job_id)  # may resume

    async def _home(self, user: str) -> None:
        view = await self.desk.status()
        home = render.app_home(view, user, await self._groups_in(view, user))
        await call("views.publish", self.client.views_publish(user_id=user, view=home))

    # --- helpers --------------------------------------------------------------------

    async def _groups_in(self, view: StatusView, user: str) -> frozenset[str]:
        """The user groups of `user` among the approvers of waiting steps."""
        wanted = frozenset(a for j in view.jobs for s in j.steps if s.waiting
                           for a in s.waiting.approvers if a.startswith("S"))
        return await self.directory.groups_of(user, wanted) if wanted else frozenset()

    async def _job_of_thread(self, channel: str, thread: str) -> str | None:
        owner = await self.desk.message_at(channel, thread)
        return await self.desk.job_name(owner.job_id) if owner is not None else None

    async def _thread_root(self, job_id: int, channel: str, ts: str) -> str:
        """Where talk about a request goes: the card's thread when the request is in it."""
        card = await self.desk.card_of(job_id)
        return card.ts if card is not None and card.channel_id == channel else ts

    async def _post(self, channel: str, shown: tuple[list[Block], str], thread_ts: str) -> None:
        await call("chat.postMessage", self.client.chat_postMessage(
            channel=channel, blocks=shown[0], text=shown[1], thread_ts=thread_ts,
            unfurl_links=False, unfurl_media=False))

    async def _ephemeral(self, channel: str, user: str, text: str, *, or_direct: bool = False) -> None:
        """Seen by `user` only, in the channel; with `or_direct`, in a direct message when
        George is not in that channel (a command can come from any channel)."""
        try:
            await call("chat.postEphemeral", self.client.chat_postEphemeral(
                channel=channel, user=user, text=text))
            return
        except CallFailed as e:
            if not or_direct or e.error not in ("not_in_channel", "channel_not_found"):
                log.info("could not tell %s privately (%s): %s", user, e.error, text)
                return
        try:
            opened = await call("conversations.open", self.client.conversations_open(users=user))
            direct = str((opened.get("channel") or {}).get("id") or "")
            await call("chat.postMessage", self.client.chat_postMessage(channel=direct, text=text))
        except CallFailed as e:
            log.info("could not tell %s in a direct message (%s): %s", user, e.error, text)


class _Click:
    """Who clicked a request's button, on which message, naming which request."""

    def __init__(self, request: str, channel: str, ts: str, user: str) -> None:
        self.request, self.channel, self.ts, self.user = request, channel, ts, user

    @classmethod
    def of(cls, body: dict[str, Any]) -> _Click | None:
        actions = body.get("actions") or []
        container = body.get("container") or {}
        user = str((body.get("user") or {}).get("id") or "")
        channel = str((body.get("channel") or {}).get("id") or container.get("channel_id") or "")
        ts = str(container.get("message_ts") or (body.get("message") or {}).get("ts") or "")
        request = str(actions[0].get("value") or "") if actions and isinstance(actions[0], dict) else ""
        if not (request and channel and ts and user):
            return None
        return cls(request, channel, ts, user)


def _quietly(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.info("a decision finished failing after its person was told: %s", task.exception())


def _help(command: Command) -> render.Rendered:
    blocks, text = render.help_text()
    if command.unknown:
        prefix = render.notice(messages.not_understood(command.unknown))
        return prefix[0] + blocks, f"{prefix[1]} {text}"
    return blocks, text


