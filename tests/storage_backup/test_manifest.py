"""Manifests: sealed, atomic, and any damage is reported as BACKUP_INVALID."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from catalog.errors import AlreadyExists, BackupInvalid, InvalidArgument, NotFound
from storage.backup import Repository
from storage.backup import atomic as atomic_module
from storage.backup.manifest import canonical

from .conftest import MakeFile, Source, backup_doc, manifest_doc, table_doc, tmp_files


def manifest_file(repo: Repository, backup_id: str) -> Path:
    return Path(repo.target.base) / "manifests" / f"{backup_id}.json"


def backed_up(repo: Repository, make_file: MakeFile, backup_id: str = "bk-1") -> list[Source]:
    sources = [make_file(size=1000), make_file(size=2000)]
    for s in sources:
        repo.put_file(s.path)
    repo.write_manifest(manifest_doc(backup_id, sources))
    return sources


def encode(doc: dict[str, Any]) -> bytes:
    """The stored bytes of a format-1 manifest without features."""
    return canonical(doc) + b"\n"


def reseal(doc: dict[str, Any]) -> bytes:
    """Bytes of a manifest with a valid checksum, whatever its content."""
    body = {k: v for k, v in doc.items() if k != "manifest_sha256"}
    return encode({**body, "manifest_sha256": hashlib.sha256(canonical(body)).hexdigest()})


def test_round_trip_and_derived_fields(repo: Repository, make_file: MakeFile) -> None:
    sources = [make_file(size=1000), make_file(size=2000)]
    for s in sources:
        repo.put_file(s.path)
    doc = manifest_doc("bk-1", sources)
    doc["totals"] = {"bytes_written": 3000}
    written = repo.write_manifest(doc)
    read = repo.read_manifest("bk-1")
    assert read == written
    assert read["format_version"] == 1 and read["format"] == "cairn-backup"
    assert read["features"] == [] and read["encrypted"] is False and read["label"] == "nightly"
    assert read["tables"] == doc["tables"]  # opaque table content survives untouched
    assert read["objects"] == sorted(
        ({"oid": s.sha256, "size": s.size} for s in sources), key=lambda o: str(o["oid"])
    )
    assert read["totals"] == {
        "tables": 1,
        "files": 2,
        "bytes": 3000,
        "objects": 2,
        "object_bytes": 3000,
        "rows": 20,
        "bytes_written": 3000,
    }
    assert read["created_at"].endswith("Z") and len(read["manifest_sha256"]) == 64
    assert manifest_file(repo, "bk-1").read_bytes() == encode(read)
    assert tmp_files(repo) == []


def test_shared_files_counted_once_and_objects_no_file_uses_refused(
    repo: Repository, make_file: MakeFile
) -> None:
    a, extra = make_file(size=10), make_file(size=20)
    repo.put_file(a.path)
    repo.put_file(extra.path)
    # The same file in two tables (one table never lists a file twice).
    m = repo.write_manifest(backup_doc("bk-1", [table_doc("t1", [a]), table_doc("t2", [a])]))
    assert [o["oid"] for o in m["objects"]] == [a.sha256]
    assert m["totals"]["files"] == 2 and m["totals"]["bytes"] == 20
    assert m["totals"]["objects"] == 1 and m["totals"]["object_bytes"] == 10
    # An object no file uses would be checked by VERIFY and never read by RESTORE.
    doc = backup_doc("bk-2", [table_doc("t1", [a])])
    doc["objects"] = [{"oid": extra.sha256, "size": extra.size}]
    with pytest.raises(InvalidArgument, match=f"object {extra.sha256} is used by no file"):
        repo.write_manifest(doc)
    assert not manifest_file(repo, "bk-2").exists()


def test_manifest_for_missing_object_is_refused(repo: Repository, make_file: MakeFile) -> None:
    present, absent = make_file(size=10), make_file(size=10)
    repo.put_file(present.path)
    with pytest.raises(BackupInvalid, match=f"object {absent.sha256} is missing"):
        repo.write_manifest(manifest_doc("bk-1", [present, absent]))
    assert not manifest_file(repo, "bk-1").exists()


def test_duplicate_backup_id(repo: Repository, make_file: MakeFile) -> None:
    sources = backed_up(repo, make_file)
    with pytest.raises(AlreadyExists):
        repo.write_manifest(manifest_doc("bk-1", sources))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"backup_id": "../evil"}, "invalid backup id"),
        ({"snapshot_at": None}, "snapshot_at"),
        ({"namespace": ""}, "namespace"),
        ({"label": 5}, "label"),
        ({"tables": {"a": 1}}, "tables"),
        ({"tables": [{"files": [{"oid": "xyz", "size": 1}]}]}, "oid and a size"),
        ({"tables": [{"files": [{"oid": "a" * 64, "size": -1}]}]}, "oid and a size"),
        ({"format_version": 2}, "format_version"),
        ({"label": float("nan")}, "JSON"),
    ],
)
def test_malformed_manifest_is_not_written(
    repo: Repository, make_file: MakeFile, change: dict[str, Any], match: str
) -> None:
    doc = manifest_doc("bk-1", [])
    doc.update(change)
    with pytest.raises(InvalidArgument, match=match):
        repo.write_manifest(doc)


def test_crash_before_rename_leaves_no_backup(
    repo: Repository, make_file: MakeFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = [make_file(size=10)]
    repo.put_file(sources[0].path)

    def crash(*args: Any, **kwargs: Any) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(atomic_module, "publish", crash)
    with pytest.raises(InvalidArgument, match="cannot write to backup target"):
        repo.write_manifest(manifest_doc("bk-1", sources))
    monkeypatch.undo()
    with pytest.raises(NotFound):
        repo.read_manifest("bk-1")
    assert repo.list_manifests() == []
    assert tmp_files(repo) == []


def test_missing_and_malformed_ids(repo: Repository, make_file: MakeFile) -> None:
    backed_up(repo, make_file)
    with pytest.raises(NotFound, match="backup 'bk-nope' does not exist"):
        repo.read_manifest("bk-nope")
    for bad in ("../bk-1", "bk/1", "", ".hidden", "x" * 200):
        with pytest.raises(InvalidArgument, match="invalid backup id"):
            repo.read_manifest(bad)


# --- damage --------------------------------------------------------------------


def test_truncated_manifest(repo: Repository, make_file: MakeFile) -> None:
    backed_up(repo, make_file)
    path = manifest_file(repo, "bk-1")
    data = path.read_bytes()
    for cut in (0, 1, len(data) // 2, len(data) - 2):
        path.write_bytes(data[:cut])
        with pytest.raises(BackupInvalid, match="manifest of backup 'bk-1'"):
            repo.read_manifest("bk-1")


@pytest.mark.parametrize("content", [b"not json at all", b"\xff\xfe\x00", b"[1, 2]", b"{}", b"{{{"])
def test_non_json_manifest(repo: Repository, make_file: MakeFile, content: bytes) -> None:
    backed_up(repo, make_file)
    manifest_file(repo, "bk-1").write_bytes(content)
    with pytest.raises(BackupInvalid, match="manifest of backup 'bk-1'"):
        repo.read_manifest("bk-1")


@pytest.mark.parametrize("mask", [0x01, 0x20, 0x80])
def test_any_flipped_byte_is_detected(repo: Repository, make_file: MakeFile, mask: int) -> None:
    backed_up(repo, make_file)
    path = manifest_file(repo, "bk-1")
    good = path.read_bytes()
    for offset in range(len(good)):
        bad = bytearray(good)
        bad[offset] ^= mask
        path.write_bytes(bytes(bad))
        with pytest.raises(BackupInvalid):
            repo.read_manifest("bk-1")
    path.write_bytes(good)
    assert repo.read_manifest("bk-1")["backup_id"] == "bk-1"


def test_checksum_mismatch_message(repo: Repository, make_file: MakeFile) -> None:
    backed_up(repo, make_file)
    path = manifest_file(repo, "bk-1")
    doc = json.loads(path.read_bytes())
    doc["namespace"] = "other"
    path.write_bytes(encode(doc))
    with pytest.raises(BackupInvalid, match="'bk-1' is corrupt: manifest_sha256 mismatch"):
        repo.read_manifest("bk-1")


def test_unknown_format_version(repo: Repository, make_file: MakeFile) -> None:
    backed_up(repo, make_file)
    path = manifest_file(repo, "bk-1")
    doc = json.loads(path.read_bytes())
    for version in (2, 0, "1", None):
        path.write_bytes(reseal({**doc, "format_version": version}))
        with pytest.raises(BackupInvalid, match="unknown format_version"):
            repo.read_manifest("bk-1")


def test_unknown_feature_and_renamed_manifest(repo: Repository, make_file: MakeFile) -> None:
    backed_up(repo, make_file)
    path = manifest_file(repo, "bk-1")
    doc = json.loads(path.read_bytes())
    path.write_bytes(reseal({**doc, "features": ["zstd-v9"]}))
    with pytest.raises(BackupInvalid, match="zstd-v9"):
        repo.read_manifest("bk-1")
    path.write_bytes(encode(doc))
    manifest_file(repo, "bk-2").write_bytes(encode(doc))
    with pytest.raises(BackupInvalid, match="names backup 'bk-1'"):
        repo.read_manifest("bk-2")


def test_pretty_printed_manifest_is_not_canonical(repo: Repository, make_file: MakeFile) -> None:
    backed_up(repo, make_file)
    path = manifest_file(repo, "bk-1")
    path.write_text(json.dumps(json.loads(path.read_bytes()), indent=2))
    with pytest.raises(BackupInvalid, match="canonical"):
        repo.read_manifest("bk-1")


# --- listing -------------------------------------------------------------------


def test_list_manifests_newest_first_with_damaged_ones_flagged(
    repo: Repository, make_file: MakeFile
) -> None:
    src = make_file(size=10)
    repo.put_file(src.path)
    for backup_id, created, namespace in [
        ("bk-a", "2026-01-02T00:00:00.000Z", "app"),
        ("bk-b", "2026-01-03T00:00:00.000Z", "crm"),
        ("bk-c", "2026-01-01T00:00:00.000Z", "app"),
    ]:
        doc = manifest_doc(backup_id, [src], namespace=namespace)
        doc["created_at"] = created
        repo.write_manifest(doc)
    manifest_file(repo, "bk-broken").write_bytes(b"{trunc")
    (Path(repo.target.base) / "manifests" / "README").write_text("ignored")

    listing = repo.list_manifests()
    assert [m["backup_id"] for m in listing] == ["bk-b", "bk-a", "bk-c", "bk-broken"]
    assert "error" not in listing[0]
    assert listing[-1]["error"].startswith("manifest of backup 'bk-broken' is truncated")
    assert [m["backup_id"] for m in repo.list_manifests(namespace="app")] == ["bk-a", "bk-c"]


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_a_time_out_of_range_in_utc_is_damage(repo: Repository, make_file: MakeFile,
                                              stamp: str) -> None:
    """A valid ISO-8601 time whose UTC is before year 1 or after 9999: the
    listing's sort raised OverflowError (SHOW BACKUPS IN, RESTORE without a
    backup id, a BACKUP's keep_last: 500, the job `failed` with its backup
    written), while VERIFY called the backup valid. Now it is damage: listed
    as such, the other backups in order, and VERIFY and RESTORE agree."""
    backed_up(repo, make_file, "bk-1")
    backed_up(repo, make_file, "bk-2")
    doc = json.loads(manifest_file(repo, "bk-1").read_bytes())
    doc["created_at"] = stamp
    manifest_file(repo, "bk-1").write_bytes(reseal(doc))
    listing = repo.list_manifests()
    assert [m["backup_id"] for m in listing] == ["bk-2", "bk-1"]
    assert "out of range in UTC" in listing[1]["error"]
    with pytest.raises(BackupInvalid, match="out of range in UTC"):
        repo.read_manifest("bk-1")
    assert not repo.verify("bk-1", contents=False).is_valid


@pytest.mark.parametrize("stamp", ["2026-12-06+05:30", "2026-12-06_05:30:00Z",
                                   "2026-12-06T05:30:00Z\x00", "2026-12-06T05:30:00+00:00:30"])
def test_a_time_as_of_would_refuse_is_damage(repo: Repository, make_file: MakeFile,
                                             stamp: str) -> None:
    """A manifest's times are read in the one form RESTORE's as_of takes
    (timetext.instant): `fromisoformat` read '2026-12-06+05:30' as 05:30 UTC,
    and a time the decoder let through was then refused as if the user's."""
    backed_up(repo, make_file, "bk-1")
    doc = json.loads(manifest_file(repo, "bk-1").read_bytes())
    doc["snapshot_at"] = stamp
    manifest_file(repo, "bk-1").write_bytes(reseal(doc))
    assert "not an ISO-8601 timestamp" in repo.list_manifests()[0]["error"]
    with pytest.raises(BackupInvalid, match="snapshot_at"):
        repo.read_manifest("bk-1")


