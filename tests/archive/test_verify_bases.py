"""VERIFY ARCHIVE rereads the objects of every window's base backups, as
VERIFY BACKUP does, since a RESTORE as_of copies them: it calls a window
invalid exactly when those restores refuse its base, and names what they name.

Before, VERIFY ARCHIVE read the bases' manifests but not their objects: with
the base's one object deleted or cut short it said valid, errors [], while
VERIFY BACKUP of the base was invalid and every RESTORE as_of in the window
was 422 BACKUP_INVALID. The restore also described a truncated zstd object by
what its cut stream decoded to ("size 0, expected 2329", the content's size)
rather than by the object (1082 bytes stored of 1092)."""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from server.config import Config
from storage import jobproc
from storage.backup import Repository, resolve_target
from storage.backup.object_reads import ObjectReads
from storage.backup.schema import load, to_doc
from storage.backup.verify import manifest_digest, verify_bases
from storage.jobframes import send_framed
from tests.helpers import ok, rows, sql

from .test_archiving import FAST, wait_shipped


async def archived_with_one_object(client: Any, cfg: Config) -> tuple[str, str, Path]:
    """app.t flushed (its base backup holds one object), archived, a row
    shipped, archiving stopped: the window's end, its base and the object."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT);"
                     "INSERT INTO app.t VALUES (1, 'a'), (2, 'b'); FLUSH TABLE app.t")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "INSERT INTO app.t VALUES (3, 'c')")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    [point] = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    [obj] = (Path(cfg.backup_roots[0]) / "arch" / "objects").glob("*/*")
    return point["end_time"], point["base_backup_id"], obj


def remove(obj: Path) -> None:
    obj.unlink()


def truncate(obj: Path) -> None:
    obj.write_bytes(obj.read_bytes()[:-10])


def flip(obj: Path) -> None:
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 0x40
    obj.write_bytes(bytes(data))


async def test_an_intact_base_verifies(client: Any, cairn_config: Config) -> None:
    end, _, _ = await archived_with_one_object(client, cairn_config)
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is True and report["errors"] == [], report
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{end}')")
    assert len(await rows(client, "SELECT * FROM r.t")) == 3


@pytest.mark.parametrize("damage", [remove, truncate, flip])
async def test_a_damaged_base_object_is_what_verify_and_restore_refuse(
        client: Any, cairn_config: Config, damage: Any) -> None:
    end, base, obj = await archived_with_one_object(client, cairn_config)
    size = obj.stat().st_size
    damage(obj)
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is False, report
    backup = (await rows(client, f"VERIFY BACKUP '{base}' IN 'arch'"))[0]
    assert backup["is_valid"] is False
    # VERIFY ARCHIVE says what VERIFY BACKUP says of the base, naming the base
    assert report["errors"] == [f"base backup {base}: {e}" for e in backup["errors"]], report
    status, body = await sql(client, f"RESTORE DATABASE app FROM 'arch' AS r "
                                     f"WITH (as_of = '{end}')")
    assert status == 422 and body["error"]["code"] == "BACKUP_INVALID", body
    message = body["error"]["message"]
    assert f"base backup {base}: {message}" in report["errors"], (message, report)
    if damage is truncate:  # the object as read: its size, and the size it should have
        assert message == f"object {obj.name} is corrupt: size {size - 10}, expected {size}"
    assert not await rows(client, "SELECT * FROM system.namespaces WHERE namespace = 'r'")


async def archived_with_shared_objects(aiohttp_client: Any, cfg: Config, n: int) -> Any:
    """An archive of app.t with `n` more base backups, a flush before each: the
    k-th base holds the k files flushed so far, the objects of the ones before
    it shared with the earlier bases. The VERIFY runs in the server's process
    (job_process "off"), where the test counts the object reads."""
    from server.app import create_app

    cfg.jobs.job_process = "off"
    client = await aiohttp_client(create_app(cfg))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    for i in range(n):
        await ok(client, f"INSERT INTO app.t VALUES ({i}, 'v{i}'); FLUSH TABLE app.t")
        await ok(client, "BACKUP DATABASE app TO 'arch'")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    return client


async def test_an_object_the_bases_share_is_read_once(
        aiohttp_client: Any, cairn_config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every base's objects were reread, each base on its own: N daily backups
    into the archive's target read ~N^2/2 objects (120 bases of one new file
    each: 60 s, 7,260 reads, for 240 rows). Now each object is read once, its
    findings repeated for every base that uses it with the same files."""
    client = await archived_with_shared_objects(aiohttp_client, cairn_config, 6)
    reads: Counter[str] = Counter()
    real = ObjectReads.check

    def counted(self: ObjectReads, oid: str, *args: Any, **kw: Any) -> Any:
        reads[oid] += 1
        return real(self, oid, *args, **kw)

    monkeypatch.setattr(ObjectReads, "check", counted)
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is True and report["errors"] == [], report
    objects = list((Path(cairn_config.backup_roots[0]) / "arch" / "objects").glob("*/*"))
    assert len(reads) == len(objects) == 6, (reads, objects)
    assert set(reads.values()) == {1}, reads  # before: the first flush's object 7 times


