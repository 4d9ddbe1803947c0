"""A multi-row INSERT of literals run from its typed description
(sqlgrammar/fastrows.py -> storage.fast.insert_rows) stores the same rows and
fails with the same errors, naming the same row, as the normal path (sqlglot's
tree through dml.insert): two servers given the same statements, one with the
fast path and one without, then every table read back from both."""

from __future__ import annotations

import random
from pathlib import Path

from bench.fastpath_cases import check_execution, close_pair, open_pair
from server.executor import execute
from server.session import Session
from sqlgrammar import parser

STATEMENTS = [
    "INSERT INTO app.t (id, n, s) VALUES (1, 2, 'a'), (2, -3, 'it''s'), (3, NULL, 'c')",
    "INSERT INTO app.t (id, n, s) VALUES (4, 1, 'x'), (1, 2, 'dup with a stored row')",
    "INSERT INTO app.t (id, n, s) VALUES (5, 1, 'x'), (6, 1, 'y'), (5, 2, 'dup in the statement')",
    "INSERT INTO app.t (id, n, s) VALUES (7, 1, 'x'), (8, 'not a number', 'y')",
    "INSERT INTO app.t (id, n, s) VALUES (9, 1, 'x'), (10, 99999999999, 'int overflow')",
    ("INSERT INTO app.t (id, s, d, b, m) VALUES (11, 'a', 1.5, TRUE, 2.25), "
     "(12, 'b', -2, false, -0.5)"),
    "INSERT INTO app.t (id, s) VALUES (13, 'a'), (14, NULL)",
    ("INSERT INTO app.t (id, dt, ts) VALUES (15, '2026-01-02', '2026-01-02 03:04:05'), "
     "(16, '2026-13-45', NULL)"),
    "INSERT INTO app.t (id, vc) VALUES (17, 'abc'), (18, 'abcdef')",
    "INSERT INTO app.t (id, zz) VALUES (19, 1), (20, 2)",
    "INSERT INTO app.t (id, id) VALUES (21, 1), (22, 2)",
    "INSERT INTO app.t (id, _seq) VALUES (23, 1), (24, 2)",
    "INSERT INTO app.t VALUES (25, 1), (26, 2)",
    "INSERT INTO app.k VALUES (1, 'a'), (1, 'a'), (2, NULL)",
    "INSERT INTO app.k VALUES (1, 'a'), (1, 'a'), (2, 'b')",
    "INSERT INTO app.u VALUES (1, 'mine'), (2, 'mine too')",
    "INSERT INTO app.ev VALUES (1, 'e'), (2, 'f')",
    "INSERT INTO app.nope VALUES (1, 'e'), (2, 'f')",
    "INSERT INTO system.jobs VALUES (1, 'e'), (2, 'f')",
    "INSERT INTO tk VALUES ('a', 1), ('b', 2)",
    "INSERT INTO app.tk VALUES ('a', 1), ('b', 2.5), ('c', -3)",
    "INSERT INTO app.t (id, j, r) VALUES (30, '{\"a\": 1}', 1.5), (31, '[1,2', 2)",
    "INSERT INTO app.t (id, sm) VALUES (32, 32767), (33, -32769)",
]


async def test_fast_and_normal_multi_row_inserts_store_and_fail_alike(tmp_path: Path) -> None:
    pair = await open_pair(tmp_path)
    rng = random.Random(7)
    try:
        for sql in STATEMENTS:
            assert parser._fast(sql) is not None, sql  # each really takes the fast path
            await check_execution(pair, sql, rng)
        big = ("INSERT INTO load.t VALUES "
               + ", ".join(f"({i}, {i % 7}, 'row ''{i}''')" for i in range(2000)))
        await check_execution(pair, big, rng)
        await check_execution(pair, big.replace("(1999, ", "(5, "), rng)  # dup, last row
        tables = []
        for cairn in (pair.fast, pair.slow):
            got = {}
            for t in ("app.t", "app.k", "app.tk", "app.ev", "load.t"):
                out = await execute(cairn, Session(user_id="alice"),
                                    f"SELECT * FROM {t} ORDER BY ALL")
                assert out.error is None, out.error
                got[t] = [{k: v for k, v in row.items() if k != "_updated"}
                          for row in out.results[0].to_json()["rows"]]
            tables.append(got)
    finally:
        await close_pair(pair)
    assert tables[0] == tables[1]
    assert len(tables[0]["load.t"]) == 2000
    assert pair.outcomes.get("ok", 0) >= 5 and pair.outcomes.get("error", 0) >= 10
