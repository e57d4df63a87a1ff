"""`expect.json` field paths and JSON-typed comparison."""

from __future__ import annotations

import pytest

from georgebot.agents.expect import MISSING, field, mismatches, same, summary

DOC = {"a": {"b": [{"c": 1}, {"c": 2}]}, "x.y": "literal", "0": "zero"}


@pytest.mark.parametrize(("path", "value"), [
    ("a.b.1.c", 2),
    ("a.b.0", {"c": 1}),
    ("x.y", "literal"),
    ("0", "zero"),
    ("a.b.2.c", MISSING),
    ("a.b.first", MISSING),
    ("a.b.-1", MISSING),
    ("nope", MISSING),
])
def test_field_paths_follow_keys_and_list_indexes(path, value):
    assert field(DOC, path) == value if value is not MISSING else field(DOC, path) is MISSING


@pytest.mark.parametrize(("expected", "got", "equal"), [
    (True, 1, False),
    (1, True, False),
    (1, 1.0, True),
    ("1", 1, False),
    (None, None, True),
    ({"a": [True]}, {"a": [True]}, True),
    ({"a": [True]}, {"a": [1]}, False),
    ({"a": 1}, {"a": 1, "b": 2}, False),
])
def test_comparison_follows_json_types(expected, got, equal):
    assert same(expected, got) is equal


def test_long_values_and_many_mismatches_are_cut_short():
    lines = mismatches({"a": "x" * 500}, {"a": "y", **{f"k{i}": i for i in range(7)}})

    assert len(lines[0]) < 200
    assert summary(lines).endswith("; and 3 more")
