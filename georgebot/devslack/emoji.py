"""The emoji the page draws: every standard shortcode (Slack's names, which are mostly the
`emoji` package's aliases, then its English names) and which of them take a skin tone
(`:wave::skin-tone-3:`). `Page` serves it once as `/local/emoji.json`; the page falls back to
its own short table for the few names only Slack uses.
"""

from __future__ import annotations

import functools
import re

import emoji as emoji_data

from georgebot.devslack.state import JSON

TONES = ("\U0001F3FB", "\U0001F3FC", "\U0001F3FD", "\U0001F3FE", "\U0001F3FF")  # skin-tone-2…6
_VS16 = "\ufe0f"
_NAME = re.compile(r"[a-z0-9_+'-]+")

# Slack's names for a few emoji the package calls otherwise (Slack's own emoji-data).
SLACK_NAMES = {
    "thumbsup": "\U0001F44D", "thumbsdown": "\U0001F44E", "slightly_smiling_face": "\U0001F642",
    "simple_smile": "\U0001F642", "white_frowning_face": "\u2639\ufe0f",
    "spiral_calendar_pad": "\U0001F5D3\ufe0f", "hourglass_done": "\u231B",
    "double_vertical_bar": "\u23F8\ufe0f", "thread": "\U0001F9F5",
    "large_green_circle": "\U0001F7E2", "large_yellow_circle": "\U0001F7E1",
    "large_orange_circle": "\U0001F7E0", "large_purple_circle": "\U0001F7E3",
    "large_brown_circle": "\U0001F7E4", "person_in_steamy_room": "\U0001F9D6",
}


def _tone_takes(glyph: str) -> bool:
    """Whether the emoji has skin-tone forms: its first character followed by a modifier."""
    first = glyph[0]
    rest = glyph[1:].removeprefix(_VS16)
    return f"{first}{TONES[0]}{rest}" in emoji_data.EMOJI_DATA


@functools.cache
def emoji_table() -> JSON:
    """`{"emoji": {name: glyph}, "toned": [names]}`: a name's toned form puts the tone's
    modifier after the glyph's first character (and drops a variation selector there)."""
    glyphs: dict[str, str] = {}
    for glyph, data in emoji_data.EMOJI_DATA.items():
        if any(tone in glyph for tone in TONES):
            continue  # toned forms are made from the base and the tone
        names = [*data.get("alias", []), data["en"]]
        for name in (n.strip(":").lower() for n in names):
            if _NAME.fullmatch(name):
                glyphs.setdefault(name, glyph)
    for name, glyph in SLACK_NAMES.items():
        glyphs.setdefault(name, glyph)
    toned = sorted(name for name, glyph in glyphs.items() if _tone_takes(glyph))
    return {"emoji": glyphs, "toned": toned}
