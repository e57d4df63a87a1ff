"""The Web API answers slack-sdk's `AsyncWebClient` as Slack does, errors included."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from georgebot.devslack import ChannelSeed, LocalSlack, Message, Person, Seed
from tests.devslack.support import ALEX, GENERAL, GEORGE_CHANNEL, ONBOARDING, PAT

SECTION: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": "*Step* done"}}


async def error_of(call: Awaitable[Any]) -> dict[str, Any]:
    """The body of the error answer `call` gets; fails the test if it succeeds."""
    with pytest.raises(SlackApiError) as raised:
        await call
    body: dict[str, Any] = raised.value.response.data
    assert body["ok"] is False
    return body


# -- auth and tokens --------------------------------------------------------------------


async def test_auth_test_names_the_bot(client: AsyncWebClient, slack: LocalSlack) -> None:
    answer = await client.auth_test()
    assert answer.data == {
        "ok": True, "url": f"{slack.url}/", "team": "George Local", "user": "george",
        "team_id": "T0LOCAL", "user_id": "U0GEORGE", "bot_id": "B0GEORGE",
        "is_enterprise_install": False,
    }


async def test_tokens_are_checked(slack: LocalSlack) -> None:
    assert (await error_of(AsyncWebClient(base_url=slack.api_url).auth_test()))["error"] == (
        "not_authed"
    )
    wrong = AsyncWebClient(token="hunter2", base_url=slack.api_url)
    assert (await error_of(wrong.auth_test()))["error"] == "invalid_auth"
    app = AsyncWebClient(token=slack.app_token, base_url=slack.api_url)
    assert (await error_of(app.auth_test()))["error"] == "not_allowed_token_type"


async def test_apps_connections_open_hands_out_a_websocket_url(slack: LocalSlack) -> None:
    client = AsyncWebClient(base_url=slack.api_url)
    answer = await client.apps_connections_open(app_token=slack.app_token)
    assert answer["url"].startswith(f"ws://127.0.0.1:{slack.port}/socket?ticket=")
    bot = AsyncWebClient(base_url=slack.api_url)
    assert (await error_of(bot.apps_connections_open(app_token=slack.bot_token)))["error"] == (
        "not_allowed_token_type"
    )


async def test_an_unknown_method_is_unknown_method(client: AsyncWebClient) -> None:
    assert (await error_of(client.api_call("chat.fly")))["error"] == "unknown_method"


# -- posting ------------------------------------------------------------------------------


async def test_post_by_channel_name_returns_the_id_ts_and_message(
    client: AsyncWebClient, slack: LocalSlack
) -> None:
    answer = await client.chat_postMessage(channel="#george", text="hello", blocks=[SECTION])
    assert answer["channel"] == GEORGE_CHANNEL
    message = answer["message"]
    assert message["ts"] == answer["ts"]
    assert (message["type"], message["text"], message["user"], message["bot_id"]) == (
        "message", "hello", "U0GEORGE", "B0GEORGE"
    )
    assert message["blocks"][0]["text"] == SECTION["text"]
    assert message["blocks"][0]["block_id"]  # Slack names every block it stores
    assert [m.ts for m in slack.messages(GEORGE_CHANNEL)] == [answer["ts"]]


async def test_a_form_encoded_post_works_too(client: AsyncWebClient) -> None:
    import json

    answer = await client.api_call("chat.postMessage", data={
        "channel": GEORGE_CHANNEL, "text": "form", "blocks": json.dumps([SECTION]),
    })
    assert answer["message"]["blocks"][0]["type"] == "section"


async def test_posting_where_the_bot_is_not_a_member_needs_a_join(
    client: AsyncWebClient, slack: LocalSlack
) -> None:
    body = await error_of(client.chat_postMessage(channel=ONBOARDING, text="card"))
    assert body["error"] == "not_in_channel"

    joined = await client.conversations_join(channel=ONBOARDING)
    assert joined["channel"]["id"] == ONBOARDING and joined["channel"]["is_member"] is True
    assert (await client.chat_postMessage(channel="#onboarding", text="card"))["ok"]
    again = await client.conversations_join(channel=ONBOARDING)
    assert again["warning"] == "already_in_channel"
    assert [m.subtype for m in slack.messages(ONBOARDING)] == ["channel_join", None]


async def test_unknown_and_private_channels_are_not_found(client: AsyncWebClient) -> None:
    slack = LocalSlack(port=0, seed=Seed(
        people=(Person("U01ALEX", "alex", "Alex Kim"),),
        channels=(ChannelSeed("C0SECRET", "secret", is_private=True),),
    ))
    async with slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        for channel in ("C0NOPE", "#nope", "C0SECRET", "#secret"):
            body = await error_of(client.chat_postMessage(channel=channel, text="x"))
            assert body["error"] == "channel_not_found", channel
        assert (await error_of(client.conversations_join(channel="C0SECRET")))["error"] == (
            "channel_not_found"
        )


@pytest.mark.parametrize(("blocks", "pointer"), [
    ([SECTION] * 51, "/blocks"),
    ([{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}], "/blocks/0/text/text"),
    ([{"type": "section", "fields": [{"type": "mrkdwn", "text": "x" * 2001}]}],
     "/blocks/0/fields/0/text"),
    ([{"type": "section", "fields": [{"type": "mrkdwn", "text": "x"}] * 11}], "/blocks/0/fields"),
    ([{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}],
     "/blocks/0/text/text"),
    ([{"type": "header", "text": {"type": "mrkdwn", "text": "*x*"}}], "/blocks/0/text/type"),
    ([{"type": "carousel"}], "/blocks/0/type"),
    ([{"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text",
                                                                     "text": "x" * 76}}]}],
     "/blocks/0/elements/0/text/text"),
], ids=["51-blocks", "long-section", "long-field", "11-fields", "long-header", "mrkdwn-header",
        "unknown-type", "long-button"])
async def test_blocks_beyond_slacks_limits_are_invalid_blocks(
    client: AsyncWebClient, blocks: list[dict[str, Any]], pointer: str
) -> None:
    body = await error_of(client.chat_postMessage(channel=GEORGE_CHANNEL, text="x", blocks=blocks))
    assert body["error"] == "invalid_blocks"
    assert any(f"[json-pointer:{pointer}]" in m for m in body["response_metadata"]["messages"])


async def test_blocks_at_slacks_limits_are_fine(client: AsyncWebClient) -> None:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "h" * 150}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "s" * 3000},
         "fields": [{"type": "mrkdwn", "text": "f" * 2000}] * 10},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}]},
        {"type": "divider"},
        *[SECTION] * 46,
    ]
    assert (await client.chat_postMessage(channel=GEORGE_CHANNEL, text="x", blocks=blocks))["ok"]


async def test_text_checks(client: AsyncWebClient) -> None:
    assert (await error_of(client.api_call("chat.postMessage", json={
        "channel": GEORGE_CHANNEL,
    })))["error"] == "no_text"
    assert (await error_of(client.chat_postMessage(
        channel=GEORGE_CHANNEL, text="x" * 40_001
    )))["error"] == "msg_too_long"
    assert (await client.chat_postMessage(channel=GEORGE_CHANNEL, text="x" * 40_000))["ok"]
    assert (await error_of(client.api_call("chat.postMessage", data={
        "channel": GEORGE_CHANNEL, "text": "x", "blocks": "[not json",
    })))["error"] == "invalid_blocks_format"


async def test_thread_replies_show_in_replies_and_on_the_parent(
    client: AsyncWebClient,
) -> None:
    parent = await client.chat_postMessage(channel=GEORGE_CHANNEL, text="card")
    reply = await client.chat_postMessage(
        channel=GEORGE_CHANNEL, text="step note", thread_ts=parent["ts"]
    )
    assert reply["message"]["thread_ts"] == parent["ts"]

    thread = await client.conversations_replies(channel=GEORGE_CHANNEL, ts=parent["ts"])
    assert [m["text"] for m in thread["messages"]] == ["card", "step note"]
    history = await client.conversations_history(channel=GEORGE_CHANNEL)
    assert [m["text"] for m in history["messages"]] == ["card"]
    assert history["messages"][0]["reply_count"] == 1
    assert history["messages"][0]["thread_ts"] == parent["ts"]
    body = await error_of(client.conversations_replies(channel=GEORGE_CHANNEL, ts="1.000001"))
    assert body["error"] == "thread_not_found"


# -- updating ------------------------------------------------------------------------------


async def test_chat_update_edits_in_place(client: AsyncWebClient, slack: LocalSlack) -> None:
    posted = await client.chat_postMessage(channel=GEORGE_CHANNEL, text="Running")
    updated = await client.chat_update(
        channel=posted["channel"], ts=posted["ts"], text="Succeeded", blocks=[SECTION]
    )
    assert (updated["channel"], updated["ts"], updated["text"]) == (
        GEORGE_CHANNEL, posted["ts"], "Succeeded"
    )
    assert updated["message"]["edited"]["user"] == "U0GEORGE"
    [message] = slack.messages(GEORGE_CHANNEL)
    assert (message.ts, message.text) == (posted["ts"], "Succeeded")


async def test_chat_update_errors(client: AsyncWebClient, slack: LocalSlack) -> None:
    posted = await client.chat_postMessage(channel=GEORGE_CHANNEL, text="card")
    person = await slack.post_as(ALEX, GEORGE_CHANNEL, "mine")
    assert isinstance(person, Message)

    async def update_error(**kwargs: Any) -> dict[str, Any]:
        return await error_of(client.api_call("chat.update", json={"text": "x", **kwargs}))

    assert (await update_error(channel=GEORGE_CHANNEL, ts="1.000001"))["error"] == (
        "message_not_found"
    )
    assert (await update_error(channel="#george", ts=posted["ts"]))["error"] == "channel_not_found"
    assert (await update_error(channel="C0NOPE", ts=posted["ts"]))["error"] == "channel_not_found"
    assert (await update_error(channel=GEORGE_CHANNEL, ts=person.ts))["error"] == (
        "cant_update_message"
    )
    missing = await update_error(channel=GEORGE_CHANNEL)
    assert missing["error"] == "invalid_arguments"
    assert missing["response_metadata"]["messages"] == ["[ERROR] missing required field: ts"]
    assert (await update_error(channel=GEORGE_CHANNEL, ts=posted["ts"], text=None))["error"] == (
        "no_text"
    )


async def test_ephemeral_messages_and_permalinks(
    client: AsyncWebClient, slack: LocalSlack
) -> None:
    answer = await client.chat_postEphemeral(channel=GEORGE_CHANNEL, user=PAT, text="psst")
    assert answer["message_ts"]
    assert [e.text for e in slack.ephemerals(PAT)] == ["psst"]
    assert (await error_of(client.chat_postEphemeral(
        channel=GEORGE_CHANNEL, user="U0NOBODY", text="x"
    )))["error"] == "user_not_found"

    posted = await client.chat_postMessage(channel=GEORGE_CHANNEL, text="card")
    link = await client.chat_getPermalink(channel=GEORGE_CHANNEL, message_ts=posted["ts"])
    assert link["permalink"].startswith(f"{slack.url}/archives/{GEORGE_CHANNEL}/p")
    async with aiohttp.ClientSession() as session, session.get(
        link["permalink"], allow_redirects=False
    ) as response:
        assert response.status == 302
        assert response.headers["Location"] == f"/?channel={GEORGE_CHANNEL}&ts={posted['ts']}"


# -- reactions -----------------------------------------------------------------------------


async def test_reactions_add_get_remove(client: AsyncWebClient, slack: LocalSlack) -> None:
    posted = await client.chat_postMessage(channel=GEORGE_CHANNEL, text="card")
    await slack.react(ALEX, GEORGE_CHANNEL, posted["ts"], "white_check_mark")
    await client.reactions_add(channel=GEORGE_CHANNEL, timestamp=posted["ts"], name="eyes")

    got = await client.reactions_get(channel=GEORGE_CHANNEL, timestamp=posted["ts"])
    assert got["type"] == "message" and got["channel"] == GEORGE_CHANNEL
    assert got["message"]["reactions"] == [
        {"name": "white_check_mark", "users": [ALEX], "count": 1},
        {"name": "eyes", "users": ["U0GEORGE"], "count": 1},
    ]
    assert (await error_of(client.reactions_add(
        channel=GEORGE_CHANNEL, timestamp=posted["ts"], name="eyes"
    )))["error"] == "already_reacted"
    await client.reactions_remove(channel=GEORGE_CHANNEL, timestamp=posted["ts"], name="eyes")
    assert (await error_of(client.reactions_remove(
        channel=GEORGE_CHANNEL, timestamp=posted["ts"], name="eyes"
    )))["error"] == "no_reaction"
    assert (await error_of(client.reactions_add(
        channel=GEORGE_CHANNEL, timestamp="1.000001", name="eyes"
    )))["error"] == "message_not_found"


# -- conversations, users, groups, views ----------------------------------------------------


async def test_conversations_list_pages_with_a_cursor(client: AsyncWebClient) -> None:
    names: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await client.conversations_list(types="public_channel", limit=2, cursor=cursor)
        names += [c["name"] for c in page["channels"]]
        pages += 1
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert names == ["george", "onboarding", "it", "security", "general"]
    assert pages == 3
    assert (await error_of(client.conversations_list(cursor="bogus")))["error"] == (
        "invalid_cursor"
    )
    assert (await error_of(client.conversations_list(types="fax")))["error"] == "invalid_types"


async def test_conversations_create_makes_a_channel_people_can_use_at_once(
        client: AsyncWebClient, slack: LocalSlack) -> None:
    created = (await client.conversations_create(name="payroll_2027"))["channel"]

    assert created["name"] == "payroll_2027" and created["id"].startswith("C")
    assert created["is_member"] is True and created["is_private"] is False
    listed = await client.conversations_list(types="public_channel")
    assert "payroll_2027" in [c["name"] for c in listed["channels"]]
    posted = await client.chat_postMessage(channel="#payroll_2027", text="hello")
    assert posted["channel"] == created["id"]
    reply = await slack.post_as(PAT, "payroll_2027", "hi George")  # the page's people are in it
    assert reply.text == "hi George"
    assert [m["name"] for m in slack.snapshot()["channels"]].count("payroll_2027") == 1


@pytest.mark.parametrize(("name", "error"), [
    ("general", "name_taken"),
    ("", "invalid_name_required"),
    ("x" * 81, "invalid_name_maxlength"),
    ("Payroll", "invalid_name_specials"),
    ("pay roll", "invalid_name_specials"),
    ("#payroll", "invalid_name_specials"),
    ("--", "invalid_name_punctuation"),
])
async def test_conversations_create_checks_names_as_slack_does(
        client: AsyncWebClient, name: str, error: str) -> None:
    assert (await error_of(client.conversations_create(name=name)))["error"] == error


async def test_a_private_channel_has_only_its_creator(client: AsyncWebClient, slack: LocalSlack) -> None:
    created = (await client.conversations_create(name="secret-plans", is_private=True))["channel"]
    assert created["is_private"] is True
    [channel] = [c for c in slack.snapshot()["channels"] if c["name"] == "secret-plans"]
    assert channel["members"] == ["U0GEORGE"]
    assert (await client.conversations_create(name="x" * 80))["channel"]["name"] == "x" * 80


async def test_conversations_info_and_history(client: AsyncWebClient) -> None:
    info = await client.conversations_info(channel=GENERAL)
    assert info["channel"]["name"] == "general" and info["channel"]["is_general"] is True
    assert info["channel"]["is_member"] is False
    missing = await error_of(client.api_call("conversations.info", params={}))
    assert missing["error"] == "invalid_arguments"
    assert (await error_of(client.conversations_info(channel="C0NOPE")))["error"] == (
        "channel_not_found"
    )
    assert (await error_of(client.conversations_history(channel=GENERAL)))["error"] == (
        "not_in_channel"
    )

    for text in ("one", "two", "three"):
        await client.chat_postMessage(channel=GEORGE_CHANNEL, text=text)
    first = await client.conversations_history(channel=GEORGE_CHANNEL, limit=2)
    assert [m["text"] for m in first["messages"]] == ["three", "two"]
    assert first["has_more"] is True
    rest = await client.conversations_history(
        channel=GEORGE_CHANNEL, limit=2, cursor=first["response_metadata"]["next_cursor"]
    )
    assert [m["text"] for m in rest["messages"]] == ["one"]
    assert rest["has_more"] is False


async def test_users_and_usergroups(client: AsyncWebClient) -> None:
    alex = (await client.users_info(user=ALEX))["user"]
    assert (alex["id"], alex["name"], alex["real_name"], alex["is_bot"]) == (
        ALEX, "alex", "Alex Kim", False
    )
    assert alex["profile"]["title"] == "IT"
    george = (await client.users_info(user="U0GEORGE"))["user"]
    assert george["is_bot"] is True and george["profile"]["bot_id"] == "B0GEORGE"
    assert (await error_of(client.users_info(user="U0NOBODY")))["error"] == "user_not_found"
    members = (await client.users_list())["members"]
    assert {m["id"] for m in members} == {"U0GEORGE", ALEX, "U01SAM", PAT, "U01LEE"}

    groups = (await client.usergroups_list(include_users=True))["usergroups"]
    assert [(g["id"], g["handle"], g["users"]) for g in groups] == [
        ("S0ITTEAM", "it-team", [ALEX])
    ]
    assert (await client.usergroups_users_list(usergroup="S0ITTEAM"))["users"] == [ALEX]
    assert (await error_of(client.usergroups_users_list(usergroup="S0NOPE")))["error"] == (
        "no_such_subteam"
    )


async def test_views_publish(client: AsyncWebClient, slack: LocalSlack) -> None:
    view = {"type": "home", "blocks": [SECTION]}
    answer = await client.views_publish(user_id=ALEX, view=view)
    assert answer["view"]["type"] == "home" and answer["view"]["blocks"][0]["type"] == "section"
    home = slack.home_view(ALEX)
    assert home is not None and home.view["blocks"] == [SECTION]
    body = await error_of(client.views_publish(user_id=ALEX, view={"type": "modal", "blocks": []}))
    assert body["error"] == "invalid_arguments"
    assert (await error_of(client.views_publish(user_id=ALEX, view={
        "type": "home", "blocks": [SECTION] * 101,
    })))["error"] == "invalid_arguments"


# -- rate limits ----------------------------------------------------------------------------


async def test_an_injected_rate_limit_answers_429_with_retry_after(
    client: AsyncWebClient, slack: LocalSlack
) -> None:
    slack.rate_limit("chat.update", calls=1, retry_after=7)
    posted = await client.chat_postMessage(channel=GEORGE_CHANNEL, text="card")

    with pytest.raises(SlackApiError) as raised:
        await client.chat_update(channel=GEORGE_CHANNEL, ts=posted["ts"], text="new")
    response = raised.value.response
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.data == {"ok": False, "error": "ratelimited"}
    assert (await client.chat_update(channel=GEORGE_CHANNEL, ts=posted["ts"], text="new"))["ok"]


async def test_the_sdks_rate_limit_retry_handler_recovers(slack: LocalSlack) -> None:
    client = AsyncWebClient(
        token=slack.bot_token, base_url=slack.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
    )
    slack.rate_limit("chat.postMessage", calls=1, retry_after=0)

    answer = await client.chat_postMessage(channel=GEORGE_CHANNEL, text="eventually")
    assert answer["ok"]
    assert [c.status for c in slack.calls if c.method == "chat.postMessage"] == [429, 200]
    assert [m.text for m in slack.messages(GEORGE_CHANNEL)] == ["eventually"]