async def test_a_damaged_shared_object_is_named_for_every_base(
        aiohttp_client: Any, cairn_config: Config) -> None:
    client = await archived_with_shared_objects(aiohttp_client, cairn_config, 3)
    backups = {b["backup_id"]: b for b in await rows(client, "SHOW BACKUPS IN 'arch'")}
    assert len(backups) == 4  # START ARCHIVING's base (no file) and three more
    first = min(backups.values(), key=lambda b: b["snapshot_at"])
    users = [b for b in backups.values() if b is not first]  # every one holds the first file
    objects = sorted((Path(cairn_config.backup_roots[0]) / "arch" / "objects").glob("*/*"),
                     key=lambda p: p.stat().st_mtime_ns)
    flip(objects[0])  # the first flush's file: in all three bases
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is False, report
    want = []
    for b in sorted(users, key=lambda b: b["backup_id"]):
        verified = (await rows(client, f"VERIFY BACKUP '{b['backup_id']}' IN 'arch'"))[0]
        assert verified["is_valid"] is False, verified
        want += [f"base backup {b['backup_id']}: {e}" for e in verified["errors"]]
    assert sorted(report["errors"]) == sorted(want), (report["errors"], want)


async def test_the_job_process_reads_the_bases_manifests_itself(
        client: Any, cairn_config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    """VERIFY ARCHIVE's server sent every base's whole manifest to the job
    process in one pickle: ~1 s of its GIL held (no statement ran) for a
    32 MiB manifest, and all of them in that process at once. Now ids and
    digests; the job process reads each again, and one re-sealed between
    the two reads is an error of its base, not a check of another manifest."""
    tables = ";".join(f"CREATE TABLE app.t{i} (id BIGINT PRIMARY KEY, v TEXT)" for i in range(40))
    await ok(client, f"CREATE NAMESPACE app; {tables}; INSERT INTO app.t0 VALUES (1, 'a')")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "INSERT INTO app.t0 VALUES (2, 'b')")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    sent: list[int] = []

    def spy(conn: Any, msg: Any) -> None:
        if msg[0] == "call" and msg[1] is verify_bases:
            sent.append(len(pickle.dumps(msg[2])))
        send_framed(conn, msg)

    monkeypatch.setattr(jobproc, "send_framed", spy)
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is True, report
    [base] = [w["base_backup_id"] for w in report["windows"]]
    root = cairn_config.backup.roots[0]
    repo = Repository(resolve_target(str(Path(root) / "arch"), [root], {}))
    manifest = len(pickle.dumps(repo.read_manifest(base)))
    assert len(sent) == 1 and sent[0] < manifest / 2, (sent, manifest)
    # Read again and not the manifest the server checked: an error of its base.
    work = SimpleNamespace(cancelled=False, progress=lambda **_: None)
    assert verify_bases(repo, [(base, "0" * 64)], work, 0, (0, 0), []) == [
        ["its manifest changed while the archive was verified"]]
    # A base with a file to read first (a crash after other files:
    # storage/jobblame.py) is checked first; its findings stay in its place.
    digest = manifest_digest(to_doc(load(repo.read_manifest(base))))
    found = verify_bases(repo, [("bk-gone", "0" * 64), (base, digest)], work, 0, (0, 0), [],
                         first=(f"{base}/{'1' * 64}",))
    assert len(found) == 2 and "bk-gone" in found[0][0] and found[1] == [], found
