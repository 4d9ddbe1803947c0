"""What the functions storage/unstoppable.py guards cost DuckDB, by the size
of one row's value and by the number of rows in one vector.

Each case runs in a child process on a bare DuckDB (Cairn's default memory
limit, 1 GB; one thread, so a table of at most 2,048 rows is one vector):
a table of R rows, each a value of size S, is built first; then the guarded
function runs over it with DuckDB's own function (no guard), and the child
prints the query's time, the peak RSS it added (VmHWM reset before it), and
how long an interrupt sent 50 ms into the query took to be heard. A table of
at most 2,048 rows is one vector, which DuckDB works through without hearing
an interrupt: the time is the uninterruptible time.

    python bench/bench_unstoppable.py [--family split,list,window,overhead,constants]
                                      [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

CHILD = r"""
import duckdb, sys, threading, time
setup, query = sys.argv[1], sys.argv[2]
con = duckdb.connect(config={"memory_limit": "1GB", "threads": 1})
con.execute(setup)

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
before = status("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")  # VmHWM from here
heard = [None]
def interrupt():
    time.sleep(0.05)
    sent = time.perf_counter()
    con.interrupt()
    heard[0] = sent
t = threading.Thread(target=interrupt)
start = time.perf_counter()
t.start()
try:
    con.execute(query).fetchall()
    outcome = "done"
except duckdb.InterruptException:
    outcome = "interrupted"
