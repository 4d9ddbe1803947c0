"""A RESTORE's check of the files it fetched, in a job process.

Every file a RESTORE fetched is checked as VERIFY checks it (contents.py:
its footer, then every value, read by pyarrow and then by DuckDB, the reader
of every query: duck_read.py) before anything is installed. Those reads are
the whole restore's largest memory (a row group of 1,000-byte values is read
a column chunk at a time by both readers: the server's peak RSS went 242 ->
352 MB on bench_backup.py's 0.25 GiB namespace with DuckDB's read in the
server) and its longest stretch of decoding on the GIL; and a reader that
ended its process on a crafted file would end the server. So the install
hands the list to a job process (storage/jobproc.py `call`), as VERIFY
runs; the files are local, in the data directory, read there by path.
Between two files it meets the job's KILL and PAUSE (`work.check_cancelled`):
a restore of thousands of files checks for minutes, and a KILL then waited
KILL_GRACE for the process and ended it, a PAUSE waited for the whole
check."""

from __future__ import annotations

from typing import Any

from ..work import Work
from . import crash_marks, footers
from .contents import problem, tail_of, values_problem


def first_problem(items: list[tuple[str, Any, Any]], work: Work, backup_id: str = "",
                  blamed: frozenset[str] = frozenset(),
                  first: tuple[str, ...] = (),
                  share: tuple[float, float] | None = None) -> str | None:
    """None when each (`path`, file entry, table entry) of `items` is the file
    its entry describes, else what is wrong with the first that is not. One
    file at a time: both readers decode every column (~100 MB at a peak for
    a file of 1,000-byte values; two at once took a restore's peak +350 MB).
    `work`: the job's (jobproc.WORK), met before each file. A file of
    `backup_id` in `blamed` is not read: its job process died on it each
    time (crash_marks.py); those of `first` are read before the others.
    `share`: the job's fraction from its first to its second as the files'
    bytes are checked (a run again after a crash goes on from the most:
    jobblame._Onward, and the job's fraction never goes back)."""
    low, high = share if share is not None else (0.0, 0.0)
    total, checked = max(1, sum(f.size for _, f, _ in items)), 0
    with crash_marks.marking(work, blamed, first):
        items = sorted(items, key=lambda i: crash_marks.ahead(backup_id, [i[1].content_sha256]))
        for index, (path, f, t) in enumerate(items):
            if share is not None:
                work.progress(fraction=low + (high - low) * checked / total)
            checked += f.size
            what = f"file {f.content_sha256} of table '{t.name}'"
            # A death out of the file's contents (between two files, its tail
            # read) names it too (storage/joblost.py).
            with crash_marks.doing(f"{what} (file {index + 1} of {len(items)} to check)"):
                work.fault("restore.check_file", index=index)
                work.check_cancelled()
                wrong = crash_marks.blamed(backup_id, f.content_sha256, what)
                if wrong is None:
                    with crash_marks.reading(backup_id, f.content_sha256):
                        wrong = (problem(tail_of(path, footers.bound(t, f).tail), f, t)
                                 or values_problem(path, f, t))
            if wrong is not None:
                return wrong
    return None
