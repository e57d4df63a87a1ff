"""The `pattern` of a strict string variable, checked in linear time.

`render.coerce` calls `checker(pattern).fullmatch`; validation warns when `.linear` is false.
Patterns are Python `re` syntax, translated with the same meaning (Unicode `\\d \\w \\s`) to RE2,
which never backtracks. What RE2 cannot express (backreferences, lookaround, a Unicode `\\b`...)
runs on the backtracking `regex` module instead, each value within `Limits.pattern_seconds`.
"""

from __future__ import annotations

import functools
import re
import re._constants as sre  # type: ignore[import-not-found, unused-ignore]
import re._parser as sre_parse  # type: ignore[import-not-found, unused-ignore]
from dataclasses import dataclass
from typing import Any

import re2  # type: ignore[import-untyped, unused-ignore]
import regex  # type: ignore[import-untyped, unused-ignore]

# Python's `\s` over str: exactly the characters for which str.isspace() is true.
_SPACE = (
    r"\x{9}-\x{D}\x{1C}-\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}"
    r"\x{205F}\x{3000}"
)
_ASCII_SPACE = r"\x{9}-\x{D}\x{20}"
_WORD = r"\p{L}\p{N}_"  # Python's `\w`: str.isalnum() or "_"
_ASCII_WORD = r"0-9A-Za-z_"


class PatternTimeout(Exception):
    """A value took the backtracking engine longer than its time limit."""


class _Unsupported(Exception):
    pass


@dataclass(frozen=True)
class Checker:
    """One compiled pattern. `linear` says it runs on RE2; otherwise `reason` says why not."""

    pattern: str
    linear: bool
    reason: str
    _compiled: Any

    def fullmatch(self, value: str, seconds: float) -> bool:
        """Whether the whole of `value` matches. Raises PatternTimeout past `seconds` (on
        the backtracking engine only: RE2 needs no limit)."""
        if self.linear:
            try:
                return self._compiled.fullmatch(value) is not None
            except UnicodeEncodeError:  # a lone surrogate: no text a person would type
                return False
        try:
            return self._compiled.fullmatch(value, timeout=seconds) is not None
        except TimeoutError as e:
            raise PatternTimeout(str(e)) from e


