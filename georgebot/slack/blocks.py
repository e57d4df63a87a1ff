"""Block Kit renderers: pure functions from views (`model/views.py`) to `slack_sdk` blocks.

Each message renderer returns `(blocks, text)`: the blocks and the plain-text fallback Slack
shows in notifications. Whatever the view holds, the result stays within Slack's limits
(50 blocks a message, 100 a Home tab, 3,000 characters a section, 150 a header): finished steps
collapse, long text is clipped, and what does not fit is counted. The publisher and the
listeners send what these return; tests look at them with no client in sight.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from georgebot.model.status import JobStatus, StepStatus
from georgebot.model.views import JobView, StatusView, StepView
from georgebot.slack import messages
from georgebot.slack.mrkdwn import clip, pieces, safe

MESSAGE_BLOCKS = 50
HOME_BLOCKS = 100
SECTION_CHARS = 3000
CONTEXT_CHARS = 2000
HEADER_CHARS = 150
LINE_CHARS = 700  # one step or job line; a section holds several
FALLBACK_CHARS = 3000
COLLAPSE_AFTER = 10  # a card with more steps than this collapses its finished ones
REQUEST_SECTIONS = 45  # of a request's text in its own message; the rest goes in its thread

APPROVE_ACTION = "george_approve"
REJECT_ACTION = "george_reject"
REQUEST_ACTIONS = "george_request"
REJECT_VIEW = "george_reject_reason"
REASON_BLOCK = "reason"
REASON_INPUT = "reason"
MODAL_TITLE_CHARS = 24

Rendered = tuple[list[Block], str]

_STATUS_ORDER = (
    JobStatus.WAITING, JobStatus.RUNNING, JobStatus.BLOCKED, JobStatus.FAILED,
    JobStatus.PENDING, JobStatus.SUCCEEDED, JobStatus.CANCELLED,
)


# --- building blocks ---------------------------------------------------------------------


def _header(text: str) -> HeaderBlock:
    return HeaderBlock(text=PlainTextObject(text=clip(text, HEADER_CHARS), emoji=True))


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=clip(text, CONTEXT_CHARS))])


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=clip(text, SECTION_CHARS)))


@dataclass
class _Room:
    """How many blocks are left; the renderers spend it and never exceed it."""

    left: int

    def take(self, n: int = 1) -> bool:
        if self.left < n:
            return False
        self.left -= n
        return True


def _pack(lines: Sequence[str], room: _Room, overflow: Callable[[int], str]) -> list[Block]:
    """Lines into as few sections as fit; when the room runs out, the last section ends by
    saying how many lines did not fit (`overflow(count)`)."""
    chunks: list[list[str]] = []
    size = 0
    for line in (clip(raw, LINE_CHARS) for raw in lines):
        if chunks and size + 1 + len(line) <= SECTION_CHARS:
            chunks[-1].append(line)
            size += 1 + len(line)
        else:
            chunks.append([line])
            size = len(line)
    if len(chunks) > room.left:
        if room.left <= 0:
            return []
        chunks = chunks[: room.left]
        hidden = len(lines) - sum(len(c) for c in chunks)
        last = chunks[-1]
        while last and len("\n".join([*last, overflow(hidden)])) > SECTION_CHARS:
            last.pop()
            hidden += 1
        last.append(overflow(hidden))
    room.take(len(chunks))
    return [_section("\n".join(chunk)) for chunk in chunks]


# --- job cards ---------------------------------------------------------------------------


def step_lines(view: JobView) -> list[str]:
    """One line per step; on a long job, finished steps collapse into a count each."""
    status_of = {s.name: s.status for s in view.steps}

    def line(step: StepView) -> str:
        unfinished = [n for n in step.needs if status_of.get(n) is not StepStatus.SUCCEEDED]
        return messages.step_line(step, unfinished)

    if len(view.steps) <= COLLAPSE_AFTER:
        return [line(s) for s in view.steps]
    lines: list[str] = []
    shown: list[StepView] = []
    counts: dict[StepStatus, int] = {}
    for step in view.steps:
        if step.status in (StepStatus.SUCCEEDED, StepStatus.CANCELLED):
            counts[step.status] = counts.get(step.status, 0) + 1
        else:
            shown.append(step)
    for status in (StepStatus.SUCCEEDED, StepStatus.CANCELLED):
        if counts.get(status):
            lines.append(messages.collapsed(counts[status], status))
    return lines + [line(s) for s in shown]


def job_card(view: JobView) -> Rendered:
    room = _Room(MESSAGE_BLOCKS)
    blocks: list[Block] = [_header(messages.card_title(view)),
                           _context(messages.card_context(view))]
    room.take(len(blocks))
    conditions = [messages.condition_line(c) for c in view.conditions if c.status]
    footer_blocks = 1 + (1 if conditions else 0)
    room.take(footer_blocks)
    lines = step_lines(view) or [messages.no_steps()]
    blocks += _pack(lines, room, lambda n: messages.more_steps(n, view.name))
    if conditions:
        blocks.append(_context("\n".join(conditions)))
    blocks.append(_context(messages.card_footer(view)))
    return blocks, clip(messages.card_fallback(view), FALLBACK_CHARS)


# --- approval requests -------------------------------------------------------------------


@dataclass(frozen=True)
class RequestShown:
    """What an approval request's message shows: what it asks, and where it has got to."""

    id: str
    job: str
    step: str
    text: str
    approvers: Sequence[str] = ()
    quorum: int = 1
    question: bool = False
    approvals: Sequence[str] = ()
    """Who has counted so far, in order."""
    replaces: bool = False
    """It replaces an earlier request for the same step (earlier answers no longer count)."""
    closed: str | None = None
    """How it ended (`model.approvals.Closed`); None while it takes answers."""
    closed_by: Sequence[str] = ()
    closed_at: datetime | None = None
    note: str = ""
    revision: str | None = None
    """The revision that removed the job, when it was cancelled so."""
    new_request: str | None = None
    """A link to the request that replaced this one, when it is out of date."""
    escalated_to: Sequence[str] = ()
    """Who was asked too when nobody decided in time (`escalate`)."""


