"""Slack mrkdwn helpers: escaping untrusted text, naming people and channels, dates, clipping.

Text a person, a command or an agent wrote is data, never markup: `safe()` escapes it so it
cannot ping @channel or disguise a link, and keeps only plain mentions of people, user groups
and channels. Pure functions, used by `messages` and `blocks`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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


# --- mrkdwn as plain text (the command line) ---------------------------------------------


@dataclass(frozen=True)
class Names:
    """What ids are called: people (`U…` → name), channels (`C…` → name without `#`) and user
    groups (`S…` → handle without `@`). Whatever is missing is shown by its id."""

    people: Mapping[str, str] = field(default_factory=dict)
    channels: Mapping[str, str] = field(default_factory=dict)
    groups: Mapping[str, str] = field(default_factory=dict)


_CONTROL = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")
_BARE_ID = re.compile(r"(?<![\w@#^/=.-])([UWS](?=[A-Z]*\d)[A-Z0-9]{5,})(?![\w])")  # has a digit
_SPECIAL = {"here", "channel", "everyone"}


def mentioned(text: str) -> set[str]:
    """The ids of people, groups and channels in mrkdwn or plain text, to look their names up."""
    found = set(_BARE_ID.findall(text))
    for target, _ in _CONTROL.findall(text):
        if target[:2] in ("@U", "@W", "#C", "#G"):
            found.add(target[1:])
        elif target.startswith("!subteam^"):
            found.add(target.removeprefix("!subteam^"))
    return found


def plain(text: str, names: Names | None = None) -> str:
    """Slack mrkdwn as a person reads it outside Slack: `<@U1>` → `Alex Kim` (or `@U1`),
    `<#C1>` → `#it`, `<!subteam^S1>` → `@it-team`, `<url|label>` → `label (url)`, a date token
    → its fallback, escapes undone. A bare id of a known person or group is named too."""
    names = names or Names()

    def control(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if target.startswith("@"):
            ref = target[1:]
            return names.people.get(ref) or f"@{(label or ref).removeprefix('@')}"
        if target.startswith("#"):
            ref = target[1:]
            return f"#{names.channels.get(ref) or label or ref}"
        if target.startswith("!subteam^"):
            ref = target.removeprefix("!subteam^")
            return f"@{names.groups.get(ref) or (label or ref).removeprefix('@')}"
        if target.startswith("!date^"):
            return label or target
        if target.startswith("!"):
            word = target[1:]
            return f"@{label or word}" if word in _SPECIAL or label else f"@{word}"
        url = target.removeprefix("mailto:") if target.startswith("mailto:") else target
        return f"{label} ({url})" if label and label != url else url

    def bare(match: re.Match[str]) -> str:
        ref = match.group(1)
        if ref in names.people:
            return names.people[ref]
        if ref in names.groups:
            return f"@{names.groups[ref]}"
        return ref

    text = _BARE_ID.sub(bare, text)
    text = _CONTROL.sub(control, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
