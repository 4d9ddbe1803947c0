"""The catalog on a disk that refuses writes: RocksDB's IO errors (a bare
Exception from rocksdict) become DataDirUnavailable naming the data
directory. Each case runs in a child process whose files may not grow past a
limit (RLIMIT_FSIZE: EFBIG, as a full disk's ENOSPC), so that pytest's own
files are not limited."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from catalog import Catalog, Meta
from catalog.diskerrors import from_rocksdb

LIMITED = """
import json, resource, signal
from contextlib import contextmanager
from catalog import Catalog, Meta
from catalog.diskerrors import DataDirUnavailable

@contextmanager
def limit(size):
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))

def attempt(fn, *args):
    try:
        fn(*args)
        return "ok"
    except DataDirUnavailable as exc:
        return exc.message
    except Exception as exc:
        return "other: " + str(exc)
"""


def run(tmp_path: Path, body: str) -> dict[str, Any]:
    script = LIMITED + textwrap.dedent(body)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=Path(__file__).parents[2], timeout=60)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_new_family_refused_names_the_disk(tmp_path: Path) -> None:
    """`with suppress(Exception)` took the refusal for a racing creator; the
    error then named a column family that 'does not exist'."""
    out = run(tmp_path, f"""
        cat = Catalog({str(tmp_path / 'data' / 'catalog')!r})
        with limit(100):  # the MANIFEST's next record cannot be written
            refused = attempt(cat.family, "buf_t")
        later = attempt(cat.family, "buf_t")
        cat.close()
        print(json.dumps({{"refused": refused, "later": later}}))
        """)
    assert out["refused"].startswith(
        f"file size limit reached on the data directory '{tmp_path / 'data'}'"), out
    assert out["later"] == "ok"


def test_refused_write_loses_no_acknowledged_one_and_closes(tmp_path: Path) -> None:
    """RocksDB refuses every write after its log could not be written, and its
    close reports that again (`Writer has previous error`): close() raised,
    a SIGTERM'd server exited with a trace. What was acknowledged is kept."""
    out = run(tmp_path, f"""
        cat = Catalog({str(tmp_path / 'data' / 'catalog')!r})
        cat.put(Meta("before", 1))
        with limit(1 << 20):
            big = attempt(cat.put, Meta("big", "x" * (2 << 20)))
        after = attempt(cat.put, Meta("after", 1))
        error = cat.write_error
        cat.keep(Meta("kept", 2))  # a failure's own state: read from memory meanwhile
        kept = [cat.get(Meta, "kept").value, [m.name for m in cat.scan(Meta)]]
        closed = attempt(cat.close)
        print(json.dumps({{"big": big, "after": after, "error": error, "kept": kept,
                           "closed": closed}}))
        """)
    where = f"the data directory '{tmp_path / 'data'}'"
    assert out["big"].startswith(f"file size limit reached on {where}"), out
    assert out["after"] == out["error"] == out["big"]  # RocksDB stays refusing until reopened
    assert out["kept"] == [2, ["before", "kept"]]
    assert out["closed"] == "ok"
    cat = Catalog(tmp_path / "data" / "catalog")
    assert [m.name for m in cat.scan(Meta)] == ["before"]  # kept in memory only: gone
    cat.put(Meta("reopened", 1))  # writes work again after a reopen
    assert cat.get(Meta, "reopened") is not None
    cat.close()


def test_rocksdb_texts_name_the_cause() -> None:
    """RocksDB's status texts as rocksdict raises them, read once."""
    data = Path("/srv/cairn")
    full = from_rocksdb(data, Exception(
        "IO error: No space left on device: While appending to file: "
        "/srv/cairn/catalog/000004.log: No space left on device"))
    assert full is not None and full.sqlstate == "53100"
    assert full.message == ("no space left on the data directory '/srv/cairn' (RocksDB: While "
                            "appending to file: /srv/cairn/catalog/000004.log)")
    files = from_rocksdb(data, Exception(
        "IO error: While open a file for random read: /srv/cairn/catalog/000009.sst: "
        "Too many open files"))
    assert files is not None and files.sqlstate == "53000"
    assert files.message.startswith("too many open files for the data directory '/srv/cairn'")
    assert from_rocksdb(data, Exception("Invalid argument: Column family already exists")) is None
