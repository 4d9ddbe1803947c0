"""What a guarded call in a lambda costs (storage/lambda_guard.py): the
attack (one row holding a list of 4,096 texts of 8 KiB, each split into
one-byte pieces) and ordinary lambdas, each run as the server sends it to
DuckDB with the lambda's list guarded and without (the guard's rewriting
left out: what the server ran before).

Each case runs in a child process on one of the server's DuckDBs
(`sandbox.connect`: the guarding macros, 1 GB, one thread); the child prints
the query's time (the median of `runs`), the peak RSS it added (VmHWM reset
before it) and the outcome (done, or the refusal's first words).

    python bench/bench_lambda_guard.py
"""

from __future__ import annotations

import subprocess
import sys

CHILD = r"""
import statistics, sys, tempfile, time
from pathlib import Path
import duckdb, sqlglot
from sqlgrammar import parse_one
from storage import lambda_guard, sandbox
setup, query, guarded, runs = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
con = sandbox.connect(Path(tempfile.mkdtemp()), "1GB", 1).cursor()
con.execute(setup)
tree = parse_one(query).expression
if guarded:
    lambda_guard.guard(list(tree.find_all(sqlglot.exp.Lambda, sqlglot.exp.Comprehension)))
text = tree.sql(dialect="duckdb")

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
before = status("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")  # VmHWM from here
times, outcome = [], "done"
for _ in range(runs):
    start = time.perf_counter()
    try:
        con.execute(text).fetchall()
    except duckdb.Error as e:
        outcome = "refused: " + str(e).split(":", 1)[-1].strip()[:40]
    times.append(time.perf_counter() - start)
print(statistics.median(times), (status("VmHWM:") - before) / 1e6, outcome)
"""

CASES = [
    # (what, setup, query, runs)
    ("attack: 1 row, 4,096 texts of 8 KiB split",
     "CREATE TABLE a AS SELECT list(repeat('a', 8188) || lpad(x::VARCHAR, 4, '0')) AS l "
     "FROM range(4096) t(x)",
     "SELECT sum(len(list_transform(l, x -> string_split(x, '')))) FROM a", 1),
    ("attack: nested, 3,000 lists of 3 texts of 1 KiB",
     "CREATE TABLE a AS SELECT list([repeat('b', 1024), repeat('c', 1024), repeat('d', 1024) "
     "|| x::VARCHAR]) AS ll FROM range(3000) t(x)",
     "SELECT len(list_transform(ll, y -> list_transform(y, x -> string_split(x, '')))) FROM a", 1),
    ("worst passed: 2,047 rows of one 8 KiB text and one of 1,023 (one vector)",
     "CREATE TABLE w AS SELECT x, [repeat('a', 8188) || lpad(x::VARCHAR, 4, '0')] AS l "
     "FROM range(2047) t(x) UNION ALL SELECT 9999, list(repeat('a', 8188) || "
     "lpad(x::VARCHAR, 4, '0')) FROM range(1023) t(x)",
     "SELECT sum(len(list_transform(l, x -> string_split(x, '')))) FROM w", 1),
    ("ordinary: 2,048 rows of 10 texts 'k=v'",
     "CREATE TABLE o AS SELECT list('k' || y::VARCHAR || '=' || x::VARCHAR) AS l "
     "FROM range(2048) t(x), range(10) u(y) GROUP BY x",
     "SELECT sum(len(list_transform(l, x -> string_split(x, '=')))) FROM o", 20),
    ("ordinary: 100,000 rows of 10 texts 'k=v'",
     "CREATE TABLE o AS SELECT list('k' || y::VARCHAR || '=' || x::VARCHAR) AS l "
     "FROM range(100000) t(x), range(10) u(y) GROUP BY x",
     "SELECT sum(len(list_transform(l, x -> string_split(x, '=')))) FROM o", 5),
    ("ordinary: list_distinct of 2,048 rows of 50 lists of 20",
     "CREATE TABLE o AS SELECT list(range(y, y + 20)) AS ll FROM range(2048) t(x), "
     "range(50) u(y) GROUP BY x",
     "SELECT sum(len(list_transform(ll, l -> list_distinct(l)))) FROM o", 20),
]


def main() -> None:
    for what, setup, query, runs in CASES:
        print(f"== {what}")
        for guarded in (False, True):
            out = subprocess.run([sys.executable, "-c", CHILD, setup, query, str(int(guarded)),
                                  str(runs)], capture_output=True, text=True, timeout=600)
            words = out.stdout.split(maxsplit=2)
            shown = (f"{float(words[0]):8.4f} s  +{float(words[1]):7.0f} MB  {words[2].strip()}"
                     if len(words) == 3 else "failed: " + (out.stderr.strip().splitlines()
                                                          or ["?"])[-1][:100])
            print(f"   {'guarded' if guarded else 'before '}  {shown}")


if __name__ == "__main__":
    main()
