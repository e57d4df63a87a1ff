"""The real bolt app, over the real Socket Mode handler, hears what people do on the local Slack."""

from __future__ import annotations

import asyncio
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from georgebot.devslack import LocalSlack
from tests.devslack.support import ALEX, GEORGE_CHANNEL, ONBOARDING, PAT, Bolt


async def test_a_reaction_reaches_bolt_shaped_as_slack_sends_it(
    slack: LocalSlack, bolt: Bolt
) -> None:
    heard: list[dict[str, Any]] = []

    @bolt.app.event("reaction_added")
    async def on_reaction(event: dict[str, Any]) -> None:
        heard.append(event)

    @bolt.app.event("message")
    async def on_message() -> None:
        pass

    await bolt.connect(slack)
    posted = await bolt.app.client.chat_postMessage(channel=GEORGE_CHANNEL, text="Approve?")
    await slack.react(ALEX, GEORGE_CHANNEL, posted["ts"], "white_check_mark::skin-tone-2")

    await slack.wait_for(lambda: heard)
    event = heard[0]
    assert event["user"] == ALEX
    assert event["reaction"] == "white_check_mark::skin-tone-2"
    assert event["item"] == {"type": "message", "channel": GEORGE_CHANNEL, "ts": posted["ts"]}
    assert event["item_user"] == "U0GEORGE"
    assert event["event_ts"]


async def test_the_bots_own_reactions_and_posts_are_ignored_by_bolt(
    slack: LocalSlack, bolt: Bolt
) -> None:
    heard: list[str] = []

    @bolt.app.event("reaction_added")
    async def on_reaction(event: dict[str, Any]) -> None:
        heard.append(event["reaction"])

    @bolt.app.event("message")
    async def on_message(event: dict[str, Any]) -> None:
        heard.append(event.get("text", ""))

    await bolt.connect(slack)
    posted = await bolt.app.client.chat_postMessage(channel=GEORGE_CHANNEL, text="card")
    await bolt.app.client.reactions_add(channel=GEORGE_CHANNEL, timestamp=posted["ts"], name="eyes")
    await slack.post_as(ALEX, GEORGE_CHANNEL, "a person speaks")
    await bolt.app.client.chat_update(channel=GEORGE_CHANNEL, ts=posted["ts"], text="card v2")

    # Slack delivers the bot's own events too (bolt acks and drops them): all four are acked.
    await slack.wait_for(lambda: len(slack.hub.envelopes) == 4 and not slack.hub.pending())
    assert heard == ["a person speaks"]
    events = [e["payload"]["event"] for e in slack.hub.envelopes]
    assert [e["type"] for e in events] == ["message", "reaction_added", "message", "message"]
    assert events[0]["bot_id"] == "B0GEORGE" and events[0]["user"] == "U0GEORGE"
    changed = events[3]
    assert changed["subtype"] == "message_changed" and changed["channel"] == GEORGE_CHANNEL
    assert (changed["previous_message"]["text"], changed["message"]["text"]) == ("card", "card v2")


async def test_a_mention_is_delivered_as_app_mention_and_message(
    slack: LocalSlack, bolt: Bolt
) -> None:
    mentions: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []

    @bolt.app.event("app_mention")
    async def on_mention(event: dict[str, Any]) -> None:
        mentions.append(event)

    @bolt.app.event("message")
    async def on_message(event: dict[str, Any]) -> None:
        messages.append(event)

    await bolt.connect(slack)
    await slack.post_as(ALEX, GEORGE_CHANNEL, "@george retry onboard-alice")

    await slack.wait_for(lambda: mentions and messages)
    assert mentions[0]["text"] == "<@U0GEORGE> retry onboard-alice"
    assert mentions[0]["user"] == ALEX
    assert mentions[0]["channel"] == GEORGE_CHANNEL
    assert messages[0]["channel_type"] == "channel"
    assert "bot_id" not in messages[0]


async def test_events_in_channels_the_bot_has_not_joined_are_not_delivered(
    slack: LocalSlack, bolt: Bolt
) -> None:
    @bolt.app.event("message")
    async def on_message() -> None:
        pass

    await bolt.connect(slack)
    await slack.post_as(ALEX, ONBOARDING, "nobody hears this")
    await bolt.app.client.conversations_join(channel=ONBOARDING)
    await slack.post_as(ALEX, ONBOARDING, "George hears this")

    await slack.wait_for(lambda: any(
        e["payload"]["event"].get("text") == "George hears this" for e in slack.hub.envelopes
    ))
    texts = [e["payload"]["event"].get("text") for e in slack.hub.envelopes]
    assert "nobody hears this" not in texts
    assert "<@U0GEORGE> has joined the channel" in texts


