"""An /api/sql answer read and written back without changing a JSON value.

The server puts a JSON column's stored text into its answer as it is
(docs/http.md): `{"role":"admin","role":"user"}` keeps both keys (SQL reads the
first), `12345678901234567890.123456789` keeps its digits, `-0` stays `-0`.
Python's json.loads kept the last key and turned the number into a double
(`1.2345678901234567e+19`), and the console printed that in every format. Read
here, a number whose text a Python float or int does not give back exactly is a
`JsonNumber` holding its text, an object with a key twice a `JsonObject`
holding every pair, and `dumps` writes them back as they came."""

from __future__ import annotations

import json
import math
import re
import secrets
from json.encoder import encode_basestring
from typing import Any


class JsonNumber:
    """A JSON number as the server wrote it (`float()` gives its value)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __float__(self) -> float:
        return float(self.text)

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JsonNumber) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


class JsonObject(dict[str, Any]):
    """An object with a key given more than once: reads as the first (as DuckDB
    and the server read it); `items()`, which json's encoder writes, gives every
    pair in order."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(reversed(pairs))  # the first of each key wins
        self.pairs = pairs

    def items(self) -> Any:
        return list(self.pairs)


def _number(text: str) -> float | JsonNumber:
    value = float(text)
    return value if math.isfinite(value) and repr(value) == text else JsonNumber(text)


def _integer(text: str) -> int | JsonNumber:
    return JsonNumber(text) if text == "-0" else int(text)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    return value if len(value) == len(pairs) else JsonObject(pairs)


def loads(text: str | bytes) -> Any:
    """json.loads, keeping every number's text and every key of an object."""
    return json.loads(text, parse_float=_number, parse_int=_integer, object_pairs_hook=_object)


def dumps(value: Any) -> str:
    """Compact JSON of what `loads` read (and of plain Python values): numbers
    as their text, every pair of an object.

    json's own encoder (in C) writes it, a `JsonNumber` first as a string no
    value can hold (a NUL and a random mark), then put back as its text."""
    mark = "\x00" + secrets.token_hex(8)
    numbers = 0

    def default(item: Any) -> str:
        nonlocal numbers
        if isinstance(item, JsonNumber):
            numbers += 1
            return mark + item.text
        return str(item)

    encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=default,
                               check_circular=False)
    try:
        text = encoder.encode(value)
    except RecursionError:  # nested deeper than the encoder goes: the slow way
        return _dumps_deep(value)
    if numbers:
        text = re.sub('"' + re.escape(encode_basestring(mark)[1:-1]) + '([^"]*)"', r"\1", text)
    return text


_CLOSE = object()  # a marker on _dumps_deep's stack: the text under it is written as it is


def _dumps_deep(value: Any) -> str:
    """`dumps` without recursion, for a value nested past the recursion limit."""
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if item is _CLOSE:
            out.append(stack.pop())
        elif isinstance(item, JsonNumber):
            out.append(item.text)
        elif isinstance(item, dict):
            pairs = list(item.items())
            out.append("{")
            stack.extend(("}", _CLOSE))
            for i in range(len(pairs) - 1, -1, -1):
                key, member = pairs[i]
                stack.extend((member, ("," if i else "") + encode_basestring(str(key)) + ":",
                              _CLOSE))
        elif isinstance(item, (list, tuple)):
            out.append("[")
            stack.extend(("]", _CLOSE))
            for i in range(len(item) - 1, -1, -1):
                stack.extend((item[i], ",", _CLOSE) if i else (item[i],))
        else:
            out.append(json.dumps(item, ensure_ascii=False, default=str))
    return "".join(out)
