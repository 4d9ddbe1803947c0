"""Parse time per statement for a mix of Cairn statements and ordinary SQL.

Run: python bench/bench_parse.py [repeats]. Prints microseconds per statement
for each statement family and overall; the grammar is built once at import,
so this measures only parsing.
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


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    print(f"cairn statements (lark LALR): {bench(CAIRN, repeats):7.1f} us/statement")
    print(f"ordinary SQL (sqlglot):       {bench(QUERIES, repeats):7.1f} us/statement")
    for sql in CAIRN:
        print(f"  {bench([sql], repeats):7.1f} us  {sql[:70]}")


if __name__ == "__main__":
    main()