async def test_a_slash_command_is_acked_and_answered_through_the_response_url(
    slack: LocalSlack, bolt: Bolt
) -> None:
    commands: list[dict[str, Any]] = []

    @bolt.app.command("/george")
    async def on_george(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        commands.append(command)
        await respond(f"Status for <@{command['user_id']}>: all good")

    await bolt.connect(slack)
    result = await slack.post_as(PAT, GEORGE_CHANNEL, "/george status onboard-alice")

    ephemeral = await slack.wait_for(lambda: slack.last_ephemeral(PAT))
    assert ephemeral.text == f"Status for <@{PAT}>: all good"
    assert ephemeral.channel == GEORGE_CHANNEL and ephemeral.sender == "app"
    assert slack.messages(GEORGE_CHANNEL) == []  # a command is not a message
    command = commands[0]
    assert command["command"] == "/george"
    assert command["text"] == "status onboard-alice"
    assert command["user_id"] == PAT and command["channel_id"] == GEORGE_CHANNEL
    assert command["response_url"] == getattr(result, "response_url", None)
    assert command["trigger_id"]
    assert slack.snapshot()["ephemerals"][PAT][0]["text"] == ephemeral.text


async def test_a_slash_commands_ack_payload_is_shown_to_its_user(
    slack: LocalSlack, bolt: Bolt
) -> None:
    @bolt.app.command("/george")
    async def on_george(ack: AsyncAck) -> None:
        await ack(text="Usage: /george status [JOB]")

    await bolt.connect(slack)
    await slack.slash(ALEX, "#george", "/george help")

    ephemeral = await slack.wait_for(lambda: slack.last_ephemeral(ALEX))
    assert ephemeral.text == "Usage: /george status [JOB]"


async def test_a_slash_command_nobody_acks_tells_the_person_it_timed_out(
    slack: LocalSlack, bolt: Bolt
) -> None:
    too_late = asyncio.Event()

    @bolt.app.command("/george")
    async def on_george(ack: AsyncAck) -> None:
        await too_late.wait()
        await ack()

    await bolt.connect(slack)
    slack.ack_timeout = 0.2
    await slack.slash(ALEX, GEORGE_CHANNEL, "/george", "status")

    ephemeral = await slack.wait_for(lambda: slack.last_ephemeral(ALEX))
    assert ephemeral.sender == "slackbot"
    assert ephemeral.text == '/george failed with the error "operation_timeout"'
    too_late.set()
    await slack.wait_for(lambda: slack.hub.acks)
    assert slack.ephemerals(ALEX) == [ephemeral]  # a late ack changes nothing


async def test_app_home_opened_and_a_published_view(slack: LocalSlack, bolt: Bolt) -> None:
    @bolt.app.event("app_home_opened")
    async def on_home(event: dict[str, Any], client: Any) -> None:
        await client.views_publish(user_id=event["user"], view={
            "type": "home",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Waiting on you*"}}],
        })

    await bolt.connect(slack)
    await slack.open_home(ALEX)

    home = await slack.wait_for(lambda: slack.home_view(ALEX))
    assert home.view["blocks"][0]["text"]["text"] == "*Waiting on you*"
    assert slack.snapshot()["home"][ALEX]["type"] == "home"


async def test_a_button_click_is_an_interactive_envelope(slack: LocalSlack, bolt: Bolt) -> None:
    clicks: list[dict[str, Any]] = []

    @bolt.app.action("retry")
    async def on_retry(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        clicks.append(body)
        await respond(text="Retrying", replace_original=True)

    @bolt.app.event("message")
    async def on_message() -> None:
        pass

    await bolt.connect(slack)
    posted = await bolt.app.client.chat_postMessage(channel=GEORGE_CHANNEL, text="failed", blocks=[
        {"type": "actions", "elements": [
            {"type": "button", "action_id": "retry", "value": "onboard-alice",
             "text": {"type": "plain_text", "text": "Retry"}},
        ]},
    ])
    await slack.click(ALEX, "retry", channel=GEORGE_CHANNEL, ts=posted["ts"])

    await slack.wait_for(lambda: slack.messages(GEORGE_CHANNEL)[0].text == "Retrying")
    action = clicks[0]["actions"][0]
    assert action["action_id"] == "retry" and action["value"] == "onboard-alice"
    assert clicks[0]["container"]["message_ts"] == posted["ts"]
    assert clicks[0]["user"]["id"] == ALEX


async def test_a_dropped_connection_is_reopened_and_delivery_goes_on(
    slack: LocalSlack, bolt: Bolt
) -> None:
    heard: list[str] = []

    @bolt.app.event("message")
    async def on_message(event: dict[str, Any]) -> None:
        heard.append(event["text"])

    await bolt.connect(slack)
    first_url_calls = sum(c.method == "apps.connections.open" for c in slack.calls)
    assert slack.disconnect_sockets() == 1

    await slack.wait_for(lambda: sum(
        c.method == "apps.connections.open" for c in slack.calls
    ) > first_url_calls and slack.connections == 1)
    await slack.post_as(ALEX, GEORGE_CHANNEL, "still there?")
    await slack.wait_for(lambda: heard == ["still there?"])