def request_sections(heading: str, text: str) -> list[str]:
    """The heading and the whole quoted text in sections that fit, nothing cut: a line too long
    for one section goes on over several quoted lines."""
    lines = [heading]
    for raw in safe(text).splitlines() or [""]:
        lines += [f"> {piece}" for piece in pieces(raw, SECTION_CHARS - 2)]
    sections: list[str] = []
    for line in lines:
        if sections and len(sections[-1]) + 1 + len(line) <= SECTION_CHARS:
            sections[-1] += "\n" + line
        else:
            sections.append(line)
    return sections


def _request_text(shown: RequestShown) -> list[str]:
    heading = (messages.question_heading(shown.job, shown.step) if shown.question
               else messages.approval_heading(shown.job, shown.step))
    return request_sections(heading, shown.text)


def approval_request(shown: RequestShown, *, approve: Sequence[str] = (),
                     reject: Sequence[str] = ()) -> Rendered:
    """A request's message: what it asks; while live, who may answer, how far it has got, and
    Approve and Reject buttons (a question is answered in the thread); once closed, how it
    ended, and nothing more to click."""
    sections = _request_text(shown)
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=t))
                           for t in sections[:REQUEST_SECTIONS]]
    if len(sections) > REQUEST_SECTIONS:
        blocks.append(_context(messages.approval_continues()))
    if shown.closed is not None:
        blocks.append(_section(messages.approval_closed(
            shown.closed, by=shown.closed_by, at=shown.closed_at, note=shown.note,
            revision=shown.revision, new_request=shown.new_request, question=shown.question)))
        fallback = messages.approval_closed_fallback(shown.job, shown.step, shown.closed)
        return blocks, clip(fallback, FALLBACK_CHARS)
    if shown.question:
        blocks.append(_context(messages.question_how()))
        return blocks, clip(messages.question_fallback(shown.job, shown.step, shown.text), FALLBACK_CHARS)
    blocks.append(_context(f"{messages.approval_who(shown.approvers, shown.quorum)}\n"
                           f"{messages.approval_count(shown.approvals, shown.quorum)}\n"
                           f"{messages.approval_how(approve, reject)}"))
    if shown.replaces:
        blocks.append(_context(messages.approval_replaces()))
    if shown.escalated_to:
        blocks.append(_context(messages.approval_escalated(shown.escalated_to)))
    blocks.append(ActionsBlock(block_id=REQUEST_ACTIONS, elements=[
        ButtonElement(text=messages.APPROVE_BUTTON, action_id=APPROVE_ACTION, value=shown.id,
                      style="primary"),
        ButtonElement(text=messages.REJECT_BUTTON, action_id=REJECT_ACTION, value=shown.id,
                      style="danger"),
    ]))
    fallback = messages.approval_fallback(shown.job, shown.step, shown.text, shown.approvers)
    return blocks, clip(fallback, FALLBACK_CHARS)


def approval_overflow(shown: RequestShown) -> list[Rendered]:
    """The rest of a request's text that did not fit in its message, as thread replies."""
    rest = _request_text(shown)[REQUEST_SECTIONS:]
    chunks = [rest[i:i + MESSAGE_BLOCKS - 1] for i in range(0, len(rest), MESSAGE_BLOCKS - 1)]
    out: list[Rendered] = []
    for n, chunk in enumerate(chunks, start=2):
        intro = messages.approval_continued(shown.job, shown.step, n, len(chunks) + 1)
        out.append(([_context(intro), *(SectionBlock(text=MarkdownTextObject(text=t)) for t in chunk)],
                    clip(intro, FALLBACK_CHARS)))
    return out


