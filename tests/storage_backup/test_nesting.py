"""How deep what is read back from a target nests JSON: counted without
recursion before anything parses it, so a manifest nested past
records.MAX_JSON_DEPTH is BACKUP_INVALID saying so, however deep the reader's
own stack already is (json.loads took ~1000 levels, then the canonical encoding
recursed past Python's limit: a RecursionError, a 500)."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog.errors import BackupInvalid
from storage.backup import envelope, manifest, records
from storage.backup.codec import ZSTD, Form, encode_bytes
from storage.backup.crypto import binding_for_manifest

DEPTHS = (65, 500, 900, 950, 975, 980, 985, 990, 995, 999, 1000, 1001, 5000, 100_000)


def reference_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(reference_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(reference_depth, value), default=0)
    return 0


TEXT = st.text(alphabet='ab[]{}"\\\n/é\u2028', max_size=6)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(value=VALUES, ascii_only=st.booleans(), indent=st.sampled_from([None, 1]))
def test_nesting_depth_is_exact_for_any_json(value: Any, ascii_only: bool,
                                             indent: int | None) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent).encode()
    assert records.nesting_depth(text) == reference_depth(value)


def test_what_backup_writes_is_well_within_the_bound() -> None:
    deepest = {"tables": [{"schemas": [{"columns": [{"params": [10, 2]}]}],
                           "files": [{"key_range": {"id": [1, 2]}}]}]}
    assert records.nesting_depth(manifest.canonical(deepest)) == 8 < records.MAX_JSON_DEPTH


def nested(depth: int) -> bytes:
    return b'{"abcdefghij":' * depth + b"1" + b"}" * depth


def plain_manifest(depth: int) -> bytes:
    return b'{"format_version":1,"manifest_sha256":"x","x":' + nested(depth) + b"}\n"


def zstd_manifest(depth: int) -> bytes:
    """A sealed header whose zstd body nests `depth` deep."""
    plain = b'{"zz":' + nested(depth) + b"}"
    stored = encode_bytes(plain, Form("", ZSTD, None), binding_for_manifest("bk-deep"))
    header = {"backup_id": "bk-deep", "encrypted": False, "features": ["zstd"],
              "format_version": 1,
              "body": {"codec": "zstd", "data": base64.b64encode(stored).decode(),
                       "plain_size": len(plain)}}
    header["manifest_sha256"] = manifest.checksum(header)
    return manifest.canonical(header) + b"\n"


def with_stack_left(frames: int, call: Callable[[], Any]) -> Any:
    """`call()` with only about `frames` Python frames left before the limit."""
    here = len(_frames())
    return _down(sys.getrecursionlimit() - here - frames, call)


def _frames() -> list[Any]:
    frame, found = sys._getframe(), []
    while frame is not None:
        found.append(frame)
        frame = frame.f_back  # type: ignore[assignment]
    return found


def _down(n: int, call: Callable[[], Any]) -> Any:
    return call() if n <= 0 else _down(n - 1, call)


@pytest.mark.parametrize("form", [plain_manifest, zstd_manifest])
@pytest.mark.parametrize("left", [None, 400, 120])
def test_a_deep_manifest_is_damage_at_any_stack_depth(
        form: Callable[[int], bytes], left: int | None) -> None:
    for depth in DEPTHS:
        data = form(depth)

        def unpack(data: bytes = data) -> None:
            envelope.unpack(data, "bk-deep", lambda key_id: None)

        with pytest.raises(BackupInvalid) as caught:
            unpack() if left is None else with_stack_left(left, unpack)
        assert "manifest of backup 'bk-deep'" in caught.value.message
        assert f"nests JSON objects and arrays {depth + 1} deep, more than 64" in (
            caught.value.message), (depth, caught.value.message)


@pytest.mark.parametrize("value", [b"NaN", b"Infinity", b'"\\ud800"', b'"\\udc00x"'])
def test_a_body_holding_what_cairn_never_writes_is_damage(value: bytes) -> None:
    plain = b'{"zz":' + value + b"}"
    stored = encode_bytes(plain, Form("", ZSTD, None), binding_for_manifest("bk-nan"))
    header = {"backup_id": "bk-nan", "encrypted": False, "features": ["zstd"],
              "format_version": 1,
              "body": {"codec": "zstd", "data": base64.b64encode(stored).decode(),
                       "plain_size": len(plain)}}
    header["manifest_sha256"] = manifest.checksum(header)
    with pytest.raises(BackupInvalid, match="manifest of backup 'bk-nan' body is corrupt: it "
                                            "holds (NaN or Infinity|a lone surrogate)"):
        envelope.unpack(manifest.canonical(header) + b"\n", "bk-nan", lambda key_id: None)


@pytest.mark.parametrize("kind", [records.Config, records.Preamble, records.KeyFile,
                                  records.Lock, records.PruneMarker])
def test_a_record_nested_too_deep_is_damage(kind: type) -> None:
    for depth in DEPTHS:
        with pytest.raises(BackupInvalid, match=f"{depth + 1} deep, more than 64"):
            records.decode(b'{"format":"cairn-backup","zz":' + nested(depth) + b"}", kind, "f")