@functools.lru_cache(maxsize=1024)
def checker(pattern: str) -> Checker:
    """Raises ValueError when the pattern is not a regular expression at all."""
    try:
        translated = translate(pattern)
        options = re2.Options()
        options.log_errors = False
        return Checker(pattern, True, "", re2.compile(translated, options))
    except _Unsupported as e:
        reason = str(e)
    except re2.error as e:
        detail = e.args[0].decode(errors="replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        reason = f"something RE2 cannot compile ({detail})"
    try:
        return Checker(pattern, False, reason, regex.compile(pattern, flags=regex.V0))
    except (regex.error, re.error) as e:
        raise ValueError(f"`pattern` is not a regular expression: {e}") from e


def translate(pattern: str) -> str:
    """Python `re` syntax → RE2 syntax with the same meaning. Raises `_Unsupported`, naming
    the construct RE2 has no equivalent for, or re.error for a pattern that is not one."""
    tree = sre_parse.parse(pattern)
    flags = tree.state.flags
    state = _State(ascii=bool(flags & re.ASCII), multiline=bool(flags & re.MULTILINE))
    prefix = "".join(c for f, c in ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"))
                     if flags & f)
    if flags & re.IGNORECASE and state.ascii:
        raise _Unsupported("case-insensitive matching restricted to ASCII")
    body = _sequence(list(tree), state, at_end=True)
    return f"(?{prefix}){body}" if prefix else body


@dataclass(frozen=True)
class _State:
    ascii: bool
    multiline: bool


def _sequence(items: list[tuple[Any, Any]], state: _State, *, at_end: bool) -> str:
    last = len(items) - 1
    return "".join(_item(op, av, state, at_end and i == last) for i, (op, av) in enumerate(items))


def _item(op: Any, av: Any, state: _State, at_end: bool) -> str:
    if op is sre.LITERAL:
        return _char(av)
    if op is sre.NOT_LITERAL:
        return f"[^{_char(av)}]"
    if op is sre.ANY:
        return "."
    if op is sre.IN:
        return _class(av, state)
    if op is sre.BRANCH:
        return "(?:" + "|".join(_sequence(list(alt), state, at_end=at_end) for alt in av[1]) + ")"
    if op is sre.SUBPATTERN:
        group, add, remove, inner = av
        if (add | remove) & re.ASCII or (state.ascii and (add | remove) & re.UNICODE):
            raise _Unsupported("ASCII matching switched on or off inside the pattern")
        if (add | remove) & re.IGNORECASE and state.ascii:
            raise _Unsupported("case-insensitive matching restricted to ASCII")
        inside = _State(
            ascii=state.ascii,
            multiline=bool(add & re.MULTILINE) or (state.multiline and not remove & re.MULTILINE),
        )
        text = _sequence(list(inner), inside, at_end=at_end)
        on = "".join(c for f, c in ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"))
                     if add & f)
        off = "".join(c for f, c in ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"))
                      if remove & f)
        if on or off:
            text = f"(?{on}{'-' + off if off else ''}:{text})"
        return f"({text})" if group is not None else f"(?:{text})"
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
        low, high, inner = av
        text = f"(?:{_sequence(list(inner), state, at_end=False)})"
        if high is sre.MAXREPEAT:
            quantifier = {0: "*", 1: "+"}.get(low, f"{{{low},}}")
        elif low == high:
            quantifier = f"{{{low}}}"
        elif (low, high) == (0, 1):
            quantifier = "?"
        else:
            quantifier = f"{{{low},{high}}}"
        return text + quantifier + ("?" if op is sre.MIN_REPEAT else "")
    if op is sre.AT:
        return _anchor(av, state, at_end)
    names = {
        sre.GROUPREF: "a backreference",
        sre.GROUPREF_EXISTS: "a conditional group",
        sre.ASSERT: "a lookahead or lookbehind",
        sre.ASSERT_NOT: "a negative lookahead or lookbehind",
    }
    for name, text in (("ATOMIC_GROUP", "an atomic group"), ("POSSESSIVE_REPEAT", "a possessive repeat")):
        if op is getattr(sre, name, None):
            raise _Unsupported(text)
    raise _Unsupported(names.get(op, f"the construct {op}"))


def _anchor(at: Any, state: _State, at_end: bool) -> str:
    if at is sre.AT_BEGINNING:
        return "^"
    if at is sre.AT_BEGINNING_STRING:
        return r"\A"
    if at is sre.AT_END_STRING:
        return r"\z"
    if at is sre.AT_END:
        if state.multiline:
            return "$"
        if at_end:  # at the end of a full match, Python's `$` is the end of the text
            return r"\z"
        raise _Unsupported("`$` before the end of the pattern (Python lets it match before a final newline)")
    if at in (sre.AT_BOUNDARY, sre.AT_NON_BOUNDARY):
        if state.ascii:
            return r"\b" if at is sre.AT_BOUNDARY else r"\B"
        raise _Unsupported(r"a word boundary (\b or \B) over Unicode text")
    raise _Unsupported(f"the anchor {at}")


def _class(items: list[tuple[Any, Any]], state: _State) -> str:
    negate = bool(items) and items[0][0] is sre.NEGATE
    members = items[1:] if negate else items
    word, space = (_ASCII_WORD, _ASCII_SPACE) if state.ascii else (_WORD, _SPACE)
    complements = {sre.CATEGORY_NOT_WORD: word, sre.CATEGORY_NOT_SPACE: space}
    if state.ascii:
        complements[sre.CATEGORY_NOT_DIGIT] = "0-9"
    if len(members) == 1 and members[0][0] is sre.CATEGORY and members[0][1] in complements:
        # `\W` alone (or `[^\W]`): the complement of the positive class.
        positive = complements[members[0][1]]
        return f"[{positive}]" if negate else f"[^{positive}]"
    parts = []
    for op, av in members:
        if op is sre.LITERAL:
            parts.append(_char(av))
        elif op is sre.RANGE:
            parts.append(f"{_char(av[0])}-{_char(av[1])}")
        elif op is sre.CATEGORY:
            if av is sre.CATEGORY_DIGIT:
                parts.append("0-9" if state.ascii else r"\p{Nd}")
            elif av is sre.CATEGORY_NOT_DIGIT and not state.ascii:
                parts.append(r"\P{Nd}")
            elif av is sre.CATEGORY_WORD:
                parts.append(word)
            elif av is sre.CATEGORY_SPACE:
                parts.append(space)
            else:
                raise _Unsupported(r"`\W`, `\S` or `\D` together with other characters in one class")
        else:
            raise _Unsupported(f"the class item {op}")
    return f"[{'^' if negate else ''}{''.join(parts)}]"


def _char(code: int) -> str:
    char = chr(code)
    return char if char.isascii() and char.isalnum() else f"\\x{{{code:X}}}"
