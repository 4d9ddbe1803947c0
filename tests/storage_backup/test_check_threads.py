"""A sound file's check in a process that cannot start a thread (at its
limit of processes, RLIMIT_NPROC, as under a cgroup's pids.max). VERIFY's
and RESTORE's checks read it through (their pyarrow readers start no thread,
use_threads=False; DuckDB runs on fewer threads); a pyarrow read that does
start its pool's threads fails with "Failed to launch worker thread:
Resource temporarily unavailable", which read_shortage takes for a shortage
of the machine's (503 UNAVAILABLE naming it), never damage of the file. It
was None: any check that met it would have said "cannot be read
(ArrowException)", a sound file damaged."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from storage.files import row_group_rows

# Run as root, the kernel does not hold a process to RLIMIT_NPROC: the
# script becomes nobody (its file in a folder nobody may read) once its
# modules are imported, then limits its processes to the threads it has.
# Its pyarrow has started no thread of its pools yet (they start on first
# use: the file is written by the test).
# Nobody, limited to the threads it has (`hard`: the limit it may go back to).
_AT_THE_LIMIT = """
if os.geteuid() == 0:
    os.setgroups([])
    os.setresgid(65534, 65534, 65534)
    os.setresuid(65534, 65534, 65534)
threads = len(os.listdir("/proc/self/task"))
hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
resource.setrlimit(resource.RLIMIT_NPROC, (threads, hard))
"""
_NO_THREADS = """
import os, resource, sys
from pathlib import Path
import duckdb, msgspec
import pyarrow.parquet as pq
from catalog.diskerrors import read_shortage
from bench.manifests import column, table_entry
from storage.backup import contents, duck_read, fetched_checks
from storage.backup.schema import TableEntry
from tests.helpers import Quiet

path, n = Path(sys.argv[1], "f.parquet"), 1000
e = table_entry("t", [{"oid": "0" * 64, "size": path.stat().st_size, "rows": n,
                       "min_seq": 1, "max_seq": n}],
                [[column("k", "BIGINT", key=True), column("v", "TEXT")]])
t = msgspec.convert(e, TableEntry)
items = [(str(path), t.files[0], t)]
""" + _AT_THE_LIMIT + """
for check in (lambda: fetched_checks.first_problem(items, Quiet(), "b"),  # RESTORE's
              lambda: contents.values_problem(str(path), t.files[0], t)):  # VERIFY's
    print(check())
try:  # a read that takes pyarrow's threads (use_threads: its pool's first use)
    print(sum(b.num_rows for b in pq.ParquetFile(str(path)).iter_batches()))
except Exception as exc:
    print(read_shortage(exc, "cannot check file f"))
resource.setrlimit(resource.RLIMIT_NPROC, (hard, hard))  # threads again: a retry
print(sum(b.num_rows for b in pq.ParquetFile(str(path)).iter_batches()))
"""


def _write(path: Path, n: int) -> None:
    """A sound file of table t (k BIGINT key, v TEXT), written here: a
    writer in the script would start its pyarrow's threads."""
    t = pa.table({"_seq": pa.array(np.arange(1, n + 1), pa.int64()),
                  "_ow": pa.array(np.zeros(n, bool)), "k": pa.array(np.arange(n), pa.int64()),
                  "v": pa.array([f"value {i}" for i in range(n)]),
                  "_updated": pa.array(np.zeros(n, np.int64), pa.timestamp("us")),
                  "_deleted": pa.array(np.zeros(n, bool))})
    pq.write_table(t, path, compression="zstd", row_group_size=row_group_rows(t),
                   store_schema=False)
    os.chmod(path, 0o644)


