"""A large answer is encoded a slice of rows at a time (server/app.py
`sliced_json_bytes`), so the event loop gets the GIL between slices: the bytes
are the same as encoding the whole body at once."""

from __future__ import annotations

import json
import random

from server.app import ROWS_PER_SLICE, json_bytes, sliced_json_bytes


def _result(rng: random.Random, rows: int) -> dict[str, object]:
    out: dict[str, object] = {
        "columns": ["id", "t"],
        "schema": [{"name": "id", "type": "BIGINT"}, {"name": "t", "type": "TEXT"}],
        "rows": [{"id": rng.randint(-2**70, 2**70), "t": rng.choice(["", "é", '"rows":[]', None])}
                 for _ in range(rows)],
        "row_count": rows,
        "message": None,
    }
    if rng.random() < 0.5:
        out["truncated"] = True
    return out


def test_sliced_is_the_whole_body_at_once() -> None:
    rng = random.Random(3)
    sizes = [0, 1, ROWS_PER_SLICE - 1, ROWS_PER_SLICE, ROWS_PER_SLICE + 1, 3 * ROWS_PER_SLICE + 7]
    for _ in range(6):
        body = {"status": "success",
                "results": [_result(rng, rng.choice(sizes)) for _ in range(rng.randint(0, 3))],
                "took": rng.random() * 100}
        sliced = sliced_json_bytes(body)
        assert sliced == json_bytes(body)
        assert json.loads(sliced) == json.loads(json.dumps(body))
