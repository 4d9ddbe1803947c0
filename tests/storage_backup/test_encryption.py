"""Compressed and encrypted repositories: the same guarantees as format 1
(dedup, manifest last, verify, prune), plus what the key protects."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from catalog.errors import BackupInvalid, InvalidArgument
from storage.backup import PassphraseError, Repository, Target, crypto, resolve_target
from storage.backup.crypto import FRAME
from storage.backup.manifest import canonical

from .conftest import MakeFile, Source, backup_doc, stored_as, table_doc

PASS = "correct horse battery staple"
MODES = [("zstd", None), ("none", None), ("zstd", PASS), ("none", PASS)]


def target(root: Path, name: str = "enc") -> Target:
    return resolve_target(name, [str(root)], {})


def store(repo: Repository, backup_id: str, sources: list[Source]) -> dict[str, Any]:
    """What a backup does: lock, put with known sha256s, write the manifest."""
    with repo.lock(backup_id) as lock:
        lock.add([s.sha256 for s in sources])
        puts = [repo.put_file(s.path, sha256=s.sha256, size=s.size, lock=lock) for s in sources]
        # A table never lists one file twice: content seen again starts a second table.
        cut = next((i for i in range(len(sources)) if sources[i].sha256 in
                    {s.sha256 for s in sources[:i]}), len(sources))
        tables = [stored_as(table_doc("secret_table", sources[:cut]), puts[:cut])]
        if cut < len(sources):
            tables.append(stored_as(table_doc("more", sources[cut:], first_seq=1000), puts[cut:]))
        return repo.write_manifest(backup_doc(backup_id, tables))


def sources(make_file: MakeFile) -> list[Source]:
    return [make_file(size=FRAME + 10), make_file(data=b"compressible text " * 20_000),
            make_file(data=b"")]


def all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


@pytest.mark.parametrize(("compression", "passphrase"), MODES)
def test_round_trip_verify_and_dedup(
    root: Path, make_file: MakeFile, tmp_path: Path, compression: str, passphrase: str | None
) -> None:
    files = sources(make_file)
    repo = Repository(target(root), passphrase=passphrase, compression=compression)
    written = store(repo, "bk-1", files)
    encrypted = passphrase is not None
    assert written["encrypted"] is encrypted
    expected_features = {"zstd"} if compression == "zstd" else set()
    assert set(written["features"]) == expected_features | ({"aes-256-gcm"} if encrypted else set())
    objects = {o["oid"]: o for o in written["objects"]}
    text = files[1]
    (entry,) = [f for f in written["tables"][0]["files"] if f["size"] == text.size]
    stored = objects[entry["oid"]]["size"]
    assert (stored < text.size / 10) is (compression == "zstd")

    reader = Repository(target(root), passphrase=passphrase)
    assert reader.read_manifest("bk-1") == written
    assert reader.verify("bk-1", contents=False).is_valid
    for f, src in zip(written["tables"][0]["files"], files, strict=True):
        out = tmp_path / "out"
        reader.read_object_to(f["oid"], str(out), f["size"], sha256=f.get("sha256"))
        assert out.read_bytes() == src.data

    # A second backup of the same files: a stat each, nothing read or written.
    for src in files:
        os.unlink(src.path)
    again = Repository(target(root), passphrase=passphrase, compression=compression)
    second = store(again, "bk-2", files)
    assert {o["oid"] for o in second["objects"]} == set(objects)
    if encrypted:
        assert len(list((root / "enc" / "keys").iterdir())) == 1  # one key, one passphrase


def test_names_and_bytes_reveal_nothing(root: Path, make_file: MakeFile) -> None:
    files = sources(make_file)
    m = store(Repository(target(root), passphrase=PASS), "bk-1", files)
    everything = all_bytes(root)
    for src in files:
        assert src.sha256.encode() not in everything
        if src.size:
            assert src.data[:64] not in everything
    assert b"secret_table" not in everything and PASS.encode() not in everything
    assert {o["oid"] for o in m["objects"]}.isdisjoint(s.sha256 for s in files)
    assert PASS not in repr(Repository(target(root), passphrase=PASS))


def test_without_or_with_a_wrong_passphrase(root: Path, make_file: MakeFile) -> None:
    store(Repository(target(root), passphrase=PASS), "bk-1", sources(make_file))
    locked = Repository(target(root))
    (listed,) = locked.list_manifests()
    assert listed["encrypted"] is True and "tables" not in listed
    assert listed["totals"]["files"] == 3 and listed["namespace"] == "app"
    with pytest.raises(PassphraseError, match="give its encryption_passphrase"):
        locked.read_manifest("bk-1")
    with pytest.raises(PassphraseError, match="give its encryption_passphrase"):
        locked.verify("bk-1", contents=False)
    wrong = Repository(target(root), passphrase="not it")
    assert "tables" not in wrong.list_manifests()[0]
    with pytest.raises(PassphraseError, match="wrong encryption_passphrase"):
        wrong.read_manifest("bk-1")
    with pytest.raises(PassphraseError, match="wrong encryption_passphrase"):
        wrong.verify("bk-1", contents=False)
    # Dropping needs no key: the objects are listed in the public header.
    header = locked.read_manifest("bk-1", require_body=False)
    locked.delete_manifest("bk-1")
    assert locked.prune(candidates=[o["oid"] for o in header["objects"]]) > 0
    assert locked.list_objects() == {}
    with pytest.raises(InvalidArgument):
        Repository(target(root), passphrase="")


def test_scrypt_runs_once_a_key_and_passphrase_in_a_process(
    root: Path, make_file: MakeFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each statement opens a new Repository; a key its passphrase opened before
    is not derived again (~0.1 s of CPU), and a wrong passphrase still is, and
    is still refused, as is a key file whose salt changed."""
    runs: list[bytes] = []

    real = crypto.Scrypt

    class Counted:  # the real scrypt, counted
        def __init__(self, **kwargs: Any) -> None:
            self._kdf = real(**kwargs)

        def derive(self, key_material: bytes) -> bytes:
            runs.append(key_material)
            return self._kdf.derive(key_material)

    monkeypatch.setattr(crypto, "Scrypt", Counted)
    store(Repository(target(root), passphrase=PASS), "bk-1", sources(make_file))
    assert len(runs) == 1  # the new key file's
    for _ in range(3):
        assert Repository(target(root), passphrase=PASS).read_manifest("bk-1")["tables"]
    assert len(runs) == 1
    for _ in range(2):
        with pytest.raises(PassphraseError, match="wrong encryption_passphrase"):
            Repository(target(root), passphrase="not it").read_manifest("bk-1")
    assert len(runs) == 3
    (key_file,) = (root / "enc" / "keys").iterdir()
    doc = json.loads(key_file.read_bytes())
    doc["salt"] = os.urandom(16).hex()  # the same passphrase, another key: derived again
    doc["file_sha256"] = hashlib.sha256(json.dumps(
        {k: v for k, v in doc.items() if k != "file_sha256"}, sort_keys=True,
        separators=(",", ":")).encode()).hexdigest()
    key_file.write_bytes(json.dumps(doc).encode())
    with pytest.raises(PassphraseError, match="wrong encryption_passphrase"):
        Repository(target(root), passphrase=PASS).read_manifest("bk-1")
    assert len(runs) == 4


