"""`kept_json_problem` takes what an older release's write check took
(json.loads: NaN, Infinity and numbers past a DOUBLE too, which releases until
2026-12-02 stored), read without recursion, and nothing else: a backed-up
value no release wrote stays refused."""

from __future__ import annotations

import json

import pytest

from storage.jsoncheck import json_problem, kept_json_problem

DEEP = "[" * 900 + '{"a":[1,"\\ud800"]}' + "]" * 900


def _older_took(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("text", [
    '{"k": "\\ud800"}', '"\\udc00x"', DEEP, " [ {\"a\" : [1, -2.5e3, \"x\\n\", true, null]} ] ",
    "1" * 80, "[1e308]", "{}", "[]", '"\\u0041\\/"', "-0",
    "[1,2", '{"a":1,}', "[1,]", "NaN", "[Infinity]", "[1e999]", '{"a" 1}', "[]]", "1 2",
    '"\x01"', "{1:2}", "[1}", '{"a":[}]', "", "  ", "[01]", '"\\x41"', "tru", "[.5]", "[1.]",
    '{"a":1 "b":2}', "[,1]", '["a",]', "{,}", '"abc', "[1]x",
    "1e400", "-1e999", "[1e400]", '{"a": -Infinity}', "[NaN, Infinity]", "-NaN", "NaNx",
    "[NaN1]", '{NaN: 1}', "nan", "+1", "1" * 4301, "-" + "1" * 4301, "1." + "1" * 5000,
])
def test_kept_json_takes_what_the_older_write_took(text: str) -> None:
    assert (kept_json_problem(text) is None) is _older_took(text), text


def test_strict_json_is_kept_json_and_depth_is_bounded_without_recursion() -> None:
    assert json_problem('{"a": [1]}') is None and kept_json_problem('{"a": [1]}') is None
    assert json_problem(DEEP) is not None  # written now: refused
    very = "[" * 200_000 + "]" * 200_000  # no RecursionError, a bounded answer
    assert kept_json_problem(very) == "nests arrays and objects 200000 deep, more than 4096"
