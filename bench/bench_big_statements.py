"""Big statements beside small ones: the longest a `SELECT 1` from another
client waits while one client sends a 9 MB statement (the request limit is
10 MB). Parsing runs on a statement thread, but a regular expression holds
the GIL for its whole search: the string-literal patterns read a character
at a time (`'(?:[^']|'')*'`: 1.1 s over 9 MB), the number check searched the
whole text at once (0.7 s), the token count read every token (1.3 s), and
sqlglot's tokenizer read every comment (2 M of them: 12-28 s, others waiting
2-6 s). A figure per statement: its own time and the pinger's longest wait.

    python bench/bench_big_statements.py [--mb 9] [--root CHECKOUT]

`--root` runs the server from another checkout (an A/B against older code)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.cairn_process import CairnProcess, write_config  # noqa: E402 (after the path)


def post(url: str, sql: str) -> int:
    req = urllib.request.Request(f"{url}/api/sql", data=json.dumps({"sql": sql}).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            r.read()
            return int(r.status)
    except urllib.error.HTTPError as e:
        e.read()
        return int(e.code)


def pinger(url: str, stop: threading.Event, waits: list[float]) -> None:
    while not stop.is_set():
        t = time.perf_counter()
        post(url, "SELECT 1")
        waits.append(time.perf_counter() - t)


def statements(mb: int) -> dict[str, str]:
    n = mb * 1_000_000
    return {
        "BACKUP, a 9 MB passphrase": ("BACKUP DATABASE app TO 'big' WITH "
                                      f"(encryption_passphrase = '{'p' * n}')"),
        "SELECT length('<9 MB>')": f"SELECT length('{'p' * n}')",
        "SELECT E'<9 MB>' (backslash string)": f"SELECT length(E'{'p' * n}')",
        "SELECT 1 1 1 ... (4.5 M tokens, refused)": "SELECT " + "1 " * (n // 2),
        # sqlglot read every comment (holding the GIL) and kept it in the tree.
        "SELECT 1 --x (2.25 M line comments)": "SELECT 1 " + "--x\n" * (n // 4),
        "SELECT 1 /**/ (2.25 M comments)": "SELECT 1 " + "/**/" * (n // 4),
        "SELECT 1 /*/**/*/ (1.1 M nested comments)": "SELECT 1 " + "/*/**/*/" * (n // 8),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=9)
    ap.add_argument("--root", type=Path, default=ROOT)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cfg = write_config(work / "cairn.toml", work / "backups", 0)
        srv = CairnProcess(work / "data", cfg, work / "server.log", root=args.root).start()
        try:
            srv.ok("CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY);"
                   "INSERT INTO app.t VALUES (1)")
            print(f"server from {args.root}, {args.mb} MB statements\n")
            print("| statement | status | its time, s | pings | longest SELECT 1 meanwhile, ms |")
            print("|---|---|---|---|---|")
            for name, sql in statements(args.mb).items():
                waits: list[float] = []
                stop = threading.Event()

                thread = threading.Thread(target=pinger, args=(srv.url, stop, waits))
                thread.start()
                time.sleep(0.5)
                started = time.perf_counter()
                status = post(srv.url, sql)
                took = time.perf_counter() - started
                time.sleep(0.3)
                stop.set()
                thread.join()
                print(f"| {name} | {status} | {took:.2f} | {len(waits)} | "
                      f"{max(waits) * 1000:.0f} |")
        finally:
            srv.kill()


if __name__ == "__main__":
    main()
