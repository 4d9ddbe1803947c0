"""The JSON a JSON column may hold: what DuckDB's JSON functions and every
reader of an answer take. Python's json.loads takes more (NaN, Infinity, a
lone surrogate escape `"\\ud800"`), and DuckDB's `->>`, `json_valid` and
casts then failed on a stored value; a value nested past what a recursive
parser reads could be written and then not read over HTTP. A write
(storage/types.py), VERIFY BACKUP and RESTORE (backup/column_checks.py) hold
a value to `json_problem` alike. A value kept before these rules
(2026-12-05: in a data directory, a backed-up file, a catalog's or manifest's
DEFAULT) keeps the meaning it had: `kept_json_problem` takes what the older
write check, Python's json.loads, took (NaN, Infinity and numbers past a
DOUBLE, like `1e400`, included: releases until 2026-12-02 stored them)."""

from __future__ import annotations

import re
from itertools import accumulate

import msgspec

# Arrays and objects a JSON value may nest: DuckDB reads any depth, but an
# HTTP client parses the answer (which wraps a value 4 deep) with a recursive
# parser (Python's json: about 1000 levels in all), and a value accepted once
# must read back everywhere.
MAX_JSON_DEPTH = 512

# A JSON string, read at once (possessive: no backtracking), and what is not a bracket.
_STRINGS = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_INNERMOST = re.compile(r"\[\]|\{\}")


def json_depth_over(text: str, limit: int = MAX_JSON_DEPTH) -> int | None:
    """How deep `text` nests arrays and objects, if deeper than `limit`."""
    if text.count("[") + text.count("{") <= limit:  # C speed: most values stop here
        return None
    brackets = _NOT_BRACKETS.sub("", _STRINGS.sub("", text))
    for _ in range(8):  # a level a pass, at C speed: a wide, shallow value ends here
        if not brackets:
            return None
        brackets = _INNERMOST.sub("", brackets)
    depth = 8 + max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0)
    return depth if depth > limit else None


def json_problem(text: str) -> str | None:
    """Why `text` cannot be a JSON column's value, or None. Stricter than
    Python's json.loads, which takes NaN, Infinity and lone surrogate escapes
    (`"\\ud800"`) that DuckDB's JSON functions refuse; and a number past a
    DOUBLE (`1e999`), which reads back as infinity or null."""
    depth = json_depth_over(text)
    if depth is not None:
        return f"nests arrays and objects {depth} deep, more than {MAX_JSON_DEPTH}"
    try:
        msgspec.json.decode(text)  # strict; "Number out of range" for 1e999
    except RecursionError:  # not reached within MAX_JSON_DEPTH
        return f"nests arrays and objects more than {MAX_JSON_DEPTH} deep"
    except ValueError as exc:  # msgspec.DecodeError; UnicodeEncodeError
        return f"is not valid JSON ({_why(text, exc)})"
    return None


def _why(text: str, exc: ValueError) -> str:
    """What msgspec's message leaves unsaid: a lone surrogate escape reads to
    it as "Input data was truncated"."""
    if _LONE_SURROGATE.search(text):
        return "a lone surrogate escape like \\ud800 stands for no character"
    if _NOT_NUMBERS.search(_STRINGS.sub("", text)):
        return "NaN and Infinity are no JSON numbers"
    return str(exc)


_NOT_NUMBERS = re.compile(r"\b(?:NaN|Infinity)\b")


# A \uD800-\uDFFF escape that is not a high one followed by a low one (the
# backslashes before it counted: `\\ud800` is a backslash and text).
_LONE_SURROGATE = re.compile(
    r"(?<!\\)(?:\\\\)*(?:\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2})")


# How deep a JSON value kept by an older release may nest: its write check,
# json.loads, read about 1000 levels (Python's recursion limit); past this
# bound a backed-up value is damage. Checked without recursion.
KEPT_JSON_DEPTH = 4096

# A token of JSON as json.loads reads it (strict: no control characters in a
# string; its constants NaN, Infinity, -Infinity), whitespace before it. A
# \uXXXX escape may be a lone surrogate.
_TOKEN = re.compile(
    r'[ \t\n\r]*+(?:(?P<s>"(?:[^"\\\x00-\x1f]++|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*+")'
    r"|(?P<n>-?(?:0|[1-9][0-9]*+)(?P<f>(?:\.[0-9]++)?(?:[eE][-+]?[0-9]++)?))"
    r"|(?P<l>true|false|null|NaN|Infinity|-Infinity)|(?P<p>[\[\]{}:,]))")


def kept_json_problem(text: str) -> str | None:
    """Why `text` cannot be a JSON value an older release kept, or None: what
    its write check, json.loads, took: NaN, Infinity, numbers past a DOUBLE
    (`1e400`, which it read as infinity), a lone surrogate escape and nesting
    past MAX_JSON_DEPTH included, up to KEPT_JSON_DEPTH. Such a value is read
    as the text kept (an answer shows it as a string, server/result.py
    `json_raw`)."""
    problem = json_problem(text)
    if problem is None:
        return None
    depth = json_depth_over(text, KEPT_JSON_DEPTH)
    if depth is not None:
        return f"nests arrays and objects {depth} deep, more than {KEPT_JSON_DEPTH}"
    return problem if not _scans(text) else None


def _scans(text: str) -> bool:
    """Whether `text` is one JSON value as json.loads reads it, read with a
    stack of open arrays and objects (no recursion, whatever the depth)."""
    stack: list[str] = []
    pos, want = 0, "value"  # value | value] | key | key} | : | ,
    while True:
        m = _TOKEN.match(text, pos)
        if m is None:
            return want == "end" and not text[pos:].strip(" \t\n\r")
        pos = m.end()
        punct = m["p"]
        if want == "end":
            return False
        if want in ("value", "value]") and punct is None:
            number = m["n"]
            if number is not None and not m["f"] and len(number.lstrip("-")) > 4300:
                return False  # Python's int() limit (a float of any size was taken)
            if m["s"] is not None or m["n"] is not None or m["l"] is not None:
                want = "," if stack else "end"
                continue
        if want in ("value", "value]") and punct in ("[", "{"):
            stack.append(punct)
            want = "value]" if punct == "[" else "key}"
            continue
        if (want == "value]" and punct == "]") or (want == "key}" and punct == "}") or (
                want == "," and punct in ("]", "}") and stack[-1] == {"]": "[", "}": "{"}[punct]):
            stack.pop()
            want = "," if stack else "end"
            continue
        if want in ("key", "key}") and m["s"] is not None:
            want = ":"
            continue
        if want == ":" and punct == ":":
            want = "value"
            continue
        if want == "," and punct == ",":
            want = "value" if stack[-1] == "[" else "key"
            continue
        return False
