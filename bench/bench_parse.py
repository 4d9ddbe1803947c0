"""Parse time per statement for a mix of Cairn statements and ordinary SQL.

Run: python bench/bench_parse.py [repeats]. Prints microseconds per statement
for each statement family and overall; the grammar is built once at import,
so this measures only parsing. The ordinary SQL lines include DuckDB's parser
reading each statement too (sqlgrammar/duckparse.py), whose own cost is
printed beside them.
"""

from __future__ import annotations

import sys
import time

from sqlgrammar import parse_script

CAIRN = [
    "CREATE NAMESPACE IF NOT EXISTS app",
    "DROP NAMESPACE IF EXISTS app CASCADE",
    "SHOW NAMESPACES",
    "CREATE TABLE app.users (id BIGINT PRIMARY KEY, name TEXT NOT NULL, "
    "score DOUBLE DEFAULT 0.5, created TIMESTAMP) WITH (flush_rows = 1000)",
    "ALTER TABLE app.users ADD COLUMN email VARCHAR(200) DEFAULT ''",
    "DESCRIBE TABLE app.users HISTORY",
    "FLUSH ALL TABLES IN app",
    "BACKUP DATABASE app TO 'nightly' WITH (label = 'before upgrade', detached = true)",
    "RESTORE DATABASE app FROM 'nightly' AS app2 WITH (replace = true)",
    "SHOW BACKUPS FOR DATABASE app IN 'nightly' LIMIT 10",
    "VERIFY BACKUP 'bk-0001' IN 'nightly'",
    "CREATE SCHEDULE hourly FOR BACKUP DATABASE app TO 'nightly' EVERY '1h' KEEP LAST 24",
]
QUERIES = [
    "SELECT id, name FROM app.users WHERE score > 0.5 ORDER BY id LIMIT 10",
    "INSERT INTO app.users (id, name) VALUES (1, 'a'), (2, 'b')",
    "UPDATE app.users SET score = score + 1 WHERE id = 1",
    "DELETE FROM app.users WHERE id = 2",
]


def bench(statements: list[str], repeats: int) -> float:
    """Microseconds per statement, best of three runs (less noise than the mean)."""
    script = ";\n".join(statements)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            parse_script(script)
        best = min(best, time.perf_counter() - start)
    return best / (repeats * len(statements)) * 1e6


def bench_duckdb(statements: list[str], repeats: int) -> float:
    """Microseconds per statement of the DuckDB parser's reading alone."""
    try:
        from sqlgrammar.duckparse import duckdb_refusal
    except ImportError:  # a tree before duckparse.py
        return float("nan")
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            for sql in statements:
                duckdb_refusal(sql)
        best = min(best, time.perf_counter() - start)
    return best / (repeats * len(statements)) * 1e6


def ablation(statements: list[str], repeats: int) -> tuple[float, float]:
    """CPU microseconds per statement with and without DuckDB's reading,
    interleaved run by run (a loaded machine moves both alike)."""
    from sqlgrammar import parser

    gate = getattr(parser, "check_with_duckdb", None)
    script = ";\n".join(statements)
    best = {True: float("inf"), False: float("inf")}
    for _ in range(5):
        for on in (True, False):
            if gate is not None:
                parser.check_with_duckdb = gate if on else (lambda *_: None)  # type: ignore[attr-defined]
            start = time.process_time()
            for _ in range(repeats):
                parse_script(script)
            best[on] = min(best[on], time.process_time() - start)
    if gate is not None:
        parser.check_with_duckdb = gate  # type: ignore[attr-defined]
    return tuple(best[on] / (repeats * len(statements)) * 1e6 for on in (True, False))  # type: ignore[return-value]


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    print(f"cairn statements (lark LALR): {bench(CAIRN, repeats):7.1f} us/statement")
    print(f"ordinary SQL (sqlglot):       {bench(QUERIES, repeats):7.1f} us/statement")
    for sql in CAIRN:
        print(f"  {bench([sql], repeats):7.1f} us  {sql[:70]}")
    for sql in QUERIES:
        print(f"  {bench([sql], repeats):7.1f} us  {sql[:70]}")
    print(f"DuckDB's parser alone (duckparse): {bench_duckdb(QUERIES, repeats):7.1f} us/statement")
    with_it, without = ablation(QUERIES, repeats)
    print(f"ordinary SQL, CPU time, with / without DuckDB's reading: {with_it:7.1f} / "
          f"{without:7.1f} us/statement")


if __name__ == "__main__":
    main()
