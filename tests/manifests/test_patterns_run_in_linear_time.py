"""Strict variables' patterns, written in Python's `re` syntax, keep their meaning on RE2 (the
linear-time engine): the same values match as with `re`. What RE2 cannot express is named, and
runs on the backtracking engine within a time limit instead."""

from __future__ import annotations

import random
import re

import pytest

from georgebot.manifests.patterns import PatternTimeout, checker

PATTERNS = [
    r"^[A-Za-z .'-]+$", r"\w+", r"^\d{2,4}$", r"(?i)abc|d.f", r"[^\s]+", r"\W+", r"\S*\s\S*",
    r"(?m)^a$\n^b$", r"[\w\-]+@[\w.]+", r"a{2}b{1,}c*?", r"(?s).+", r"(?a)\w+\b", r"\D+",
    r"(?i:ab)c", r"x|$", r"^(a+)+$", r"[^a-c]*", r"\A\w\Z",
]
ALPHABET = list("abcdfAZ09_ .-@'sSKé٣ß\t\n\x0b\x1c\u2028\u212a")


@pytest.mark.parametrize("pattern", PATTERNS)
def test_a_pattern_matches_what_python_matches(pattern: str):
    check = checker(pattern)
    rng = random.Random(pattern)
    samples = ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 6))) for _ in range(2000)]

    assert check.linear, check.reason
    assert [s for s in samples if check.fullmatch(s, 1) != bool(re.fullmatch(pattern, s))] == []


def test_whitespace_is_pythons_whitespace():
    space = checker(r"\s")
    chars = [chr(c) for c in range(0x3100)]
    assert [c for c in chars if space.fullmatch(c, 1) != c.isspace()] == []


@pytest.mark.parametrize(
    "pattern, reason",
    [
        (r"(a)\1", "a backreference"),
        (r"(?=a)a", "a lookahead or lookbehind"),
        (r"(?<!a)b", "a negative lookahead or lookbehind"),
        (r"\bword\b", "a word boundary"),
        (r"a$b", "`$` before the end"),
        (r"a{2000}", "invalid repetition size"),
    ],
)
def test_what_re2_cannot_express_is_named_and_still_checked(pattern: str, reason: str):
    check = checker(pattern)

    assert not check.linear
    assert reason in check.reason
    sample = {r"(a)\1": "aa", r"(?=a)a": "a", r"(?<!a)b": "b", r"\bword\b": "word",
              r"a$b": "ab", r"a{2000}": "a" * 2000}[pattern]
    assert check.fullmatch(sample, 1) == bool(re.fullmatch(pattern, sample))


def test_a_value_that_backtracks_past_the_time_limit_is_not_judged():
    with pytest.raises(PatternTimeout):
        checker(r"^(a|a)+(?!b)$").fullmatch("a" * 40 + "!", 0.05)
