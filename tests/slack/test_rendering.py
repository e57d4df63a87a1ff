"""Block Kit rendering is a pure function of a view: what people read, and Slack's limits held
whatever the view holds. No client in sight."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from georgebot.devslack.blocks import check_blocks
from georgebot.model.attempts import Replica
from georgebot.model.status import Condition, JobStatus, StepStatus
from georgebot.model.views import AgentView, JobView, RevisionView, StatusView, StepView, Usage, WaitView
from georgebot.slack import blocks
from georgebot.slack.commands import Command, parse, vote

AT = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def a_step(name: str, status: StepStatus = StepStatus.SUCCEEDED, **kw: Any) -> StepView:
    return StepView(name=name, form=kw.pop("form", "run"), status=status, reason=kw.pop("reason", None),
                    message=kw.pop("message", ""), attempts=kw.pop("attempts", 1), **kw)


def a_job(*steps: StepView, status: JobStatus = JobStatus.RUNNING, name: str = "onboard-alice",
          **kw: Any) -> JobView:
    return JobView(name=name, template="onboard-employee", status=status, generation=1,
                   channel="#onboarding", revision="0123456789abcdef", steps=steps,
                   created_at=AT, updated_at=AT + timedelta(minutes=5), **kw)


def dicts(rendered: list[Any]) -> list[dict[str, Any]]:
    return [b.to_dict() for b in rendered]  # to_dict() checks slack_sdk's own limits


def texts(rendered: list[Any]) -> list[str]:
    out = []
    for block in dicts(rendered):
        if "text" in block:
            out.append(block["text"]["text"])
        for element in block.get("elements", []):
            out.append(element["text"])
    return out


def test_a_card_reads_as_header_context_steps_and_footer() -> None:
    view = a_job(
        a_step("create-account", message="made alice"),
        a_step("laptop-ordered", StepStatus.WAITING, form="ask", needs=("create-account",),
               waiting=WaitView(channel="#it", text="Laptop?", approvers=("U012IT", "S0ITTEAM"),
                                quorum=1)),
        a_step("directory-up", StepStatus.RETRYING, attempts=2, message="HTTP 503",
               next_attempt_at=AT + timedelta(seconds=10)),
        a_step("welcome", StepStatus.BLOCKED, reason="CapabilityMissing",
               message="agent lacks shell: tools/welcome", agent="it-helper"),
        a_step("goodbye", StepStatus.PENDING, needs=("welcome", "create-account")),
        status=JobStatus.WAITING, usage=Usage(cost_usd=0.1234),
    )

    rendered, fallback = blocks.job_card(view)

    assert texts(rendered) == [
        "onboard-alice — Waiting",
        "template *onboard-employee* · revision `0123456` · started "
        "<!date^1795510800^{date_short_pretty} {time}|2026-11-24 09:00:00 UTC> · cost $0.123",
        ":white_check_mark: *create-account* — Succeeded — made alice\n"
        ":hourglass_flowing_sand: *laptop-ordered* — Waiting for approval from <@U012IT> or "
        "<!subteam^S0ITTEAM> in #it (0 of 1)\n"
        ":repeat: *directory-up* — Retrying at <!date^1795510810^{time}|2026-11-24 09:00:10 UTC> "
        "(attempt 2 failed): HTTP 503\n"
        ":no_entry: *welcome* — Blocked: CapabilityMissing — agent lacks shell: tools/welcome\n"
        ":white_circle: *goodbye* — Pending, after welcome",
        "Last change <!date^1795511100^{date_short_pretty} {time}|2026-11-24 09:05:00 UTC>",
    ]
    assert fallback == ("onboard-alice: Waiting — 1 of 5 steps succeeded; laptop-ordered is "
                        "waiting for <@U012IT> or <!subteam^S0ITTEAM>; welcome is blocked")


def test_a_card_shows_its_cost_to_the_cent_above_a_dollar_and_to_a_tenth_of_a_cent_below() -> None:
    for cost, shown in ((0.004, "cost $0.004"), (0.0004, "cost <$0.001"), (12.345, "cost $12.35"),
                        (0.0, "cost $0.00")):
        context = texts(blocks.job_card(a_job(a_step("a"), usage=Usage(cost_usd=cost)))[0])[1]
        assert context.endswith(shown), (cost, context)


def test_the_final_card_says_its_status_in_words() -> None:
    for status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.BLOCKED, JobStatus.CANCELLED):
        rendered, fallback = blocks.job_card(a_job(a_step("a"), status=status))
        assert texts(rendered)[0] == f"onboard-alice — {status.value}"
        assert f": {status.value} —" in fallback


def test_a_fifty_step_job_collapses_finished_steps_and_stays_within_limits() -> None:
    steps = [a_step(f"step-{i:02}") for i in range(45)]
    steps += [a_step(f"late-{i}", StepStatus.FAILED, reason="ExitCode", message="x" * 5000)
              for i in range(3)]
    steps += [a_step("now", StepStatus.RUNNING), a_step("next", StepStatus.PENDING, needs=("now",))]
    view = a_job(*steps, conditions=(Condition("Stalled", True, "Stalled", "no progress", AT),))

    rendered, fallback = blocks.job_card(view)

    body = "\n".join(texts(rendered))
    assert ":white_check_mark: 45 steps succeeded" in body
    assert "step-07" not in body
    assert "*late-2* — Failed: ExitCode" in body and "*next* — Pending, after now" in body
    assert ":warning: *Stalled*: no progress" in body
    assert len(rendered) <= 50 and check_blocks(dicts(rendered)) == []
    assert len(fallback) <= 3000


def test_a_huge_job_is_cut_with_a_count_never_an_error() -> None:
    steps = [a_step(f"s{i}", StepStatus.FAILED, reason="ExitCode", message="y" * 400)
             for i in range(1000)]

    rendered, _ = blocks.job_card(a_job(*steps, status=JobStatus.FAILED))

    assert len(rendered) == 50 and check_blocks(dicts(rendered)) == []
    last_section = texts(rendered)[-2]
    assert last_section.endswith("more steps — `/george status onboard-alice` lists them all")
    assert all(len(t) <= 3000 for t in texts(rendered))


def test_untrusted_text_cannot_ping_everyone_or_hide_a_link() -> None:
    view = a_job(a_step("a", StepStatus.FAILED,
                        message="<!channel> see <https://evil.example|docs> cc <@U0ME> & <#C0IT>"))

    line = texts(blocks.job_card(view)[0])[2]

    assert line.endswith("&lt;!channel&gt; see &lt;https://evil.example|docs&gt; cc <@U0ME> "
                         "&amp; <#C0IT>")


def test_an_approval_request_names_the_approvers_and_how_to_answer() -> None:
    rendered, fallback = blocks.approval_request(blocks.RequestShown(
        id="r1", job="onboard-alice", step="laptop-ordered", text="Is a laptop ordered for Alice?",
        approvers=["U012IT", "S0ITTEAM"], quorum=2, approvals=["U012IT"], replaces=True),
        approve=["white_check_mark"], reject=["x"])

    assert texts(rendered) == [
        ":raising_hand: *Approval needed* for *laptop-ordered* of *onboard-alice*\n"
        "> Is a laptop ordered for Alice?",
        "Approvers: <@U012IT> or <!subteam^S0ITTEAM>. 2 approvals from different people are "
        "needed.\n:ballot_box_with_check: 1 of 2 approvals: <@U012IT>\n"
        "Click *Approve* or *Reject* (which asks for your reason), or react :white_check_mark: "
        "to approve or :x: to reject. To give a reason with a reaction, reply in this thread "
        "before you react.",
        ":information_source: The step changed in Git since it was last asked, so earlier "
        "answers no longer count.",
        {"type": "plain_text", "text": "Approve", "emoji": True},
        {"type": "plain_text", "text": "Reject", "emoji": True},
    ]
    buttons = dicts(rendered)[-1]
    assert buttons["type"] == "actions"
    assert [(b["action_id"], b["value"], b["style"]) for b in buttons["elements"]] == [
        ("george_approve", "r1", "primary"), ("george_reject", "r1", "danger")]
    assert check_blocks(dicts(rendered)) == []
    assert fallback.startswith("Approval needed for laptop-ordered of onboard-alice")


def test_a_closed_request_says_how_it_ended_and_offers_nothing_to_click() -> None:
    base = blocks.RequestShown(id="r1", job="j", step="gate", text="ok?", approvers=["U01ALEX"])
    ended = {
        "Approved": (dict(closed_by=["U01ALEX"], closed_at=AT),
                     f":white_check_mark: *Approved* by <@U01ALEX> at <!date^{int(AT.timestamp())}"
                     "^{time}|2026-11-24 09:00:00 UTC>"),
        "Rejected": (dict(closed_by=["U01SAM"], note="no <budget>"),
                     ":x: *Rejected* by <@U01SAM>: no &lt;budget&gt;"),
        "Cancelled": (dict(revision="abc1234"), ":heavy_multiplication_x: *Cancelled*: removed from "
                      "Git in `abc1234`"),
        "Superseded": (dict(new_request="https://slack.example/archives/C1/p2"),
                       ":information_source: *Out of date*: the step changed — "
                       "<https://slack.example/archives/C1/p2|see the new request>"),
        "TimedOut": (dict(), ":alarm_clock: *Timed out*: nobody answered in time"),
    }
    for how, (extra, said) in ended.items():
        rendered, fallback = blocks.approval_request(replace(base, closed=how, **extra))
        assert how.lower()[:4] in fallback.lower() or how == "Superseded", how
        assert texts(rendered)[-1] == said, how
        assert [b["type"] for b in dicts(rendered)] == ["section", "section"], how
        assert "Approvers" not in " ".join(texts(rendered))
    no_sha = blocks.approval_request(replace(base, closed="Cancelled"))[0]
    assert texts(no_sha)[-1].endswith("Cancelled*: the job was removed from Git")


def test_a_long_request_is_never_cut() -> None:
    argv = " ".join(f"--flag-{i}=<value&{i}>" for i in range(6000))  # over 45 sections
    shown = blocks.RequestShown(id="r1", job="j", step="deploy", text=argv + "\nlast line",
                                approvers=["U01ALEX"])

    rendered, fallback = blocks.approval_request(shown)
    rest = blocks.approval_overflow(shown)

    assert len(fallback) <= blocks.FALLBACK_CHARS
    assert check_blocks(dicts(rendered)) == []
    assert rest and all(check_blocks(dicts(more)) == [] for more, _ in rest)
    assert any("The rest of this request is in the thread below" in str(t) for t in texts(rendered))
    sections = [b["text"]["text"] for m in [rendered, *(more for more, _ in rest)]
                for b in dicts(m) if b["type"] == "section"]
    assert all(len(t) <= blocks.SECTION_CHARS for t in sections)
    body = "".join(line.removeprefix("> ") for t in sections for line in t.split("\n")[
        (1 if t is sections[0] else 0):])
    assert body.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == argv + "last line"


def status(*jobs: JobView, errors: int = 0) -> StatusView:
    return StatusView(
        revision=RevisionView(sha="fedcba9876543210", message="add onboarding\n\nbody", synced_at=AT),
        manifest_errors=tuple({"file": "manifests/x.yaml", "line": i + 1, "kind": "Job",
                               "name": f"x{i}", "message": "bad"} for i in range(errors)),
        agents=(AgentView(name="it-helper", capabilities={"shell": ["tools/a"], "http": ["h.example"]},
                          running=1, model="claude"),),
        jobs=jobs,
    )


def waiting_on(approvers: tuple[str, ...], name: str) -> JobView:
    return a_job(a_step("gate", StepStatus.WAITING, form="ask",
                        waiting=WaitView(channel="#ops", text="ok?", approvers=approvers, quorum=1)),
                 status=JobStatus.WAITING, name=name)


def test_status_puts_what_waits_for_this_user_first() -> None:
    view = status(a_job(a_step("a"), status=JobStatus.SUCCEEDED, name="done"),
                  waiting_on(("U0OTHER",), "theirs"), waiting_on(("S0TEAM",), "mine"),
                  errors=7)

    rendered, fallback = blocks.status_summary(view, "U0ME", frozenset({"S0TEAM"}))

    body = texts(rendered)
    assert body[0] == "George status"
    assert body[1].startswith(":arrows_counterclockwise: Synced revision `fedcba9` “add onboarding” "
                              "<!date^1795510800^{ago}|")
    assert ":warning: *7 manifest errors*" in body[1] and "… and 2 more" in body[1]
    assert "• *it-helper* (claude) — http: h.example · shell: tools/a — 1 running" in body[2]
    assert body[3].startswith("*Waiting for you* (1)\n:hourglass_flowing_sand: *gate* of *mine*")
    assert body[4].startswith("*Waiting* (2)") and body[5].startswith("*Succeeded* (1)")
    assert fallback == "George status: 1 succeeded, 2 waiting."


def test_status_of_many_jobs_and_the_home_tab_stay_within_limits() -> None:
    jobs = [waiting_on(("U0ME",), f"job-{i:04}") for i in range(1500)]

    rendered, _ = blocks.status_summary(status(*jobs), "U0ME")
    home = blocks.app_home(status(*jobs), "U0ME").to_dict()

    assert len(rendered) <= 50 and check_blocks(dicts(rendered)) == []
    assert len(home["blocks"]) <= 100 and check_blocks(home["blocks"], surface="home") == []
    assert home["type"] == "home"
    assert "more" in "\n".join(texts(rendered))


def test_help_lists_the_commands() -> None:
    rendered, fallback = blocks.help_text()
    assert "`/george status JOB`" in texts(rendered)[0]
    assert "/george status" in fallback


def test_commands_and_reactions_are_parsed() -> None:
    assert parse("") == Command("help")
    assert parse("status") == Command("status")
    assert parse("<@U0GEORGE> status Onboard-Alice") == Command("status", "onboard-alice")
    assert parse("<@U0GEORGE|george> retry `j`") == Command("retry", "j")
    assert parse("RETRY") == Command("retry")
    assert parse("frobnicate the job") == Command("help", unknown="frobnicate the job")
    approve, reject = ("white_check_mark", "heavy_check_mark"), ("x",)
    assert vote("white_check_mark::skin-tone-4", approve, reject) is True
    assert vote(":heavy_check_mark:", approve, reject) is True
    assert vote("x", approve, reject) is False
    assert vote("eyes", approve, reject) is None


def test_status_says_whether_steps_are_sandboxed() -> None:
    confined = replace(status(), sandbox="bubblewrap: bubblewrap 0.8.0")
    bare = replace(status(), sandbox="none: bubblewrap (bwrap) is not installed")

    said = texts(blocks.status_summary(confined, "U0ME")[0])[1]
    warned = texts(blocks.status_summary(bare, "U0ME")[0])[1]

    assert ":lock: Steps run sandboxed (bubblewrap 0.8.0)." in said
    assert ":warning: *Steps are not sandboxed*: bubblewrap (bwrap) is not installed." in warned


def test_status_says_when_the_git_sync_fails() -> None:
    failing = replace(status(), replicas=(Replica(
        id="george-1", host="h", pid=1, version="0.1.0", sandbox="bubblewrap: b", started_at=AT,
        heartbeat_at=AT, sync_error="cannot fetch origin: connection refused"),))

    said = texts(blocks.status_summary(failing, "U0ME")[0])[1]

    assert (":warning: *The Git sync is failing*: cannot fetch origin: connection refused. "
            "Jobs go on at this revision.") in said
