"""The Approve and Reject buttons on a live request, over the real bolt app: Approve decides as
a ✅ does; Reject opens a modal asking for the reason, and its submission rejects with that
reason; a click by someone who may not decide is told so privately; a click George cannot
record in time is answered with an error the person sees. In Socket Mode on the local Slack,
and in HTTP mode with bolt checking the signature."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp.test_utils import TestClient

from georgebot.devslack import LocalSlack, Message
from georgebot.devslack.events import block_actions_payload
from georgebot.engine.service import Engine
from georgebot.slack import EVENTS_PATH
from tests.engine.harness import FakeSource, job, step
from tests.engine.test_a_busy_database_loses_nothing import Lock
from tests.slack.support import ALEX, OPS, PAT, SAM, George, text_of
from tests.slack.test_transport import http, signed  # noqa: F401  (the HTTP-mode fixture)


def gated(**ask: object) -> object:
    return job("j", step("gate", ask={"approvers": [ALEX, SAM], **ask}), step("after", needs=("gate",)))


def button(message: Message | None, action_id: str) -> dict[str, Any]:
    assert message is not None and message.blocks
    return next(e for b in message.blocks if b["type"] == "actions" for e in b["elements"]
                if e["action_id"] == action_id)


async def click(george: George, user: str, message: Message | None, action_id: str) -> None:
    assert message is not None
    delivery = await george.slack.click(user, action_id, channel=message.channel, ts=message.ts)
    assert delivery is not None
    await george.slack.wait_for(lambda: delivery.acked)


async def test_approve_decides_as_a_check_mark_does(george: George) -> None:
    george.commit(gated())
    request = await george.until(lambda: george.approval("j", "gate"))
    assert button(request, "george_approve")["value"] == george.run("j").step("gate").waits.request

    await click(george, ALEX, request, "george_approve")

    await george.until(lambda: george.step_status("j", "after") == "Succeeded")
    assert f"<@{ALEX}> approved *gate*" in george.thread_text("j")
    assert any(e.actor == f"user:{ALEX}" and e.reason == "Approved" for e in george.store.events("j"))
    await george.until(lambda: "*Approved* by" in text_of(george.approval("j", "gate")))


async def test_reject_asks_for_the_reason_in_a_modal_and_rejects_with_it(george: George) -> None:
    george.commit(gated())
    request = await george.until(lambda: george.approval("j", "gate"))

    await click(george, SAM, request, "george_reject")

    modal = await george.slack.wait_for(lambda: george.slack.modal(SAM))
    assert modal["title"]["text"] == "Reject" and modal["submit"]["text"] == "Reject"
    assert "*gate*" in modal["blocks"][0]["text"]["text"]
    field = modal["blocks"][1]
    assert field["type"] == "input" and not field.get("optional")
    assert george.step_status("j", "gate") == "Waiting"  # nothing decided yet

    await george.slack.submit_modal(SAM, {"reason": {"reason": "not this quarter"}})

    await george.slack.wait_for(lambda: george.slack.modal(SAM) is None)
    await george.until(lambda: george.step_status("j", "gate") == "Failed")
    state = george.run("j").step("gate")
    assert state is not None and state.message == f"rejected by <@{SAM}>: not this quarter"
    await george.until(lambda: f"<@{SAM}> rejected *gate*: not this quarter" in george.thread_text("j"))
    closed = await george.until(lambda: (m := george.approval("j", "gate")) and "*Rejected*" in text_of(m)
                                and m)
    assert text_of(closed).rstrip().endswith(": not this quarter")


async def test_a_strangers_click_is_told_who_can_approve(george: George) -> None:
    george.commit(gated())
    request = await george.until(lambda: george.approval("j", "gate"))

    await click(george, PAT, request, "george_approve")

    note = await george.until(lambda: george.ephemeral_text(PAT))
    assert f"Only <@{ALEX}> or <@{SAM}> can approve *gate*" in note
    assert george.slack.last_ephemeral(PAT).thread_ts is None
    assert george.step_status("j", "gate") == "Waiting"


async def test_a_forged_request_id_decides_nothing(george: George) -> None:
    george.commit(gated())
    request = await george.until(lambda: george.approval("j", "gate"))
    assert request is not None and request.blocks
    forged = [{**b, "elements": [{**e, "value": "not-a-request"} for e in b["elements"]]}
              if b["type"] == "actions" else b for b in request.blocks]
    george.slack.state.update_message(request, text=request.text, blocks=forged, editor=PAT)

    await click(george, ALEX, request, "george_approve")

    assert "not one of George's" in await george.until(lambda: george.ephemeral_text(ALEX))
    assert george.step_status("j", "gate") == "Waiting"


async def test_a_click_the_busy_database_cannot_record_says_so(george: George, tmp_path: Path) -> None:
    george.commit(gated())
    request = await george.until(lambda: george.approval("j", "gate"))
    await george.until(lambda: "Waiting" in george.headline("j"))
    assert george.surface.listeners is not None
    george.surface.listeners.record_within = 0.05
    lock = Lock(tmp_path / "george.db")
    try:
        await click(george, ALEX, request, "george_approve")
        note = await george.until(lambda: george.ephemeral_text(ALEX))
    finally:
        lock.release()
    assert "not recorded" in note and "try again" in note
    # The decision was not dropped: recorded once the database answers, and said in the thread.
    await george.until(lambda: george.step_status("j", "after") == "Succeeded")
    assert f"<@{ALEX}> approved *gate*" in george.thread_text("j")


async def test_http_mode_takes_a_signed_click(http: TestClient, slack: LocalSlack,  # noqa: F811
                                              engine: Engine, source: FakeSource) -> None:
    source.commit(gated())
    engine.wake(sync=True)
    await engine.settle()
    request = await slack.wait_for(lambda: next((m for m in slack.state.all_messages()
                                                 if "Approval needed" in json.dumps(m.blocks)), None))
    action = button(request, "george_approve")
    payload = block_actions_payload(slack.state, user=ALEX, action=action, block_id="george_request",
                                    message=request)
    body = urlencode({"payload": json.dumps(payload)})

    answer = await http.post(EVENTS_PATH, data=body, headers=signed(
        body, content_type="application/x-www-form-urlencoded"))
    assert answer.status == 200
    forged = await http.post(EVENTS_PATH, data=body, headers=signed(
        body, secret="another", content_type="application/x-www-form-urlencoded"))
    assert forged.status == 401

    await engine.settle()
    said = f"<@{ALEX}> approved *gate*"
    await slack.wait_for(lambda: any(said in json.dumps(m.blocks) for m in slack.state.all_messages()),
                         timeout=10)
    assert request.channel == OPS


async def test_a_reason_the_busy_database_cannot_record_is_refused_in_the_modal(
        george: George, tmp_path: Path) -> None:
    george.commit(gated())
    request = await george.until(lambda: george.approval("j", "gate"))
    await george.until(lambda: "Waiting" in george.headline("j"))
    await click(george, SAM, request, "george_reject")
    await george.slack.wait_for(lambda: george.slack.modal(SAM))
    assert george.surface.listeners is not None
    george.surface.listeners.record_within = 0.05
    lock = Lock(tmp_path / "george.db")
    try:
        await george.slack.submit_modal(SAM, {"reason": {"reason": "not now"}})
        modal = await george.slack.wait_for(lambda: (m := george.slack.modal(SAM)) and m["errors"] and m)
    finally:
        lock.release()
    assert "not recorded" in modal["errors"]["reason"] and "try again" in modal["errors"]["reason"]