def test_a_sound_file_checked_where_no_thread_can_start_is_never_damaged() -> None:
    root = str(Path(__file__).resolve().parent.parent.parent)
    folder = tempfile.mkdtemp(dir="/tmp")  # nobody reaches it (tmp_path, TMPDIR: root's alone)
    try:
        os.chmod(folder, 0o755)
        _write(Path(folder, "f.parquet"), 1000)
        out = subprocess.run([sys.executable, "-c", _NO_THREADS, folder], capture_output=True,
                             text=True, timeout=120, cwd=root,
                             env={**os.environ, "PYTHONPATH": root})
    finally:
        shutil.rmtree(folder)
    assert out.returncode == 0, out.stderr[-2000:]
    restore, verify, threads, again = out.stdout.splitlines()[-4:]
    assert restore == verify == "None", out.stdout  # Cairn's readers start no pyarrow thread
    assert threads.startswith("cannot check file f: cannot start a thread"), threads
    assert "[Errno 11] Resource temporarily unavailable" in threads, threads
    assert again == "1000", out.stdout


# As nobody at a limit of processes: a copier cannot start (EAGAIN). (Nobody
# may not run this Python at all, whose path may be under root's home: the
# next start is not tried here.)
_NO_PROCESS = """
import os, resource
from storage.backup import copier
if os.geteuid() == 0:
    os.setgroups([])
    os.setresgid(65534, 65534, 65534)
    os.setresuid(65534, 65534, 65534)
hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
resource.setrlimit(resource.RLIMIT_NPROC, (1, hard))  # under its own threads: no fork
print(copier._take(), copier._enabled)
"""


def test_a_copier_that_cannot_start_at_the_limit_of_processes_is_not_given_up() -> None:
    """At the limit of processes (ulimit -u, a cgroup's pids.max) a copier
    process cannot start, EAGAIN: that copy runs in the server's thread, and
    the next one starts a copier again. EAGAIN turned copiers off until a
    restart (every copy's hashing back on the server's GIL)."""
    root = str(Path(__file__).resolve().parent.parent.parent)
    out = subprocess.run([sys.executable, "-c", _NO_PROCESS], capture_output=True, text=True,
                         timeout=60, cwd=root, env={**os.environ, "PYTHONPATH": root})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines()[-1] == "None True", (out.stdout, out.stderr)
    assert "this copy runs in the server's thread" in out.stderr, out.stderr


# A BACKUP counts the NULL keys of a file whose footer has no NULL counts by
# reading its key column (storage/backup/nullkeys.py), as nobody at the limit
# of processes: pyarrow.parquet.read_table waited forever for its pools'
# threads, which could not start (the BACKUP hung).
_NULL_KEYS = """
import os, resource, sys
from pathlib import Path
from catalog.errors import CairnError
from storage.backup import nullkeys
path = Path(sys.argv[1], "f.parquet")
""" + _AT_THE_LIMIT + """
try:
    print(nullkeys.null_keys(path, "0" * 64, ["k"]))
except CairnError as exc:
    print(exc.code, exc.message)
except Exception as exc:
    print("bug", type(exc).__name__, exc)
"""


def test_a_backups_count_of_null_keys_where_no_thread_can_start_is_not_a_bug() -> None:
    root = str(Path(__file__).resolve().parent.parent.parent)
    folder = tempfile.mkdtemp(dir="/tmp")  # nobody reaches it (not TMPDIR: root's alone)
    try:
        os.chmod(folder, 0o755)
        path = Path(folder, "f.parquet")
        keys = pa.array([None, 1, None, 3, None, *range(5, 1000)], pa.int64())
        pq.write_table(pa.table({"k": keys, "v": pa.array(["x"] * 1000)}), path,
                       write_statistics=False)  # no NULL counts: the column is read
        os.chmod(path, 0o644)
        out = subprocess.run([sys.executable, "-c", _NULL_KEYS, folder], capture_output=True,
                             text=True, timeout=60, cwd=root,
                             env={**os.environ, "PYTHONPATH": root})
    finally:
        shutil.rmtree(folder)
    assert out.returncode == 0, out.stderr[-2000:]
    answer = out.stdout.splitlines()[-1]
    # Read on its own thread, the count; or, if even that cannot start one, 503.
    assert answer == "3" or answer.startswith("UNAVAILABLE "), out.stdout
