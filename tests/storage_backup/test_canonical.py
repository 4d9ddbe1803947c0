"""The canonical form is encoded in bounded pieces (a long list a slice at a
time, a document member by member) and must join to exactly what one
`json.dumps` call with the format's settings gives: every stored manifest's
bytes and checksum are defined by it (docs/backup-format.md)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from storage.backup import manifest


def dumps(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


LEAVES = [None, True, False, 0, -5, 2**70, 1.5, 1e16, -0.0, "", 'a"b\\\n\x01é\u2028😀', (1, "t")]


def value(rnd: random.Random, depth: int = 0) -> Any:
    c = rnd.random()
    if depth > 4 or c < 0.3:
        return rnd.choice(LEAVES)
    if c < 0.65:
        return [value(rnd, depth + 1) for _ in range(rnd.randint(0, 8))]
    keys = ["a", "b", "é", "A", "_", "aa", "\x00", "manifest_sha256", "10", "9"]
    return {rnd.choice(keys) + str(rnd.randint(0, 9)): value(rnd, depth + 1)
            for _ in range(rnd.randint(0, 6))}


def test_the_pieces_join_to_one_dumps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manifest, "SLICE", 3)  # lists of 4 and more are sliced
    rnd = random.Random(20261203)
    documents = 0
    for _ in range(2000):
        v = value(rnd)
        assert manifest.canonical(v) == dumps(v), v
        if isinstance(v, dict):
            documents += 1
            parts = manifest.members(v)
            assert manifest.joined(parts) == dumps(v)
            for k in v:
                assert manifest.joined(parts, without=k) == dumps(
                    {x: y for x, y in v.items() if x != k})
    assert documents > 300


@pytest.mark.parametrize("bad", [{"a": float("nan")}, {"a": "\ud800"}, {"a": {1: 2, "b": 3}},
                                 {"a": [float("inf")] * 10}])
def test_what_dumps_refuses_is_refused(bad: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manifest, "SLICE", 3)
    with pytest.raises((TypeError, ValueError)):
        dumps(bad)
    with pytest.raises((TypeError, ValueError)):
        manifest.canonical(bad)


def test_a_dict_with_other_keys_is_encoded_as_dumps_does() -> None:
    assert manifest.canonical({10: 1, 9: 2}) == dumps({10: 1, 9: 2}) == b'{"9":2,"10":1}'
