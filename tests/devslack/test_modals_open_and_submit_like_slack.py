"""Modals in the local Slack: `views.open` with a click's trigger_id, checked as Slack checks
a view; a person's submission reaching bolt as `view_submission` with `view.state.values`; the
app's ack closing the modal, or showing its errors in it; `views.update`."""

from __future__ import annotations

from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.web.async_client import AsyncWebClient

from georgebot.devslack import LocalSlack
from georgebot.devslack.people import ActionError
from tests.devslack.support import ALEX, GEORGE_CHANNEL, SAM, Bolt, as_the_page
from tests.devslack.test_web_api_answers_like_slack import error_of

MODAL: dict[str, Any] = {
    "type": "modal", "callback_id": "why", "private_metadata": "r1",
    "title": {"type": "plain_text", "text": "Reject"},
    "submit": {"type": "plain_text", "text": "Reject"},
    "blocks": [{"type": "input", "block_id": "reason", "label": {"type": "plain_text", "text": "Why?"},
                "element": {"type": "plain_text_input", "action_id": "reason"}}],
}


async def a_button(bolt: Bolt) -> str:
    posted = await bolt.app.client.chat_postMessage(channel=GEORGE_CHANNEL, text="gate", blocks=[
        {"type": "actions", "elements": [
            {"type": "button", "action_id": "reject", "value": "r1",
             "text": {"type": "plain_text", "text": "Reject"}}]}])
    return str(posted["ts"])


async def test_a_click_opens_a_modal_and_its_submission_reaches_the_app(
        slack: LocalSlack, bolt: Bolt) -> None:
    submitted: list[dict[str, Any]] = []
    answers = iter([{"response_action": "errors", "errors": {"reason": "Say more"}}, None])

    @bolt.app.action("reject")
    async def on_reject(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        opened = await client.views_open(trigger_id=body["trigger_id"], view=MODAL)
        assert opened["view"]["id"].startswith("V") and opened["view"]["callback_id"] == "why"

    @bolt.app.view("why")
    async def on_why(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        submitted.append(view)
        answer = next(answers)
        await (ack(**answer) if answer else ack())

    await bolt.connect(slack)
    ts = await a_button(bolt)
    await slack.click(ALEX, "reject", channel=GEORGE_CHANNEL, ts=ts)
    modal = await slack.wait_for(lambda: slack.modal(ALEX))
    assert modal["title"]["text"] == "Reject" and modal["blocks"][0]["type"] == "input"
    assert slack.modal(SAM) is None

    await slack.submit_modal(ALEX, {"reason": {"reason": "no"}})
    await slack.wait_for(lambda: (m := slack.modal(ALEX)) and m["errors"] == {"reason": "Say more"})
    await slack.submit_modal(ALEX, {"reason": {"reason": "no budget"}})

    await slack.wait_for(lambda: slack.modal(ALEX) is None)  # an empty ack closes it
    assert submitted[-1]["state"]["values"] == {
        "reason": {"reason": {"type": "plain_text_input", "value": "no budget"}}}
    assert submitted[-1]["private_metadata"] == "r1"


async def test_a_required_input_left_empty_is_refused_in_the_modal(
        slack: LocalSlack, bolt: Bolt) -> None:
    @bolt.app.action("reject")
    async def on_reject(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await client.views_open(trigger_id=body["trigger_id"], view=MODAL)

    await bolt.connect(slack)
    await slack.click(ALEX, "reject", channel=GEORGE_CHANNEL, ts=await a_button(bolt))
    await slack.wait_for(lambda: slack.modal(ALEX))

    assert await slack.submit_modal(ALEX, {"reason": {"reason": "  "}}) is None
    assert slack.modal(ALEX)["errors"] == {"reason": "Please complete this required field."}
    try:
        await slack.submit_modal(SAM, {})
    except ActionError as e:
        assert e.error == "view_not_found"


async def test_views_open_checks_the_view_and_the_trigger(
        client: AsyncWebClient, slack: LocalSlack, bolt: Bolt) -> None:
    triggers: list[str] = []

    @bolt.app.action("reject")
    async def on_reject(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        triggers.append(body["trigger_id"])

    await bolt.connect(slack)
    ts = await a_button(bolt)
    await slack.click(ALEX, "reject", channel=GEORGE_CHANNEL, ts=ts)
    trigger = await slack.wait_for(lambda: triggers and triggers[0])

    long_title = {**MODAL, "title": {"type": "plain_text", "text": "A title far longer than Slack allows"}}
    body = await error_of(client.views_open(trigger_id=trigger, view=long_title))
    assert body["error"] == "invalid_arguments"
    assert "[ERROR] must be less than 25 characters [json-pointer:/view/title/text]" in \
        body["response_metadata"]["messages"]
    body = await error_of(client.views_open(trigger_id=trigger, view={**MODAL, "type": "home"}))
    assert "[ERROR] must be modal [json-pointer:/view/type]" in body["response_metadata"]["messages"]
    no_submit = {k: v for k, v in MODAL.items() if k != "submit"}
    assert (await error_of(client.views_open(trigger_id=trigger, view=no_submit)))["error"] == \
        "invalid_arguments"
    assert (await error_of(client.views_open(trigger_id="123.456.abc", view=MODAL)))["error"] == \
        "invalid_trigger_id"

    opened = await client.views_open(trigger_id=trigger, view=MODAL)
    assert (await error_of(client.views_open(trigger_id=trigger, view=MODAL)))["error"] == \
        "invalid_trigger_id"  # a trigger opens one modal
    updated = await client.views_update(view_id=opened["view"]["id"], view={
        **MODAL, "title": {"type": "plain_text", "text": "Thanks"}})
    assert updated["view"]["title"]["text"] == "Thanks" == slack.modal(ALEX)["title"]["text"]


async def test_the_page_submits_and_closes_a_modal(slack: LocalSlack, bolt: Bolt) -> None:
    @bolt.app.action("reject")
    async def on_reject(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await client.views_open(trigger_id=body["trigger_id"], view=MODAL)

    await bolt.connect(slack)
    async with as_the_page(slack) as page:
        ts = await a_button(bolt)
        async with page.post("/local/api/actions", json={
                "user": ALEX, "action_id": "reject", "channel": GEORGE_CHANNEL, "ts": ts}) as answer:
            assert (await answer.json())["ok"]
        await slack.wait_for(lambda: slack.modal(ALEX))
        async with page.get("/local/api/state") as answer:
            modal = (await answer.json())["modals"][ALEX]
        async with page.post("/local/api/views/close", json={"user": ALEX, "view_id": modal["id"]}) as answer:
            assert (await answer.json())["ok"]
    assert slack.modal(ALEX) is None
