"""Slack mrkdwn helpers: escaping untrusted text, naming people and channels, dates, clipping.

Text a person, a command or an agent wrote is data, never markup: `safe()` escapes it so it
cannot ping @channel or disguise a link, and keeps only plain mentions of people, user groups
and channels. Pure functions, used by `messages` and `blocks`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

ELLIPSIS = "…"

# Mentions that survive `safe()`: <@U123>, <#C123> or <#C123|name>, <!subteam^S123>.
_KEPT = re.compile(
    r"&lt;(@[UW][A-Z0-9]+|#[CG][A-Z0-9]+(?:\|[a-z0-9_-]*)?|!subteam\^S[A-Z0-9]+(?:\|@?[a-z0-9._-]*)?)&gt;"
)
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")  # names are lowercase; ids are not


def escape(text: str) -> str:
    """The three characters Slack asks apps to escape in mrkdwn."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def safe(text: str) -> str:
    """Untrusted text, escaped, with mentions of people, groups and channels kept."""
    return _KEPT.sub(lambda m: f"<{m.group(1)}>", escape(text))


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, ending in an ellipsis when something was cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + ELLIPSIS


def pieces(text: str, limit: int) -> list[str]:
    """Mrkdwn cut into pieces of at most `limit` characters with nothing lost: never inside an
    entity (`&amp;`) or a mention (`<@U1>`), at a space when there is one near the cut."""
    out: list[str] = []
    while len(text) > limit:
        cut = limit
        amp, lt = text.rfind("&", 0, cut), text.rfind("<", 0, cut)
        if amp > text.rfind(";", 0, cut) and amp > 0:
            cut = amp  # an entity would be cut in two
        if lt > text.rfind(">", 0, cut) and lt > 0:
            cut = min(cut, lt)  # so would a mention
        space = text.rfind(" ", 0, cut)
        if space > cut - 200 and space > 0:
            cut = space + 1
        out.append(text[:cut])
        text = text[cut:]
    out.append(text)
    return out


def tail(text: str, limit: int) -> str:
    """The last `limit` characters (command output: the end says what went wrong)."""
    if len(text) <= limit:
        return text
    return ELLIPSIS + text[-(limit - 1):]


def code(text: str, limit: int) -> str:
    """A code block of untrusted text, with no mentions at all; the tail when it is long."""
    body = escape(text.strip("\n")).replace("```", "'''")
    return f"```{tail(body, max(limit - 6, 1))}```"


def person(ref: str) -> str:
    """A user (`U…`/`W…`) or user-group (`S…`) id as a mention; anything else as text."""
    if re.fullmatch(r"[UW][A-Z0-9]+", ref):
        return f"<@{ref}>"
    if re.fullmatch(r"S[A-Z0-9]+", ref):
        return f"<!subteam^{ref}>"
    return escape(ref)


def people(refs: Iterable[str], *, conjunction: str = "or") -> str:
    names = [person(r) for r in refs]
    if len(names) <= 1:
        return "".join(names) or "nobody"
    return f"{', '.join(names[:-1])} {conjunction} {names[-1]}"


def is_channel_id(ref: str) -> bool:
    return bool(_CHANNEL_ID.fullmatch(ref))


def channel(ref: str) -> str:
    """A channel id as a link; a `#name` from a manifest as text."""
    if is_channel_id(ref):
        return f"<#{ref}>"
    return escape(ref if ref.startswith("#") else f"#{ref}")


def utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def plain_time(at: datetime) -> str:
    return utc(at).strftime("%Y-%m-%d %H:%M:%S UTC")


def date(at: datetime, pattern: str = "{date_short_pretty} {time}") -> str:
    """Slack shows this in each reader's time zone; the fallback is UTC."""
    stamp = int(utc(at).timestamp())
    return f"<!date^{stamp}^{pattern}|{plain_time(at)}>"


def ago(at: datetime) -> str:
    return date(at, "{ago}")
