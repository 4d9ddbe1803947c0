"""Records kept in memory while the disk refused writes (catalog/unsaved.py):
never written over a newer write of the same key, and written at close."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from catalog import Catalog
from catalog.records import Job, Meta


def test_a_kept_record_never_overwrites_a_newer_write_of_its_key(tmp_path: Path) -> None:
    """A job's `running` row kept in memory; the next write that succeeds
    writes it (`_save_unsaved`, from a copy taken under the lock) while
    another thread commits the job's `completed` row. The commit wrote and
    dropped the kept key without the lock, so the older kept row could land
    after it: the job read `running` for good. The interleaving is forced."""
    cat = Catalog(tmp_path / "cat")
    with cat._lock:  # what Catalog.keep leaves once the disk refused the write
        cat._unsaved[(Job.FAMILY, b"job-1")] = Job(job_id="job-1", job_type="backup",
                                                   status="running").dumps()
    done = threading.Event()

    def job_end() -> None:
        batch = cat.batch()
        batch.put(Job(job_id="job-1", job_type="backup", status="completed"))
        batch.commit()
        done.set()

    real = cat._handle
    fired: list[int] = []

    def handle(family: str) -> Any:  # inside `_save_unsaved`, after its copy
        if not fired and family == Job.FAMILY \
                and threading.current_thread() is threading.main_thread():
            fired.append(1)
            threading.Thread(target=job_end, daemon=True).start()
            deadline = time.monotonic() + 1.0  # the commit lands first if it can
            while (Job.FAMILY, b"job-1") in cat._unsaved and time.monotonic() < deadline:
                time.sleep(0.01)
        return real(family)

    cat._handle = handle  # type: ignore[method-assign]
    cat.put(Meta("probe", 1))  # a write that succeeds: the kept row goes with it
    cat._handle = real  # type: ignore[method-assign]
    assert fired and done.wait(30)
    job = cat.get(Job, "job-1")
    assert job is not None and job.status == "completed"
    assert not cat._unsaved
    cat.close()
    again = Catalog(tmp_path / "cat")
    job = again.get(Job, "job-1")
    assert job is not None and job.status == "completed"
    again.close()


def test_what_is_kept_in_memory_is_written_at_close(tmp_path: Path) -> None:
    """A BACKUP answered `completed` while the disk was full; space back, no
    write came before a clean stop: its row was never written, and the next
    start called the job interrupted."""
    cat = Catalog(tmp_path / "cat")
    kept = Job(job_id="job-2", job_type="backup", status="completed")
    with cat._lock:
        cat._unsaved[(Job.FAMILY, b"job-2")] = kept.dumps()
    cat.close()
    again = Catalog(tmp_path / "cat")
    job = again.get(Job, "job-2")
    assert job is not None and job.status == "completed"
    again.close()
