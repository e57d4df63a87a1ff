"""The border with the Slack Web API: `call()` awaits one slack-sdk call and turns whatever
goes wrong (an error answer, a 429, a dropped connection) into `CallFailed`, cause chained;
`reply()` does the same for an answer through a slash command's `response_url`.

The publisher and the listeners branch on `CallFailed.error` and `retry_after`; nothing above
this module catches slack-sdk's exceptions.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from slack_sdk.webhook import WebhookResponse

RATE_LIMITED = "ratelimited"
CONNECTION = "connection_failed"


class CallFailed(Exception):
    """A Web API call that did not succeed: Slack's error code and, for a 429, how long to wait."""

    def __init__(self, method: str, error: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{method}: {error}")
        self.method = method
        self.error = error
        self.retry_after = retry_after

    @property
    def temporary(self) -> bool:
        return self.error in (RATE_LIMITED, CONNECTION, "internal_error", "fatal_error",
                              "service_unavailable", "request_timeout")


def _retry_after(headers: Any) -> float:
    value: Any = None
    if headers is not None:
        value = headers.get("Retry-After") or headers.get("retry-after")
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    try:
        return max(float(value), 0.0) if value is not None else 1.0
    except (TypeError, ValueError):
        return 1.0


async def call(method: str, pending: Awaitable[AsyncSlackResponse]) -> AsyncSlackResponse:
    try:
        return await pending
    except SlackApiError as e:
        response = e.response
        status = getattr(response, "status_code", 200)
        error = str((response.get("error") if response is not None else None) or "unknown_error")
        if status == 429 or error == RATE_LIMITED:
            raise CallFailed(method, RATE_LIMITED,
                             retry_after=_retry_after(getattr(response, "headers", None))) from e
        raise CallFailed(method, error) from e
    except (aiohttp.ClientError, TimeoutError) as e:
        raise CallFailed(method, CONNECTION) from e


async def reply(pending: Awaitable[WebhookResponse]) -> WebhookResponse:
    try:
        return await pending
    except (aiohttp.ClientError, TimeoutError) as e:  # a URL that is not one is a ClientError too
        raise CallFailed("response_url", CONNECTION) from e