def test_damage_is_corruption_not_a_wrong_passphrase(root: Path, make_file: MakeFile) -> None:
    m = store(Repository(target(root), passphrase=PASS), "bk-1", sources(make_file))
    repo = Repository(target(root), passphrase=PASS)
    big = max(m["objects"], key=lambda o: o["size"])
    path = root / "enc" / "objects" / big["oid"][:2] / big["oid"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    report = repo.verify("bk-1", contents=False)
    assert not report.is_valid
    assert report.errors == [f"object {big['oid']} is corrupt: frame 0 does not authenticate"]

    # A changed body with a recomputed checksum: the key opens it no more.
    mpath = root / "enc" / "manifests" / "bk-1.json"
    doc = json.loads(mpath.read_text())
    body = bytearray(base64.b64decode(doc["body"]["data"]))
    body[-1] ^= 0x01
    doc["body"]["data"] = base64.b64encode(bytes(body)).decode()
    doc.pop("manifest_sha256")
    doc["manifest_sha256"] = hashlib.sha256(canonical(doc)).hexdigest()
    mpath.write_bytes(canonical(doc) + b"\n")
    with pytest.raises(BackupInvalid, match="does not authenticate") as info:
        repo.read_manifest("bk-1")
    assert not isinstance(info.value, PassphraseError)


def test_two_passphrases_share_a_target(root: Path, make_file: MakeFile) -> None:
    files = sources(make_file)
    a = store(Repository(target(root), passphrase="first"), "bk-a", files)
    b = store(Repository(target(root), passphrase="second"), "bk-b", files)
    assert {o["oid"] for o in a["objects"]}.isdisjoint(o["oid"] for o in b["objects"])
    assert len(list((root / "enc" / "keys").iterdir())) == 2
    assert Repository(target(root), passphrase="second").verify("bk-b", contents=False).is_valid
    with pytest.raises(PassphraseError):
        Repository(target(root), passphrase="second").read_manifest("bk-a")


def test_unknown_features_and_key_parameters_are_refused(root: Path, make_file: MakeFile) -> None:
    store(Repository(target(root), passphrase=PASS), "bk-1", sources(make_file))
    (key,) = (root / "enc" / "keys").iterdir()
    doc = json.loads(key.read_text())
    doc["n"] = 1 << 40  # would take forever: refused, not attempted
    key.write_text(json.dumps(doc))
    with pytest.raises(BackupInvalid, match="scrypt parameters"):
        Repository(target(root), passphrase=PASS).read_manifest("bk-1")
    mpath = root / "enc" / "manifests" / "bk-1.json"
    m = json.loads(mpath.read_text())
    m["features"] = ["aes-256-gcm", "lz4", "zstd"]  # as a newer Cairn would write it
    m.pop("manifest_sha256")
    mpath.write_bytes(canonical({**m, "manifest_sha256": hashlib.sha256(canonical(m)).hexdigest()})
                      + b"\n")
    with pytest.raises(BackupInvalid, match="lz4"):
        Repository(target(root)).read_manifest("bk-1", require_body=False)


def test_lock_protects_the_keyed_names(root: Path, make_file: MakeFile) -> None:
    src = make_file(data=b"text " * 10_000)
    repo = Repository(target(root), passphrase=PASS)
    with repo.lock("bk-running") as lock:
        lock.add([src.sha256])
        put = repo.put_file(src.path, sha256=src.sha256, size=src.size, lock=lock)
        assert put.oid in lock.oids and put.oid != src.sha256
        assert repo.prune() == 0  # the lock keeps it
        lock_file = json.loads((root / "enc" / "locks" / "bk-running.json").read_text())
        assert put.oid in lock_file["oids"] and src.sha256 not in lock_file["oids"]
    assert put.oid in repo.list_objects()  # released without a manifest: now unreferenced
    assert repo.prune() > 0 and repo.list_objects() == {}


def test_a_manifest_read_with_its_passphrase_is_not_served_to_others(
    root: Path, make_file: MakeFile
) -> None:
    """Checked manifests are remembered by their bytes (envelope.unpack_checked),
    never an encrypted one: a reader without the key, or with a wrong one, is
    refused after the right one read it, every time."""
    store(Repository(target(root), passphrase=PASS), "bk-1", sources(make_file))
    for _ in range(2):
        assert "tables" in Repository(target(root), passphrase=PASS).read_manifest("bk-1")
        with pytest.raises(PassphraseError, match="give its encryption_passphrase"):
            Repository(target(root)).read_manifest("bk-1")
        with pytest.raises(PassphraseError, match="wrong encryption_passphrase"):
            Repository(target(root), passphrase="not it").read_manifest("bk-1")
        assert "tables" not in Repository(target(root)).list_manifests()[0]
