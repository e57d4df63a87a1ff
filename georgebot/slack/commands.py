"""Parsing what people send George: `/george …` text, mentions and reactions. Pure functions;
the listeners call them between acknowledging an event and delegating it to the engine."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Verb = Literal["status", "retry", "help", "run", "cancel"]

_MENTION = re.compile(r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>")
_VERBS: dict[str, Verb] = {"status": "status", "retry": "retry", "help": "help", "run": "run",
                           "cancel": "cancel"}


@dataclass(frozen=True)
class Command:
    verb: Verb
    job: str | None = None
    unknown: str = ""
    """Words that were not understood; George answers them with its help."""


def parse(text: str) -> Command:
    """`status [JOB]`, `retry [JOB]`, `run TEMPLATE`, `cancel JOB`, `help`; anything else is
    help with what was not understood. Mentions of anyone (George included) are dropped first."""
    words = _MENTION.sub(" ", text).split()
    if not words:
        return Command("help")
    verb = _VERBS.get(words[0].lower().strip("`*_:,."))
    if verb is None:
        return Command("help", unknown=" ".join(words))
    job = words[1].strip("`*_,.").lower() if len(words) > 1 and verb != "help" else None
    return Command(verb, job=job or None)


def in_thread(text: str) -> Command | None:
    """A message in a job card's thread that is a command without mentioning George: just
    `retry` (as `/george help` offers it). Anything else there is a reply to the job."""
    words = _MENTION.sub(" ", text).split()
    if len(words) == 1 and words[0].lower().strip("`*_:,.!") == "retry":
        return Command("retry")
    return None


def vote(reaction: str, approve: Sequence[str], reject: Sequence[str]) -> bool | None:
    """True for an approve emoji, False for a reject one (skin tones count), else None."""
    name = reaction.strip(":").split("::", 1)[0]
    if name in approve:
        return True
    if name in reject:
        return False
    return None