end = time.perf_counter()
t.join()
late = end - heard[0] if heard[0] is not None and outcome == "interrupted" else 0.0
print(outcome, end - start, late, (status("VmHWM:") - before) / 1e6)
"""

KIB, MIB = 1 << 10, 1 << 20


def run(setup: str, query: str, timeout: float) -> str:
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, setup, query], capture_output=True,
                             text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"past {timeout:.0f} s (killed)"
    words = out.stdout.split()
    if len(words) != 4:
        return "failed: " + (out.stderr.strip().splitlines() or ["?"])[-1][:100]
    outcome, took, late, mb = words[0], float(words[1]), float(words[2]), float(words[3])
    heard = f"interrupt heard after {late:6.2f} s" if outcome == "interrupted" \
        else "done before the interrupt"
    return f"{took:6.2f} s  +{mb:7.0f} MB  {heard}"


def size(n: int) -> str:
    return f"{n // MIB} MiB" if n >= MIB and n % MIB == 0 else \
        f"{n // KIB} KiB" if n >= KIB and n % KIB == 0 else f"{n:,}"


def split(quick: bool, timeout: float) -> None:
    print("== text split into a list (one-byte pieces: the worst case), "
          "a table of R rows of S bytes, one vector")
    shapes = [(8 * KIB, 1), (8 * KIB, 2048), (64 * KIB, 1), (64 * KIB, 256), (1 * MIB, 1),
              (1 * MIB, 16), (16 * MIB, 1), (32 * KIB, 2048), (8 * MIB, 8), (64 * MIB, 1)]
    if quick:
        shapes = shapes[:6]
    for fn in ("string_split(a, '')", "regexp_split_to_array(a, '')",
               "regexp_extract_all(a, '.')"):
        for s, r in shapes:
            setup = (f"CREATE TABLE t AS SELECT repeat('ab', {s // 2}) AS a "
                     f"FROM range({r}) t(i)")
            query = f"SELECT sum(len({fn})) FROM t"
            print(f"  {fn:32} S={size(s):>8} R={r:>5} (vector {size(s * r):>8}): "
                  + run(setup, query, timeout), flush=True)


    print("== what the guard still lets through (storage/unstoppable.py): the worst vector, "
          "and a lambda, whose results gather for a whole vector of its rows")
    setup = ("CREATE TABLE t AS SELECT * FROM (SELECT repeat('ab', 4094) || lpad(x::VARCHAR, 4, "
             "'0') AS a FROM range(2047) t(x) UNION ALL SELECT repeat('ab', 4194304)) "
             "ORDER BY len(a)")
    print("  string_split(a, '') of 2,047 rows of 8 KiB and one of 8 MiB: "
          + run(setup, "SELECT sum(len(string_split(a, ''))) FROM t", timeout), flush=True)
    setup = ("CREATE TABLE t AS SELECT list(repeat('ab', 4096) || x::VARCHAR) AS l "
             "FROM range(4096) t(x)")
    print("  list_transform(l, lambda x: string_split(x, '')) of one row of 4,096 texts of "
          "8 KiB: " + run(setup, "SELECT sum(len(flatten(list_transform(l, lambda x: "
                                 "string_split(x, ''))))) FROM t", timeout), flush=True)


def lists(quick: bool, timeout: float) -> None:
    print("== a list hashed, a table of R rows of lists of N distinct elements, one vector")
    shapes = [(2048, 1), (2048, 2048), (16384, 1), (16384, 256), (262144, 1), (262144, 16),
              (4 * MIB, 1), (8192, 2048), (16 * MIB, 1)]
    if quick:
        shapes = shapes[:6]
    for fn in ("list_distinct(l)", "list_has_all(l, l)", "list_aggregate(l, 'mode')"):
        for n, r in shapes:
            setup = (f"CREATE TABLE t AS SELECT (SELECT list(x + i) FROM range({n}) r(x)) AS l "
                     f"FROM range({r}) t(i)")
            query = f"SELECT sum(len({fn}::VARCHAR)) FROM t" if "mode" in fn else \
                f"SELECT count({fn}) FROM t"
            print(f"  {fn:26} N={n:>10,} R={r:>5} (vector {n * r:>11,}): "
                  + run(setup, query, timeout), flush=True)


def window(quick: bool, timeout: float) -> None:
    print("== a hashing aggregate over a moving ROWS frame of F rows, over 20,480 rows "
          "(10 vectors of output): the interrupt is heard between vectors")
    frames = [1024, 4096] if quick else [1024, 4096, 16384]
    for fn in ("mode(x % 100000)", "entropy(x % 100000)", "mad(x)",
               "cardinality(histogram(x % 100000)"):
        for f in frames:
            if fn.startswith("cardinality") and f > 4096:
                continue  # its answer is F entries a row: 16,384 is ~20 GB
            close = ")" if fn.startswith("cardinality") else ""
            setup = "CREATE TABLE t AS SELECT x FROM range(20480) t(x)"
            query = (f"SELECT count(w) FROM (SELECT {fn} OVER (ORDER BY x ROWS BETWEEN {f} "
                     f"PRECEDING AND CURRENT ROW){close} AS w FROM t)")
            print(f"  {fn:36} F={f:>6,}: " + run(setup, query, timeout), flush=True)


def overhead(quick: bool, timeout: float) -> None:
    """What the guard costs ordinary rows: the same query on DuckDB's own
    function, on the per-row guard before 2026-12-08 and on this guard."""
    import time
    from pathlib import Path

    import duckdb

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from storage import unstoppable

    rows = 2_000_000 if quick else 10_000_000
    print(f"== the guard on ordinary rows ({rows:,} short texts and lists; best of 3, one thread)")
    bare = duckdb.connect(config={"threads": 1})
    before = duckdb.connect(config={"threads": 1})
    for name, size in (("string_split", "strlen(a::VARCHAR) > 8192"),
                       ("list_distinct", "len(a) > 2048")):
        extra = ", b" if name == "string_split" else ""
        before.execute(f"CREATE MACRO {name}(a{extra}) AS CASE WHEN {size} THEN error('x') "
                       f"ELSE system.main.{name}(if(random() >= 0, a, NULL){extra}) END")
    now = duckdb.connect(config={"threads": 1})
    unstoppable.define(now)
    for query in (f"SELECT sum(len(string_split(x::VARCHAR || ',a,b', ','))) FROM range({rows}) "
                  "t(x)", f"SELECT sum(len(list_distinct([x, x % 3, 1]))) FROM range({rows}) t(x)"):
        best = {}
        for _ in range(3):
            for label, con in (("bare", bare), ("per-row guard", before), ("this guard", now)):
                start = time.perf_counter()
                con.execute(query).fetchall()
                best[label] = min(best.get(label, 1e9), time.perf_counter() - start)
        print(f"  {query[11:50]}: " + ", ".join(f"{k} {v:.2f} s" for k, v in best.items()),
              flush=True)


def constants(quick: bool, timeout: float) -> None:
    """A guarded call on constant lists past the bound: refused as DuckDB plans
    it, or after it computed the call while planning (what the guard's shape
    decides; value_bounds keeps such a list within 1,048,576 elements)."""
    import time
    from pathlib import Path

    import duckdb

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from storage import unstoppable

    print("== a guarded call on constant lists of 1,048,576: time to its refusal")
    con = duckdb.connect(config={"threads": 1})
    unstoppable.define(con)
    for query in ("SELECT list_intersect(range(1048576), range(1048576))",
                  "SELECT range(1048576) @> range(1048576)",
                  "SELECT list_distinct(range(1048576))"):
        start = time.perf_counter()
        try:
            con.execute(query).fetchall()
            outcome = "ran"
        except duckdb.Error:
            outcome = "refused"
        print(f"  {query[7:]:56} {outcome} in {time.perf_counter() - start:.2f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="split,list,window,overhead,constants")
    parser.add_argument("--quick", action="store_true", help="the smaller shapes only")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    for family in args.family.split(","):
        {"split": split, "list": lists, "window": window,
         "overhead": overhead, "constants": constants}[family](args.quick, args.timeout)


if __name__ == "__main__":
    main()