def test_delete_manifest(repo: Repository, make_file: MakeFile) -> None:
    backed_up(repo, make_file)
    repo.delete_manifest("bk-1")
    assert repo.list_manifests() == []
    with pytest.raises(NotFound):
        repo.delete_manifest("bk-1")


# --- config.json ---------------------------------------------------------------


def test_init_writes_config_once(repo: Repository) -> None:
    first = repo.init()
    assert first["format"] == "cairn-backup" and first["format_version"] == 1
    path = Path(repo.target.base) / "config.json"
    before = path.read_bytes()
    assert Repository(repo.target).init() == json.loads(before)
    assert path.read_bytes() == before


def test_a_new_target_names_the_feature_older_cairns_lack(
        repo: Repository, make_file: MakeFile) -> None:
    """Manifests name the data directory that wrote the namespace
    (namespace_record.server), which a Cairn from before reads as damage (and
    an archive's windows as gone): a target made now says so in config.json,
    so such a Cairn refuses it by the feature's name. A target made before
    (no features) is read and written as it is, its config.json unchanged."""
    assert repo.init()["features"] == ["namespace-server"]
    path = Path(repo.target.base) / "config.json"
    older = {**json.loads(path.read_bytes()), "features": []}
    path.write_text(json.dumps(older))
    backed_up(repo, make_file)
    fresh = Repository(repo.target)
    assert fresh.read_manifest("bk-1")["backup_id"] == "bk-1"
    assert json.loads(path.read_bytes()) == older


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"{broken", "is corrupt"),
        (b'{"format": "restic", "format_version": 1}', "not a Cairn backup repository"),
        (b'{"format": "cairn-backup", "format_version": 7}', "unknown format_version 7"),
        (b'{"format": "cairn-backup", "format_version": 1, "features": ["x"]}', "features"),
    ],
)
def test_bad_config(repo: Repository, make_file: MakeFile, content: bytes, match: str) -> None:
    backed_up(repo, make_file)
    (Path(repo.target.base) / "config.json").write_bytes(content)
    fresh = Repository(repo.target)
    with pytest.raises(BackupInvalid, match=match):
        fresh.check_config()
    with pytest.raises(BackupInvalid, match=match):
        fresh.read_manifest("bk-1")
    with pytest.raises(BackupInvalid, match=match):
        fresh.put_bytes(b"x")


