"""The typed decoder for what is read back from a target besides manifests:
config.json, key files, locks and prune markers. Every crafted variant is
refused as BACKUP_INVALID naming the file and the field; nothing is guessed."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from catalog.errors import BackupInvalid
from storage.backup import PassphraseError, Repository
from storage.backup.layout import utc_now
from storage.backup.prunes import settle

from .conftest import MakeFile
from .test_encryption import PASS, sources, store, target
from .test_manifest import backed_up

GOOD_CONFIG = {"format": "cairn-backup", "format_version": 1, "features": [],
               "created_at": "2026-11-23T08:50:00.123Z"}


@pytest.mark.parametrize(("change", "field"), [
    ({"features": "zstd"}, "$.features"),
    ({"features": [1]}, "$.features[0]"),
    ({"created_at": 5}, "$.created_at"),
    ({"created_at": "yesterday"}, "$.created_at"),
    ({"format_version": True}, "format_version"),
    ({"extra": 1}, "extra"),
    ({"created_at": None}, "$.created_at"),
])
def test_config_fields(repo: Repository, make_file: MakeFile, change: dict[str, Any],
                       field: str) -> None:
    backed_up(repo, make_file)
    doc = {**GOOD_CONFIG, **change}
    (Path(repo.target.base) / "config.json").write_text(json.dumps(doc))
    with pytest.raises(BackupInvalid, match="config.json") as info:
        Repository(repo.target).read_manifest("bk-1")
    assert field in info.value.message


def test_config_missing_beside_manifests_is_damage(repo: Repository, make_file: MakeFile) -> None:
    backed_up(repo, make_file)
    (Path(repo.target.base) / "config.json").unlink()
    fresh = Repository(repo.target)
    for call in (fresh.list_manifests, lambda: fresh.read_manifest("bk-1"),
                 lambda: fresh.put_bytes(b"x"), fresh.prune):
        with pytest.raises(BackupInvalid, match="has no config.json but holds manifests/"):
            call()
    report = fresh.verify("bk-1", contents=False)
    assert not report.is_valid and "has no config.json" in report.errors[0]
    assert not (Path(repo.target.base) / "config.json").exists()  # nothing rewritten


def test_empty_target_is_empty(repo: Repository) -> None:
    base = Path(repo.target.base)
    (base / "tmp").mkdir(parents=True)
    (base / "notes.txt").write_text("not Cairn's")
    assert repo.check_config() is None and repo.list_manifests() == []


def key_file(root: Path) -> Path:
    (key,) = (root / "enc" / "keys").iterdir()
    return key


@pytest.mark.parametrize(("field", "value"), [
    ("salt", "zz"), ("n", "32768"), ("n", 3), ("r", 0), ("p", 17), ("key_check", None),
    ("cipher", "rot13"), ("extra", 1),
])
def test_key_file_fields(root: Path, make_file: MakeFile, field: str, value: Any) -> None:
    store(Repository(target(root), passphrase=PASS), "bk-1", sources(make_file))
    path = key_file(root)
    doc = json.loads(path.read_text())
    doc[field] = value
    path.write_text(json.dumps(doc))
    with pytest.raises(BackupInvalid) as info:
        Repository(target(root), passphrase=PASS).read_manifest("bk-1")
    assert not isinstance(info.value, PassphraseError)
    assert "key file" in info.value.message and (field in info.value.message
                                                 or "scrypt" in info.value.message)


def test_flipped_salt_is_damage_not_a_wrong_passphrase(root: Path, make_file: MakeFile) -> None:
    store(Repository(target(root), passphrase=PASS), "bk-1", sources(make_file))
    path = key_file(root)
    doc = json.loads(path.read_text())
    doc["salt"] = ("0" if doc["salt"][0] != "0" else "1") + doc["salt"][1:]
    path.write_text(json.dumps(doc))
    repo = Repository(target(root), passphrase=PASS)
    with pytest.raises(BackupInvalid, match="file_sha256 mismatch") as info:
        repo.read_manifest("bk-1")
    assert not isinstance(info.value, PassphraseError)
    report = repo.verify("bk-1", contents=False)
    assert not report.is_valid and "file_sha256 mismatch" in report.errors[0]


@pytest.mark.parametrize(("change", "field"), [
    ({"oids": ["x"]}, "$.oids[0]"),
    ({"oids": "ab"}, "$.oids"),
    ({"pid": -1}, "$.pid"),
    ({"pid": 1 << 40}, "$.pid"),
    ({"backup_id": "bk-other"}, "names backup"),
    ({"host": None}, "$.host"),
    ({"extra": []}, "extra"),
])
def test_lock_fields(repo: Repository, make_file: MakeFile, change: dict[str, Any],
                     field: str) -> None:
    backed_up(repo, make_file)
    locks = Path(repo.target.base) / "locks"
    locks.mkdir()
    doc = {"backup_id": "bk-run", "created_at": "2026-11-23T08:50:00.123Z", "host": "h",
           "pid": 5, "oids": [], **change}
    (locks / "bk-run.json").write_text(json.dumps(doc))
    with pytest.raises(BackupInvalid, match="lock file 'locks/bk-run.json'") as info:
        repo.prune()
    assert field in info.value.message
    assert repo.list_objects()  # nothing deleted


@pytest.mark.parametrize("doc", [
    {"host": "h", "pid": "1", "started_at": "2026-11-23T08:50:00.123Z"},
    {"host": "h", "pid": 1},
    [1, 2],
    "not json",
])
def test_prune_marker_fields(repo: Repository, make_file: MakeFile, doc: Any) -> None:
    backed_up(repo, make_file)
    prunes = Path(repo.target.base) / "prunes"
    prunes.mkdir()
    name = prunes / "0123456789abcdef.json"
    name.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(BackupInvalid, match="prune marker 'prunes/0123456789abcdef.json'"):
        settle(repo.target)
    with pytest.raises(BackupInvalid, match="prune marker"):
        repo.prune()
    assert name.exists() and repo.list_objects()


def test_foreign_marker_names_are_left_alone(repo: Repository, make_file: MakeFile) -> None:
    backed_up(repo, make_file)
    prunes = Path(repo.target.base) / "prunes"
    prunes.mkdir()
    dead = {"host": socket.gethostname(), "pid": 2**31 - 1,
            "started_at": "2026-11-23T08:50:00.123Z"}
    (prunes / "mine.json").write_text(json.dumps(dead))
    (prunes / "fedcba9876543210.json").write_text(json.dumps(dead))
    settle(repo.target)
    assert sorted(os.listdir(prunes)) == ["mine.json"]  # Cairn's leftover went, the other stays


def test_a_zombie_prunes_marker_is_a_dead_one(repo: Repository, make_file: MakeFile) -> None:
    """A job process killed with its server is a zombie until reaped: its
    marker is left over, not a prune to wait for (settle would wait for it)."""
    import subprocess
    import time

    backed_up(repo, make_file)
    prunes = Path(repo.target.base) / "prunes"
    prunes.mkdir()
    child = subprocess.Popen(["true"])  # ends at once, unreaped: a zombie
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with open(f"/proc/{child.pid}/stat", "rb") as f:
                if f.read().rsplit(b") ", 1)[1][:1] == b"Z":
                    break
            time.sleep(0.01)
        marker = {"host": socket.gethostname(), "pid": child.pid,
                  "started_at": "2026-11-23T08:50:00.123Z"}
        (prunes / "0123456789abcdef.json").write_text(json.dumps(marker))
        started = time.monotonic()
        settle(repo.target)
        assert time.monotonic() - started < 2 and os.listdir(prunes) == []
    finally:
        child.wait()


@pytest.mark.parametrize("ahead", [3600, 80 * 365 * 86400])  # an hour; the year 2100
def test_a_marker_dated_in_the_future_is_not_waited_for(repo: Repository, make_file: MakeFile,
                                                         ahead: int) -> None:
    """A marker of a live process of this host (pid 1) whose file is dated
    far in the future was never stale: every BACKUP, RESTORE and DROP BACKUP
    of its target waited for it for ever, holding a job slot each. No prune
    writes one so: it is a leftover or planted, removed like a stale one; a
    marker written now is still waited for."""
    import threading
    import time

    backed_up(repo, make_file)
    prunes = Path(repo.target.base) / "prunes"
    prunes.mkdir()
    marker = prunes / "0123456789abcdef.json"
    marker.write_text(json.dumps({"host": socket.gethostname(), "pid": 1,
                                  "started_at": "2026-11-23T08:50:00.123Z"}))
    stamp = time.time() + ahead
    os.utime(marker, (stamp, stamp))
    started = time.monotonic()
    settle(repo.target)
    assert time.monotonic() - started < 2 and os.listdir(prunes) == []
    # Dated now (within the stale window, either way): a prune to wait for
    # (written after its process started: an older one names a reused pid).
    marker.write_text(json.dumps({"host": socket.gethostname(), "pid": 1,
                                  "started_at": utc_now()}))
    done = threading.Event()
    waiter = threading.Thread(target=lambda: (settle(repo.target), done.set()))
    waiter.start()
    assert not done.wait(0.5)
    marker.unlink()
    assert done.wait(5)
    waiter.join()


def test_a_marker_of_a_live_pid_not_rewritten_is_not_waited_for(
        repo: Repository, make_file: MakeFile) -> None:
    """A marker planted in the target naming this host and pid 1 (alive, started
    before it) was "live at any age": every BACKUP, RESTORE and archive base of
    the target waited for it for ever, each holding a job slot. A running prune
    rewrites its marker every minute; one not rewritten for STALE_SECONDS is
    left over, whatever its pid."""
    import threading
    import time

    from storage.backup.prunes import STALE_SECONDS

    backed_up(repo, make_file)
    prunes = Path(repo.target.base) / "prunes"
    prunes.mkdir()
    marker = prunes / "0123456789abcdef.json"
    marker.write_text(json.dumps({"host": socket.gethostname(), "pid": 1,
                                  "started_at": utc_now()}))
    stamp = time.time() - STALE_SECONDS - 5
    os.utime(marker, (stamp, stamp))
    done = threading.Event()
    threading.Thread(target=lambda: (settle(repo.target), done.set()), daemon=True).start()
    try:
        assert done.wait(5) and os.listdir(prunes) == []
    finally:
        marker.unlink(missing_ok=True)  # a waiter left by the code before ends
