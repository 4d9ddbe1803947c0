"""The memo of checked manifests (envelope.unpack_checked): keyed by the
SHA-256 of the bytes read, never by what the target says about them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from storage.backup import Repository, envelope, listing, resolve_target

from .conftest import MakeFile, manifest_doc, stored_as


def _path(repo: Repository, backup_id: str) -> Path:
    return Path(repo.target.base) / "manifests" / f"{backup_id}.json"


def _repo(root: Path, name: str, compression: str = "none") -> Repository:
    return Repository(resolve_target(name, [str(root)], {}), compression=compression)


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_a_manifest_listed_is_not_parsed_again_to_be_restored(
        root: Path, make_file: MakeFile, monkeypatch: pytest.MonkeyPatch,
        compression: str) -> None:
    """SHOW BACKUPS and RESTORE's choice list with the header only
    (require_body false), then RESTORE reads its choice whole: for a manifest
    that is not encrypted both are the same document, checked once. Before,
    they were two entries of the memo, each parsed and checked (a 3,000-table
    manifest ~1 s each)."""
    repo = _repo(root, "main", compression)
    sources = [make_file(size=1000), make_file(size=2000)]
    for s in sources:
        repo.put_file(s.path)
    repo.write_manifest(manifest_doc("bk-1", sources))
    envelope.forget_all()  # a process that has read nothing yet
    listed = repo.listing("app")

    def parsed(*_: Any, **__: Any) -> None:
        raise AssertionError("parsed again")

    monkeypatch.setattr(envelope, "unpack", parsed)
    whole = repo.read_manifest("bk-1")
    assert whole == listed[0] and whole["tables"]
    assert repo.choose_backup("app")["backup_id"] == "bk-1"


def test_a_manifest_rewritten_with_the_same_name_size_and_mtime_is_read_anew(
        root: Path, make_file: MakeFile) -> None:
    """Another sound manifest of the same size written over a listed one, its
    mtime put back: the listing shows the new one (the memo is keyed by the
    bytes' SHA-256, not the name, size or mtime); one damaged so is listed as
    damaged, every time."""
    a, b = _repo(root, "a"), _repo(root, "b")
    sources = [make_file(size=1000), make_file(size=2000)]
    for repo, label in ((a, "aaaa"), (b, "bbbb")):
        for s in sources:
            repo.put_file(s.path)
        doc = {**manifest_doc("bk-1", sources), "label": label,
               "created_at": "2026-01-01T00:00:00.000Z"}
        repo.write_manifest(doc)
    path = _path(a, "bk-1")
    old, new = path.read_bytes(), _path(b, "bk-1").read_bytes()
    assert len(old) == len(new) and old != new
    assert [m["label"] for m in a.listing("app")] == ["aaaa"]
    stat = path.stat()
    path.write_bytes(new)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    for _ in range(2):
        assert [m["label"] for m in a.listing("app")] == ["bbbb"]
        assert a.read_manifest("bk-1")["label"] == "bbbb"
    damaged = new.replace(b'"bbbb"', b'"cccc"')
    path.write_bytes(damaged)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    for _ in range(2):
        (entry,) = a.listing("app")
        assert "manifest_sha256 mismatch" in entry["error"]
    path.write_bytes(old)
    assert [m["label"] for m in a.listing("app")] == ["aaaa"]


def test_the_memo_is_bounded_and_keeps_no_target_bytes(
        repo: Repository, make_file: MakeFile, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the memo holds is the checked documents, pickled, within
    CACHE_MAX_BYTES: the oldest go first; the bytes read are not held."""
    monkeypatch.setattr(envelope, "CACHE_MAX_BYTES", 8 << 10)
    envelope.forget_all()
    sources = [make_file(size=100)]
    repo.put_file(sources[0].path)
    for i in range(12):
        repo.write_manifest(manifest_doc(f"bk-{i}", sources))
    assert len(repo.listing("app")) == 12
    assert 0 < envelope._cache_bytes <= 8 << 10 and len(envelope._cache) < 12
    assert all(len(digest) == 32 for _, digest in envelope._cache)


def test_a_prune_takes_the_objects_of_a_listed_manifest_without_copying_it_out(
        repo: Repository, make_file: MakeFile, monkeypatch: pytest.MonkeyPatch) -> None:
    """`referenced_objects` (every prune) needs only the oids: kept beside the
    document, not unpickled from it; a manifest rewritten is read anew."""
    sources = [make_file(size=100), make_file(size=200)]
    for s in sources:
        repo.put_file(s.path)
    repo.write_manifest(manifest_doc("bk-1", sources))
    repo.write_manifest(manifest_doc("bk-2", sources[:1]))
    envelope.forget_all()
    assert len(repo.listing("app")) == 2

    def copied(*_: Any, **__: Any) -> None:
        raise AssertionError("copied out")

    monkeypatch.setattr(envelope.pickle, "loads", copied)
    assert repo.referenced_objects() == {s.sha256 for s in sources}
    _path(repo, "bk-1").unlink()
    assert repo.referenced_objects() == {sources[0].sha256}


@pytest.mark.parametrize("cold", [True, False])
def test_a_light_listing_is_the_listing_without_tables(
        root: Path, make_file: MakeFile, cold: bool) -> None:
    """SHOW BACKUPS IN lists `light` (headers: no table's schemas and files
    copied out of the memo), checked as ever: the same entries less `tables`;
    a damaged one listed as damaged; an encrypted one opened keeps them."""
    repo = _repo(root, "main", "zstd")
    sources = [make_file(size=100)]
    repo.put_file(sources[0].path)
    for i in range(2):
        repo.write_manifest(manifest_doc(f"bk-{i}", sources))
    _path(repo, "bk-9").write_bytes(_path(repo, "bk-1").read_bytes())  # names bk-1
    if cold:
        envelope.forget_all()
    whole, light = repo.listing("app"), repo.listing("app", light=True)
    assert [m["backup_id"] for m in light] == [m["backup_id"] for m in whole]
    assert sorted(m["backup_id"] for m in light) == ["bk-0", "bk-1", "bk-9"]
    for w, m in zip(whole, light, strict=True):
        if w["backup_id"] == "bk-9":
            assert "names backup 'bk-1'" in m["error"] and m == w
        else:
            assert "tables" in w and m == _summary(w)
    secret = Repository(resolve_target("sealed", [str(root)], {}), passphrase="pass phrase 1")
    doc = manifest_doc("bk-5", sources)
    stored_as(doc["tables"][0], [secret.put_file(sources[0].path)])
    secret.write_manifest(doc)
    (sealed,) = secret.listing("app", light=True)
    assert sealed["encrypted"] is True and sealed["tables"] == []  # opened (scope shown)


def _summary(m: dict[str, Any]) -> dict[str, Any]:
    """What a light listing keeps of a plain manifest (listing.summary_keeper)."""
    kept = {k: [] if k == "objects" else v for k, v in m.items() if k != "tables"}
    return {**kept, "totals": {**m["totals"], "objects": 0, "object_bytes": 0}}


def test_a_light_listing_keeps_summaries_and_labels_within_a_budget(
        root: Path, make_file: MakeFile, monkeypatch: pytest.MonkeyPatch) -> None:
    """SHOW BACKUPS IN kept each whole document it listed until it answered:
    3,000 planted 61.7 KB manifests with 60,000-character labels took the
    server 230 -> 556 MB for one listing. It keeps their summaries now (no
    objects, no tables), labels within LISTING_LABEL_CHARS together, one past
    its share cut and saying so; RESTORE's listing keeps them whole."""
    monkeypatch.setattr(listing, "LISTING_LABEL_CHARS", 100_000)  # 5 manifests: 20,000 each
    repo = _repo(root, "main")
    sources = [make_file(size=100)]
    repo.put_file(sources[0].path)
    for i in range(5):
        repo.write_manifest({**manifest_doc(f"bk-{i}", sources), "label": f"{i}" * 60_000})
    repo.write_manifest({**manifest_doc("bk-s", sources), "label": "short"})
    envelope.forget_all()
    light = {m["backup_id"]: m for m in repo.listing("app", light=True)}
    whole = {m["backup_id"]: m for m in repo.listing("app")}
    assert light["bk-s"] == _summary(whole["bk-s"]) and light["bk-s"]["label"] == "short"
    for i in range(5):
        m = light[f"bk-{i}"]
        assert m["objects"] == [] and "tables" not in m and whole[f"bk-{i}"]["tables"]
        cut = "… [label cut in this listing: 43334 more characters]"
        assert m["label"] == f"{i}" * 16_666 + cut
        assert whole[f"bk-{i}"]["label"] == f"{i}" * 60_000