def test_a_manifest_read_again_is_a_new_document_and_still_checked(
    repo: Repository, make_file: MakeFile
) -> None:
    """The same bytes are checked once (envelope.unpack_checked): later reads
    get a document of their own, and bytes that changed are checked again."""
    backed_up(repo, make_file)
    first = repo.read_manifest("bk-1")
    first["tables"].clear()
    first["backup_id"] = "changed"
    second = repo.read_manifest("bk-1")
    assert second["backup_id"] == "bk-1" and second["tables"]
    assert second == repo.list_manifests()[0] == repo.read_manifest("bk-1")
    path = manifest_file(repo, "bk-1")
    good = path.read_bytes()
    path.write_bytes(good.replace(b'"bk-1"', b'"bk-2"', 1))
    with pytest.raises(BackupInvalid):
        repo.read_manifest("bk-1")
    path.write_bytes(good)
    assert repo.read_manifest("bk-1") == second


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_a_manifest_just_written_is_read_back_unparsed_as_a_fresh_read_gives(
        root: Path, make_file: MakeFile, monkeypatch: pytest.MonkeyPatch,
        compression: str) -> None:
    """A repository keeps what the manifest it has just written unpacks to
    (envelope.remember): keep_last's listing right after a BACKUP parses and
    checks nothing again, and gets exactly what unpacking the stored bytes
    gives. Other bytes under that name are read and checked."""
    from storage.backup import envelope, resolve_target

    repo = Repository(resolve_target("main", [str(root)], {}), compression=compression)
    sources = [make_file(size=1000), make_file(size=2000)]
    for s in sources:
        repo.put_file(s.path)
    written = repo.write_manifest(manifest_doc("bk-1", sources))
    data = manifest_file(repo, "bk-1").read_bytes()
    fresh = envelope.unpack(data, "bk-1", lambda _: None)
    assert ("zstd" in fresh["features"]) == (compression == "zstd")  # a body, compressed

    def parsed(*_: Any, **__: Any) -> None:
        raise AssertionError("parsed again")

    monkeypatch.setattr(envelope, "unpack", parsed)
    assert repo.read_manifest("bk-1") == fresh == written
    assert repo.list_manifests() == [fresh]
    manifest_file(repo, "bk-1").write_bytes(data.replace(b'"bk-1"', b'"bk-2"', 1))
    with pytest.raises(AssertionError, match="parsed again"):
        repo.read_manifest("bk-1")


def test_a_name_with_a_trailing_newline_is_no_backup_id_nor_object_id(
        repo: Repository, make_file: MakeFile) -> None:
    """`^…$` let a trailing newline through (`$` matches before one): a file
    planted as `manifests/bk-1\n.json` was listed as backup 'bk-1\n', its
    name breaking the log line that reported it damaged."""
    from storage.backup.layout import check_backup_id, check_oid, is_backup_id, is_oid

    backed_up(repo, make_file)
    planted = manifest_file(repo, "bk-2\n")
    planted.write_bytes(manifest_file(repo, "bk-1").read_bytes())
    assert repo.manifest_ids() == ["bk-1"]
    assert [m["backup_id"] for m in repo.list_manifests()] == ["bk-1"]
    assert not is_backup_id("bk-2\n") and is_backup_id("bk-2")
    oid = "a" * 64
    assert is_oid(oid) and not is_oid(oid + "\n")
    with pytest.raises(InvalidArgument):
        check_oid(oid + "\n")
    with pytest.raises(InvalidArgument):
        check_backup_id("bk-2\n")
