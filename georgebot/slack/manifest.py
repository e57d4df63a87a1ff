"""The Slack app manifest for George (`georgebot slack-manifest` prints it): Socket Mode, the
`/george` command, the bot events the listeners handle and the scopes George's calls need.

The events come from `listeners.EVENTS`, and a test dispatches each one to the built app, so
the manifest never subscribes to an event nobody acknowledges.
"""

from __future__ import annotations

from typing import Any

from georgebot.slack.listeners import COMMAND, EVENTS

# Listener event type -> the manifest's subscription name (messages: public channels only).
SUBSCRIPTIONS = {"message": "message.channels"}

SCOPES = (
    "app_mentions:read",  # app_mention
    "channels:history",  # message.channels: replies in card threads; conversations.replies
    "channels:join",  # conversations.join: cards in public channels George is not in yet
    "channels:read",  # conversations.list: #name -> channel id
    "chat:write",  # chat.postMessage, chat.update, chat.postEphemeral
    "commands",  # /george
    "reactions:read",  # reaction_added, reaction_removed
    "usergroups:read",  # usergroups.users.list: approvers named by user group
)


def bot_events() -> list[str]:
    return sorted(SUBSCRIPTIONS.get(event, event) for event in EVENTS)


def slack_app_manifest(*, name: str = "George", request_url: str | None = None) -> dict[str, Any]:
    """Socket Mode by default; with `request_url` (https://HOST/slack/events), HTTP mode."""
    command: dict[str, Any] = {
        "command": COMMAND,
        "description": "Jobs, agents and approvals George runs",
        "usage_hint": "status [JOB] | help",
        "should_escape": False,
    }
    events: dict[str, Any] = {"bot_events": bot_events()}
    interactivity: dict[str, Any] = {"is_enabled": True}  # Approve and Reject, the Reject modal
    if request_url is not None:
        command["url"] = request_url
        events["request_url"] = request_url
        interactivity["request_url"] = request_url
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {
            "name": name,
            "description": "Runs your organisation's slow manual processes as jobs, "
                           "and asks people here when a step needs them.",
            "background_color": "#1d3557",
        },
        "features": {
            "app_home": {
                "home_tab_enabled": True,
                "messages_tab_enabled": False,
                "messages_tab_read_only_enabled": True,
            },
            "bot_user": {"display_name": name.lower(), "always_online": True},
            "slash_commands": [command],
        },
        "oauth_config": {"scopes": {"bot": sorted(SCOPES)}},
        "settings": {
            "event_subscriptions": events,
            "interactivity": interactivity,
            "org_deploy_enabled": False,
            "socket_mode_enabled": request_url is None,
            "token_rotation_enabled": False,
        },
    }