def reject_modal(shown: RequestShown, *, channel: str, ts: str) -> View:
    """Asks the person who clicked Reject for their reason; its submission rejects."""
    return View(
        type="modal",
        callback_id=REJECT_VIEW,
        private_metadata=f"{shown.id} {channel} {ts}",
        title=PlainTextObject(text=clip(messages.reject_title(), MODAL_TITLE_CHARS)),
        submit=PlainTextObject(text=messages.REJECT_BUTTON),
        close=PlainTextObject(text=messages.reject_cancel()),
        blocks=[
            _section(messages.reject_intro(shown.job, shown.step)),
            InputBlock(
                block_id=REASON_BLOCK,
                label=PlainTextObject(text=messages.reject_label()),
                element=PlainTextInputElement(action_id=REASON_INPUT, multiline=True,
                                              max_length=1000),
                optional=False,
            ),
        ],
    )


# --- status, help, App Home --------------------------------------------------------------


def waiting_for(view: StatusView, user: str,
                groups: frozenset[str] = frozenset()) -> list[tuple[JobView, StepView]]:
    """The steps whose approvers include `user` (or one of their user groups)."""
    mine = {user} | set(groups)
    return [
        (job, step)
        for job in view.jobs
        for step in job.steps
        if step.status is StepStatus.WAITING and step.waiting
        and mine & set(step.waiting.approvers) and user not in step.waiting.approved_by
    ]


def status_summary(view: StatusView, user: str, groups: frozenset[str] = frozenset()) -> Rendered:
    room = _Room(MESSAGE_BLOCKS)
    blocks: list[Block] = [
        _header(messages.status_title()),
        _section("\n".join((messages.sync_line(view.revision, view.sync_error),
                            messages.sandbox_line(view.sandbox),
                            messages.manifest_errors(view.manifest_errors)))),
        DividerBlock(),
    ]
    room.take(len(blocks))
    agent_lines = [messages.agents_heading()]
    agent_lines += [messages.agent_line(a) for a in view.agents] or [messages.no_agents()]
    blocks += _pack(agent_lines, room, messages.truncated)
    if room.take():
        blocks.append(DividerBlock())
    mine = waiting_for(view, user, groups)
    groups_of_lines: list[list[str]] = []
    if mine:
        groups_of_lines.append([messages.jobs_heading(messages.waiting_for_you(), len(mine))]
                               + [messages.waiting_line(j, s) for j, s in mine])
    for status in _STATUS_ORDER:
        jobs = [j for j in view.jobs if j.status is status]
        if jobs:
            groups_of_lines.append([messages.jobs_heading(status.value, len(jobs))]
                                   + [messages.job_line(j) for j in jobs])
    if not view.jobs:
        groups_of_lines.append([messages.no_jobs()])
    for lines in groups_of_lines:
        blocks += _pack(lines, room, messages.truncated)
    return blocks, clip(messages.status_fallback(view.jobs), FALLBACK_CHARS)


def help_text() -> Rendered:
    return [_section("\n".join(messages.help_lines()))], messages.help_fallback()


def notice(text: str) -> Rendered:
    """A short answer (a refusal, what George did) as one section and its fallback."""
    return [_section(text)], clip(text, FALLBACK_CHARS)


def app_home(view: StatusView, user: str, groups: frozenset[str] = frozenset()) -> View:
    room = _Room(HOME_BLOCKS)
    titles = messages.home_sections()
    blocks: list[Block] = [_header(messages.home_title()), _context(messages.home_intro(user))]
    room.take(len(blocks))
    mine = waiting_for(view, user, groups)
    moving = (JobStatus.RUNNING, JobStatus.PENDING, JobStatus.WAITING)
    stuck = (JobStatus.FAILED, JobStatus.BLOCKED)
    sections: list[tuple[str, list[str]]] = [
        (messages.waiting_for_you(), [messages.waiting_line(j, s) for j, s in mine]
         or [messages.nothing_waits()]),
        (titles["running"], [messages.job_line(j) for j in view.jobs if j.status in moving]),
        (titles["stuck"], [messages.job_line(j) for j in view.jobs if j.status in stuck]),
        (titles["sync"], [messages.sync_line(view.revision, view.sync_error),
                          messages.sandbox_line(view.sandbox),
                          messages.manifest_errors(view.manifest_errors)]),
    ]
    for title, lines in sections:
        if not lines or not room.take(2):
            continue
        blocks += [DividerBlock(), _section(f"*{title}*")]
        blocks += _pack(lines, room, messages.truncated)
    return View(type="home", blocks=blocks)
