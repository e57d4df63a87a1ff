"""Every word George says in Slack, in one place, so it stays consistent and testable.

`blocks` arranges these into Block Kit; `listeners` and `publisher` send them. Functions take
plain values or views and return mrkdwn (or plain text where Slack wants plain text), with
untrusted text passed through `mrkdwn.safe`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from georgebot.manifests.writing import Written
from georgebot.model.status import Condition, JobStatus, StepStatus
from georgebot.model.views import AgentView, JobView, RevisionView, StepView, dollars
from georgebot.slack.mrkdwn import (
    ago,
    channel,
    clip,
    code,
    date,
    escape,
    people,
    person,
    safe,
)

JOB_ICONS: dict[JobStatus, str] = {
    JobStatus.PENDING: ":white_circle:",
    JobStatus.RUNNING: ":arrows_counterclockwise:",
    JobStatus.WAITING: ":hourglass_flowing_sand:",
    JobStatus.BLOCKED: ":no_entry:",
    JobStatus.FAILED: ":x:",
    JobStatus.SUCCEEDED: ":white_check_mark:",
    JobStatus.CANCELLED: ":heavy_multiplication_x:",
}

STEP_ICONS: dict[StepStatus, str] = {
    StepStatus.PENDING: ":white_circle:",
    StepStatus.RUNNING: ":arrows_counterclockwise:",
    StepStatus.RETRYING: ":repeat:",
    StepStatus.WAITING: ":hourglass_flowing_sand:",
    StepStatus.BLOCKED: ":no_entry:",
    StepStatus.SUCCEEDED: ":white_check_mark:",
    StepStatus.FAILED: ":x:",
    StepStatus.CANCELLED: ":heavy_multiplication_x:",
}

MESSAGE_CHARS = 300  # a step's own message on its card line


# --- job cards ---------------------------------------------------------------------------


def card_title(view: JobView) -> str:
    """Plain text (the header): the job and its status in words."""
    return f"{view.name} — {view.status.value}"


def card_context(view: JobView) -> str:
    revision = f"`{escape(view.revision[:7])}`" if view.revision else "no revision"
    return (
        f"template *{escape(view.template)}* · revision {revision} · "
        f"started {date(view.created_at)} · cost {dollars(view.usage.cost_usd)}"
    )


def step_line(step: StepView, unfinished_needs: Sequence[str] = ()) -> str:
    icon = STEP_ICONS.get(step.status, ":grey_question:")
    return f"{icon} *{escape(step.name)}* — {step_doing(step, unfinished_needs)}"


def step_doing(step: StepView, unfinished_needs: Sequence[str] = ()) -> str:
    """What a step is doing or waiting for, in a few words."""
    note = safe(clip(step.message, MESSAGE_CHARS)) if step.message else ""
    status = step.status
    if status is StepStatus.PENDING:
        if unfinished_needs:
            return f"Pending, after {', '.join(escape(n) for n in unfinished_needs)}"
        return "Pending"
    if status is StepStatus.RUNNING:
        who = f" on *{escape(step.agent)}*" if step.agent else ""
        return f"Running{who} (attempt {step.attempts})"
    if status is StepStatus.RETRYING:
        at = f" at {date(step.next_attempt_at, '{time}')}" if step.next_attempt_at else ""
        return f"Retrying{at} (attempt {step.attempts} failed)" + (f": {note}" if note else "")
    if status is StepStatus.WAITING:
        wait = step.waiting
        if wait is None:
            return "Waiting" + (f": {note}" if note else "")
        where = f" in {channel(wait.channel)}" if wait.channel else ""
        if wait.kind == "question":
            return f"Waiting for an answer in the thread: {safe(clip(wait.text, 300))}"
        return (
            f"Waiting for approval from {people(wait.approvers)}{where} "
            f"({len(wait.approved_by)} of {wait.quorum})"
        )
    if status is StepStatus.BLOCKED:
        reason = f": {escape(step.reason)}" if step.reason else ""
        return f"Blocked{reason}" + (f" — {note}" if note else "")
    if status is StepStatus.FAILED:
        reason = f": {escape(step.reason)}" if step.reason else ""
        return f"Failed{reason}" + (f" — {note}" if note else "")
    if status is StepStatus.CANCELLED:
        return "Cancelled" + (f" — {note}" if note else "")
    return "Succeeded" + (f" — {note}" if note else "")


def collapsed(count: int, status: StepStatus) -> str:
    icon = STEP_ICONS.get(status, "")
    noun = "step" if count == 1 else "steps"
    return f"{icon} {count} {noun} {status.value.lower()}"


def more_steps(count: int, job: str) -> str:
    noun = "step" if count == 1 else "steps"
    return f"{count} more {noun} — `/george status {escape(job)}` lists them all"


def no_steps() -> str:
    return "_This job has no steps._"


def card_footer(view: JobView) -> str:
    parts = [f"Last change {date(view.updated_at)}"]
    if view.generation > 1:
        parts.append(f"generation {view.generation}")
    return " · ".join(parts)


def condition_line(condition: Condition) -> str:
    return f":warning: *{escape(condition.type)}*: {safe(clip(condition.message, 500))}"


def card_fallback(view: JobView) -> str:
    """The plain-text version of a card (notifications, screen readers)."""
    done = sum(s.status is StepStatus.SUCCEEDED for s in view.steps)
    text = f"{view.name}: {view.status.value} — {done} of {len(view.steps)} steps succeeded"
    waiting = [s for s in view.steps if s.status is StepStatus.WAITING and s.waiting]
    if waiting:
        step = waiting[0]
        assert step.waiting is not None
        text += f"; {step.name} is waiting for {people(step.waiting.approvers)}"
    stuck = [s for s in view.steps if s.status in (StepStatus.FAILED, StepStatus.BLOCKED)]
    if stuck:
        text += f"; {stuck[0].name} is {stuck[0].status.value.lower()}"
    return text


# --- approval requests -------------------------------------------------------------------


def approval_heading(job: str, step: str) -> str:
    return f":raising_hand: *Approval needed* for *{escape(step)}* of *{escape(job)}*"


def approval_body(text: str) -> str:
    quoted = "\n".join(f"> {line}" for line in safe(text).splitlines() or [""])
    return quoted


def approval_who(approvers: Sequence[str], quorum: int) -> str:
    needed = "1 approval is" if quorum == 1 else f"{quorum} approvals from different people are"
    return f"Approvers: {people(approvers)}. {needed} needed."


def approval_count(approvals: Sequence[str], quorum: int) -> str:
    """How far a live request has got, and who has counted so far."""
    noun = "approval" if quorum == 1 else "approvals"
    who = f": {people(approvals, conjunction='and')}" if approvals else ""
    return f":ballot_box_with_check: {len(approvals)} of {quorum} {noun}{who}"


def approval_how(approve: Sequence[str], reject: Sequence[str]) -> str:
    yes = f":{approve[0]}:" if approve else "an approve reaction"
    no = f":{reject[0]}:" if reject else "a reject reaction"
    return (
        f"Click *Approve* or *Reject* (which asks for your reason), or react {yes} to approve "
        f"or {no} to reject. To give a reason with a reaction, reply in this thread before you react."
    )


APPROVE_BUTTON = "Approve"
REJECT_BUTTON = "Reject"


def reject_title() -> str:
    return "Reject"


def reject_cancel() -> str:
    return "Cancel"


def reject_intro(job: str, step: str) -> str:
    return (f":x: You are rejecting *{escape(step)}* of *{escape(job)}*. "
            "The step fails, and its thread says why.")


def reject_label() -> str:
    return "Why do you reject it?"


def not_recorded() -> str:
    return ":warning: Your answer was not recorded: George is busy. Please try again."


def reason_needed() -> str:
    return "Please say why you reject it."


def request_gone() -> str:
    return "That request is not one of George's, so nothing was decided."


def approval_closed(how: str, *, by: Sequence[str] = (), at: datetime | None = None,
                    note: str = "", revision: str | None = None, new_request: str | None = None,
                    question: bool = False) -> str:
    """How a closed request ended, for the message that carried it (`how` is a
    `model.approvals.Closed` value)."""
    when = f" at {date(at, '{time}')}" if at is not None else ""
    who = f" by {people(by, conjunction='and')}" if by else ""
    if how == "Approved":
        return f":white_check_mark: *Approved*{who}{when}"
    if how == "Rejected":
        why = f": {safe(clip(note, 1000))}" if note else ""
        return f":x: *Rejected*{who}{when}{why}"
    if how == "Answered":
        return f":speech_balloon: *Answered*{when}" if question else f":white_check_mark: *Answered*{when}"
    if how == "TimedOut":
        return f":alarm_clock: *Timed out*{when}: nobody answered in time"
    if how == "Cancelled":
        where = (f"removed from Git in `{escape(revision[:7])}`" if revision
                 else "the job was removed from Git")
        return f":heavy_multiplication_x: *Cancelled*: {where}"
    see = (f"<{new_request}|see the new request>" if new_request
           else "see the step's new request, if it has one")
    return f":information_source: *Out of date*: the step changed — {see}"


def approval_closed_fallback(job: str, step: str, how: str) -> str:
    words = {"TimedOut": "Timed out", "Superseded": "Out of date"}.get(how, how)
    return f"{words}: the approval request for {step} of {job}"


def approval_continued(job: str, step: str, part: int, parts: int) -> str:
    return f"The approval request for *{escape(step)}* of *{escape(job)}*, continued ({part} of {parts}):"


def approval_continues() -> str:
    return ":arrow_down: The rest of this request is in the thread below."


def approval_escalated(to: Sequence[str]) -> str:
    return f":rotating_light: *Escalated*: nobody decided in time, so {people(to)} may decide it too."


def approval_replaces() -> str:
    return (
        ":information_source: The step changed in Git since it was last asked, "
        "so earlier answers no longer count."
    )


def question_heading(job: str, step: str) -> str:
    return f":question: *{escape(step)}* of *{escape(job)}* asks:"


def question_how() -> str:
    return "Reply in this thread to answer; the agent continues with your answer."


def question_fallback(job: str, step: str, text: str) -> str:
    return f"{step} of {job} asks: {text}"


def approval_fallback(job: str, step: str, text: str, approvers: Sequence[str]) -> str:
    return f"Approval needed for {step} of {job}: {text} (approvers: {people(approvers)})"


def approval_elsewhere(step: str, where: str, link: str | None) -> str:
    # Slack does not allow a mention inside a link's label: the channel and the link stand apart.
    opened = f" (<{link}|open the request>)" if link else ""
    return f":raising_hand: The approval request for *{escape(step)}* is in {channel(where)}{opened}."


def approval_post_failed(step: str, where: str, error: str) -> str:
    return (
        f":warning: I could not post the approval request for *{escape(step)}* "
        f"in {channel(where)} ({escape(error)}), so it is here instead."
    )


# --- decisions on approval requests ------------------------------------------------------


def approved(user: str, step: str) -> str:
    return f":white_check_mark: {person(user)} approved *{escape(step)}*."


def approval_recorded(user: str, step: str, count: int, quorum: int) -> str:
    return (
        f":ballot_box_with_check: {person(user)} approved *{escape(step)}* "
        f"({count} of {quorum} approvals)."
    )


def already_counted(step: str, approvals: Sequence[str], quorum: int,
                    approvers: Sequence[str]) -> str:
    return (
        f"Your approval of *{escape(step)}* is already counted ({len(approvals)} of {quorum}); "
        f"another approver is needed. {can_approve(approvers)}"
    )


def rejected(user: str, step: str, note: str) -> str:
    why = f": {safe(clip(note, 1000))}" if note else "."
    return f":x: {person(user)} rejected *{escape(step)}*{why}"


def not_an_approver(step: str, approvers: Sequence[str]) -> str:
    return (
        f"Only {people(approvers)} can approve *{escape(step)}*, "
        "so your answer was not counted."
    )


def writing_off() -> str:
    return ":information_source: This George does not write to Git, so jobs start and stop by commits."


def no_such_template(name: str | None, templates: Sequence[str]) -> str:
    known = ", ".join(f"`{escape(t)}`" for t in templates) or "none yet"
    if not name:
        return f"Say which template: `/george run TEMPLATE`. Templates: {known}."
    return f"There is no template `{escape(name)}` in Git. Templates: {known}."


def job_started(written: Written) -> str:
    return _committed(written, f"*{escape(written.job)}* is committed", "the job starts once it is merged",
                      ":rocket:", "its card appears once George syncs it, in a moment")


def job_cancelled(written: Written) -> str:
    return _committed(written, f"The removal of *{escape(written.job)}* is committed", "",
                      ":wastebasket:", "George cancels its run at the next sync")


def _committed(written: Written, what: str, merged: str, icon: str, then: str) -> str:
    sha, branch = f"`{written.sha[:7]}`", f"`{escape(written.branch)}`"
    if written.review:
        where = "open a pull request from it"
        where = f"<{written.link}|{where}>" if written.link else where
        return (f":arrows_counterclockwise: {what} as you on branch {branch} ({sha}): {where}"
                + (f"; {merged}." if merged else "."))
    return f"{icon} {what} to {branch} as you ({sha}); {then}."


def own_job(job: str, step: str, others: Sequence[str]) -> str:
    return (
        f"You committed *{escape(job)}* to Git, and the four-eyes rule needs someone else to "
        f"decide *{escape(step)}*, so your answer was not counted."
        + (f" {people(others)} can." if others else " Ask another approver to be added.")
    )


def not_waiting(step: str, status: str, approvers: Sequence[str]) -> str:
    return (
        f"*{escape(step)}* is not waiting for approval any more "
        f"(it is {escape(status)}), so your answer was not counted. {can_approve(approvers)}"
    )


def stale_request(step: str, why: str = "", approvers: Sequence[str] = ()) -> str:
    because = why.rsplit(": ", 1)[-1] if why else "the step changed since it was asked"
    state = "closed" if "already" in because or "timed out" in because or "cancelled" in because \
        else "out of date"
    return (
        f"This request for *{escape(step)}* is {state} ({escape(because)}), so your answer "
        f"decided nothing. Please answer the step's current request, if it has one. "
        f"{can_approve(approvers)}"
    ).rstrip()


def can_approve(approvers: Sequence[str]) -> str:
    """Who can approve, said to someone whose answer did not count."""
    return f"Its approvers are {people(approvers)}." if approvers else ""


# --- thread chatter ----------------------------------------------------------------------


def step_output(step: str | None, text: str) -> str:
    head = f"Output of *{escape(step)}*:" if step else "Output:"
    return f"{head}\n{code(text, 2800)}"


def note(step: str | None, text: str) -> str:
    body = safe(clip(text, 2800))
    return f"*{escape(step)}*: {body}" if step else body


# --- commands and mentions ---------------------------------------------------------------


def retry_done(message: str) -> str:
    return f":repeat: {safe(message)}."


def retry_nothing(message: str) -> str:
    return f"{safe(message)}."


def refused(error: str) -> str:
    return f":warning: {safe(error)}."


def retry_which_job() -> str:
    return (
        "Which job should I retry? Say `retry JOB`, "
        "or say `retry` in the thread of that job's card."
    )


def no_such_job(job: str) -> str:
    return f"There is no job named `{escape(job)}`. `/george status` lists the jobs."


def not_understood(words: str) -> str:
    return f"I did not understand `{escape(clip(words, 100))}`."


def help_lines() -> list[str]:
    return [
        "*George* runs the processes committed to Git as jobs and asks people here "
        "when a step needs them.",
        "• `/george status` — agents, jobs by status (what waits for you first) and the Git sync",
        "• `/george status JOB` — one job's steps",
        "• `/george run TEMPLATE` — start a job: a form asks for its name and variables, and "
        "George commits it to Git as you",
        "• `/george cancel JOB` — commit the job's removal from Git, which cancels its run",
        "• `/george help` — this help",
        "• Mention me with `retry JOB` to retry a job's failed and blocked steps, or just "
        "`retry` in the thread of a job's card. `status` works in mentions too.",
        "• Click *Approve* or *Reject* on an approval request (Reject asks for your reason), "
        "or react :white_check_mark: to approve it, :x: to reject it (reply in the thread first "
        "to say why). A closed request says how it ended.",
        "• Replies in a job card's thread are passed to that job's agents.",
    ]


def help_fallback() -> str:
    return ("George: /george status [JOB], /george run TEMPLATE, /george cancel JOB, /george help; "
            "mention me with retry JOB.")


# --- status summary and App Home ---------------------------------------------------------


def status_title() -> str:
    return "George status"


def sync_line(revision: RevisionView | None, error: str | None = None) -> str:
    if revision is None:
        line = ":grey_question: Git has not been synced yet."
    else:
        subject = safe(clip(revision.message.splitlines()[0] if revision.message else "", 80))
        line = (
            f":arrows_counterclockwise: Synced revision `{escape(revision.sha[:7])}` "
            f"{('“' + subject + '”') if subject else ''} {ago(revision.synced_at)}"
        ).replace("  ", " ")
    if error:
        line += (f"\n:warning: *The Git sync is failing*: {escape(clip(error, 300))}. "
                 "Jobs go on at this revision.")
    return line


def sandbox_line(sandbox: str) -> str:
    """`bubblewrap: bubblewrap 0.8.0` → a line saying steps run sandboxed, or loudly not."""
    kind, _, detail = sandbox.partition(": ")
    if not sandbox:
        return ":grey_question: No George has said how it runs steps yet."
    if kind == "bubblewrap":
        return f":lock: Steps run sandboxed ({escape(detail)})."
    return f":warning: *Steps are not sandboxed*: {escape(detail)}."


def manifest_errors(errors: Sequence[dict[str, Any]], shown: int = 5) -> str:
    if not errors:
        return ":white_check_mark: No manifest errors."
    lines = [f":warning: *{len(errors)} manifest error{'s' if len(errors) != 1 else ''}*"]
    for err in errors[:shown]:
        where = f"{err.get('file', '-')}:{err.get('line') or '-'}"
        what = f"{err.get('kind', '-')}/{err.get('name', '-')}"
        message = safe(clip(str(err.get("message", "")), 300))
        lines.append(f"• `{escape(where)}` {escape(what)}: {message}")
    if len(errors) > shown:
        lines.append(f"… and {len(errors) - shown} more (`georgebot validate` lists them)")
    return "\n".join(lines)


def agents_heading() -> str:
    return "*Agents*"


def no_agents() -> str:
    return "_No agents are defined in Git._"


def agent_line(agent: AgentView) -> str:
    grants = " · ".join(
        f"{escape(kind)}: {', '.join(escape(v) for v in values)}"
        for kind, values in sorted(agent.capabilities.items())
    ) or "no capabilities"
    model = f" ({escape(agent.model)})" if agent.model else ""
    return f"• *{escape(agent.name)}*{model} — {grants} — {agent.running} running"


def jobs_heading(label: str, count: int) -> str:
    return f"*{label}* ({count})"


def waiting_for_you() -> str:
    return "Waiting for you"


def no_jobs() -> str:
    return "_No jobs yet._"


def job_line(view: JobView) -> str:
    icon = JOB_ICONS.get(view.status, "")
    cost = f" · {dollars(view.usage.cost_usd)}" if view.usage.cost_usd else ""
    return f"{icon} *{escape(view.name)}* — {job_summary(view)}{cost}"


def job_summary(view: JobView) -> str:
    """One job in a few words: its status and the step that matters most now."""
    done = sum(s.status is StepStatus.SUCCEEDED for s in view.steps)
    total = len(view.steps)
    for wanted in (StepStatus.WAITING, StepStatus.FAILED, StepStatus.BLOCKED,
                   StepStatus.RUNNING, StepStatus.RETRYING):
        step = next((s for s in view.steps if s.status is wanted), None)
        if step is not None:
            doing = step_doing(step)
            return (f"{view.status.value}: *{escape(step.name)}* {doing[:1].lower()}{doing[1:]} "
                    f"({done}/{total} done)")
    return f"{view.status.value} ({done}/{total} done)"


def waiting_line(view: JobView, step: StepView) -> str:
    text = safe(clip(step.waiting.text, 200)) if step.waiting else ""
    return f":hourglass_flowing_sand: *{escape(step.name)}* of *{escape(view.name)}* — {text}"


def home_title() -> str:
    return "George"


def home_intro(user: str) -> str:
    return f"Hello {person(user)}: what waits for you, what runs and what needs a person."


def nothing_waits() -> str:
    return "Nothing waits for you."


def home_sections() -> dict[str, str]:
    return {"running": "Running", "stuck": "Failed and blocked", "sync": "Git sync"}


def truncated(count: int) -> str:
    return f"… and {count} more"


def status_fallback(jobs: Iterable[JobView]) -> str:
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.status.value] = counts.get(job.status.value, 0) + 1
    summary = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or "no jobs"
    return f"George status: {summary}."


def when(at: datetime) -> str:
    return date(at)


# --- requests refused in HTTP mode (the sender's answer, the operator's log) --------------

REFUSED_UNSIGNED = "not signed: no X-Slack-Signature or X-Slack-Request-Timestamp"
REFUSED_FORGED = "signature or timestamp not valid"
REFUSED_CUT_SHORT = "body cut short"
REFUSED_UNREADABLE = "signed, but not a Slack payload"


def payload_failed(error: str) -> str:
    return f"answered 400 to a signed payload George could not handle ({_one_line(error)})"


def refused_too_large(limit: int) -> str:
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if limit % size == 0:
            return f"body over {limit // size} {unit}"
    return f"body over {limit} bytes"


def request_refused(path: str, remote: str | None, status: int, reason: str, every: float) -> str:
    return (f"refused a request to {path} from {remote or 'an unknown address'} ({status}: {reason}); "
            f"further refusals are counted and logged every {_seconds(every)}")


def requests_refused(path: str, counts: Mapping[str, int], over: float) -> str:
    total = sum(counts.values())
    why = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items(), key=lambda c: -c[1]))
    return (f"refused {total} more {'request' if total == 1 else 'requests'} to {path} "
            f"in the last {_seconds(over)} ({why})")


def _one_line(text: str) -> str:
    """Error text about a payload can quote it: one line, and short, in the log."""
    return clip(" ".join(text.split()), 200)


def _seconds(value: float) -> str:
    return f"{max(1, round(value))} s"
