"""The cases of bench_fuzz_targets.py: what each one does to a copy of a real
backup target (JSON documents mutated, tar archives rewritten member by member,
links and strays planted in directory targets) and what it must be answered."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import socket
import tarfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

Sql = Callable[[str], Awaitable[tuple[int, dict[str, Any]]]]

PASS = "fuzz passphrase"
KINDS = ("plain", "zstd", "enc", "tar", "tarzst")
BASE = {"plain": "base-plain", "zstd": "base-zstd", "enc": "base-enc", "tar": "base.tar",
        "tarzst": "base.tar.zst"}
OPTIONS = {"plain": "compression = 'none'", "zstd": "", "enc": f"encryption_passphrase = '{PASS}'",
           "tar": "compression = 'none'", "tarzst": ""}
INTERNAL_DIRS = ("objects", "manifests", "tmp", "keys", "locks", "prunes")
SYSTEM_TABLES = ("namespaces", "tables", "table_schemas", "jobs", "backups", "schedules")


@dataclass
class World:
    """The server (through `sql`), the backup root, a folder outside it, and the
    base backups every case is copied from."""

    sql: Sql
    root: Path
    outside: Path
    ids: dict[str, str] = field(default_factory=dict)  # kind -> backup_id
    two: tuple[str, str] = ("", "")  # base-two: (older, newer)
    next_id: int = 1000


@dataclass
class Case:
    name: str
    kind: str  # one of KINDS, or "two" (a directory target holding two backups)
    mutate: Callable[[Path, World, random.Random], None]
    link: bool = False  # a planted link or FIFO: refusals are 403
    harmless: bool = False  # VERIFY must say valid and RESTORE must restore
    writer: str | None = None  # "backup" or "drop": a statement that must be refused (422/403)


# --- JSON mutations -----------------------------------------------------------------

HUGE = (1 << 63, 1 << 70, -1, -(1 << 63) - 1)


def mutate_json(data: bytes, rng: random.Random, hostile: bool = False) -> bytes:
    """One change to a JSON object: a type swap, an out-of-range number, a
    missing or extra key, or bytes that are not (all) JSON; unless `hostile`,
    also changes a strict reader may rightly accept (an empty list, a list
    doubled)."""
    try:
        doc = json.loads(data)
    except ValueError:
        doc = None
    choice = rng.choice([0, 1, 2, 5, 6]) if hostile else rng.randrange(9)
    if not isinstance(doc, dict) or not doc or choice == 0:
        return rng.choice([data[: rng.randrange(len(data))], b"", b"\xff\xfe{", b"[1, 2]", b"null",
                           b"{" * 5000, data + b"garbage"])
    key = rng.choice(sorted(doc))
    value = doc[key]
    if choice in (1, 2):  # type swap
        swaps = [str(value), 7, 1.5, True, None, [value], {"v": value}]
        doc[key] = rng.choice([s for s in swaps if type(s) is not type(value)])
    elif choice in (3, 4):  # out of range, or a string where a number fits
        doc[key] = rng.choice(HUGE) if not isinstance(value, str) else rng.choice(
            ["", "x" * 100_000, "\u0000", "2026-13-45T99:99:99Z", "../../etc/passwd", "\udcff"])
    elif choice == 5:
        del doc[key]
    elif choice == 6:
        doc["unexpected_" + str(rng.randrange(100))] = rng.choice([1, "x", [], None])
    elif choice == 7 and isinstance(value, list):
        doc[key] = value + value if value else ["z" * 64]
    else:
        doc[key] = rng.choice([[], {}, "", 0])
    try:
        return json.dumps(doc).encode("utf-8", "surrogatepass")
    except (ValueError, TypeError):
        return b"{}"


def craft_lock(backup_id: str, oids: list[str]) -> dict[str, Any]:
    return {"backup_id": backup_id, "created_at": "2026-11-23T08:50:00.123Z",
            "host": socket.gethostname(), "pid": os.getpid(), "oids": oids}


def craft_marker() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(),
            "started_at": "2026-11-23T08:50:00.123Z"}


# --- archives ---------------------------------------------------------------------------


def read_members(path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    raw = path.read_bytes()
    if path.name.endswith(".zst"):
        raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()
    out = []
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        for m in tar:
            f = tar.extractfile(m) if m.isreg() else None
            out.append((m, f.read() if f is not None else b""))
    return out


def write_members(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if info.isreg():
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    raw = buf.getvalue()
    if path.name.endswith(".zst"):
        raw = zstandard.ZstdCompressor(level=1).compress(raw)
    path.write_bytes(raw)


def member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE,
           linkname: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mode = 0o644
    return info, data


def archive_case(edit: Callable[[list[tuple[tarfile.TarInfo, bytes]], random.Random],
                                None]) -> Callable[[Path, World, random.Random], None]:
    def mutate(path: Path, world: World, rng: random.Random) -> None:
        members = read_members(path)
        edit(members, rng)
        write_members(path, members)
    return mutate


def _objects(members: list[tuple[tarfile.TarInfo, bytes]]) -> list[int]:
    return [i for i, (m, _) in enumerate(members) if m.name.startswith("objects/")]


def _extra_object(members: list[tuple[tarfile.TarInfo, bytes]], rng: random.Random) -> None:
    data = rng.randbytes(100)
    oid = rng.randbytes(32).hex()
    members.append(member(f"objects/{oid[:2]}/{oid}", data))
    members.sort(key=lambda m: m[0].name)


def _extra_unknown(members: list[tuple[tarfile.TarInfo, bytes]], rng: random.Random) -> None:
    members.append(member(rng.choice(["evil.sh", "objects/zz/readme", "locks/x.json",
                                      "tmp/abc.tmp", "manifests/notes.txt"]), b"#!/bin/sh\n"))
    members.sort(key=lambda m: m[0].name)


def _link(members: list[tuple[tarfile.TarInfo, bytes]], rng: random.Random) -> None:
    i = rng.choice(_objects(members))
    name = members[i][0].name
    kind = rng.choice([tarfile.SYMTYPE, tarfile.LNKTYPE])
    link = rng.choice(["/etc/passwd", "../../x", "config.json"])
    members[i] = member(name, kind=kind, linkname=link)


def _extra_link(members: list[tuple[tarfile.TarInfo, bytes]], rng: random.Random) -> None:
    oid = rng.randbytes(32).hex()
    members.append(member(f"objects/{oid[:2]}/{oid}", kind=tarfile.SYMTYPE, linkname="/etc/passwd"))
    members.sort(key=lambda m: m[0].name)


def _duplicate(members: list[tuple[tarfile.TarInfo, bytes]], rng: random.Random) -> None:
    i = rng.randrange(len(members))
    members.insert(i, members[i])


def _bad_path(members: list[tuple[tarfile.TarInfo, bytes]], rng: random.Random) -> None:
    i = rng.randrange(len(members))
    info, data = members[i]
    bad = rng.choice(["../" + info.name, "/" + info.name, "objects//" + info.name,
                      "./" + info.name, info.name + "/..", "objects\\" + info.name])
    members[i] = member(bad, data)


def _device(members: list[tuple[tarfile.TarInfo, bytes]], rng: random.Random) -> None:
    members.append(member("objects/00/" + "0" * 64, kind=rng.choice([tarfile.CHRTYPE,
                                                                      tarfile.FIFOTYPE])))
    members.sort(key=lambda m: m[0].name)


def _unordered(members: list[tuple[tarfile.TarInfo, bytes]], rng: random.Random) -> None:
    members.reverse()


def _second_manifest(members: list[tuple[tarfile.TarInfo, bytes]], rng: random.Random) -> None:
    (i,) = [i for i, (m, _) in enumerate(members) if m.name.startswith("manifests/")]
    members.insert(i + 1, member("manifests/zz-other.json", members[i][1]))


def _extra_key(members: list[tuple[tarfile.TarInfo, bytes]], rng: random.Random) -> None:
    keys = [d for m, d in members if m.name.startswith("keys/")]
    doc = keys[0] if keys else json.dumps({"format": "cairn-backup-key"}).encode()
    members.append(member(f"keys/{rng.randbytes(16).hex()}.json", doc))
    members.sort(key=lambda m: m[0].name)


def _drop(prefix: str) -> Callable[[list[tuple[tarfile.TarInfo, bytes]], random.Random], None]:
    def edit(members: list[tuple[tarfile.TarInfo, bytes]], rng: random.Random) -> None:
        members[:] = [m for m in members if not m[0].name.startswith(prefix)]
    return edit


def _json_member(prefix: str) -> Callable[[list[tuple[tarfile.TarInfo, bytes]], random.Random],
                                          None]:
    def edit(members: list[tuple[tarfile.TarInfo, bytes]], rng: random.Random) -> None:
        for i, (info, data) in enumerate(members):
            if info.name.startswith(prefix):
                members[i] = (info, mutate_json(data, rng))
    return edit


def _directory_entry(members: list[tuple[tarfile.TarInfo, bytes]], rng: random.Random) -> None:
    members.append(member(rng.choice(["keys/", "objects/", "manifests/"]), kind=tarfile.DIRTYPE))
    members.sort(key=lambda m: m[0].name.rstrip("/"))  # in order, a directory entry is skipped


def _truncate_file(path: Path, world: World, rng: random.Random) -> None:
    """Cut into the members, not only the zero blocks and padding at the end of a
    tar (up to 10 KiB there: a tar cut in those reads whole, rightly)."""
    data = path.read_bytes()
    tail = 64 if path.name.endswith(".zst") else 10240 + 1024
    cut = rng.randrange(len(data) // 3, max(len(data) // 3 + 1, len(data) - tail))
    path.write_bytes(data[:cut])


# --- directory targets ------------------------------------------------------------------


def file_json(rel: str) -> Callable[[Path, World, random.Random], None]:
    def mutate(path: Path, world: World, rng: random.Random) -> None:
        files = sorted(path.glob(rel))
        for f in files:
            f.write_bytes(mutate_json(f.read_bytes(), rng))
    return mutate


def planted(kind: str) -> Callable[[Path, World, random.Random], None]:
    """A lock or prune marker planted in a Cairn name, then made hostile."""
    def mutate(path: Path, world: World, rng: random.Random) -> None:
        if kind == "lock":
            oids = [p.name for p in (path / "objects").rglob("*") if p.is_file()]
            where = path / "locks" / "bk-running.json"
            doc = craft_lock("bk-running", oids)
        else:
            where = path / "prunes" / f"{rng.randbytes(8).hex()}.json"
            doc = craft_marker()
        where.parent.mkdir(exist_ok=True)
        where.write_bytes(mutate_json(json.dumps(doc).encode(), rng, hostile=True))
    return mutate


def link_dir(name: str) -> Callable[[Path, World, random.Random], None]:
    """Replace an internal folder (made if absent) by a link to a copy outside the roots."""
    def mutate(path: Path, world: World, rng: random.Random) -> None:
        inside = path / name
        copy = world.outside / f"{path.name}-{name}"
        if inside.is_dir():
            shutil.copytree(inside, copy)
            shutil.rmtree(inside)
        else:
            copy.mkdir()
        if name == "tmp":  # what a crash leaves: junk the start-up clean-up would delete
            (copy / f"{rng.randbytes(16).hex()}.tmp").write_bytes(b"outside")
        os.symlink(copy, inside)
    return mutate


def link_file(pattern: str) -> Callable[[Path, World, random.Random], None]:
    """Replace one file (config.json, a manifest, an object, a key) by a link to a copy."""
    def mutate(path: Path, world: World, rng: random.Random) -> None:
        files = sorted(p for p in path.glob(pattern) if p.is_file())
        victim = rng.choice(files)
        copy = world.outside / f"{path.name}-{victim.name}"
        shutil.copyfile(victim, copy)
        victim.unlink()
        os.symlink(copy, victim)
    return mutate


def fifo_file(pattern: str) -> Callable[[Path, World, random.Random], None]:
    """Replace one file by a FIFO: opened to read, it would wait for a writer forever."""
    def mutate(path: Path, world: World, rng: random.Random) -> None:
        victim = rng.choice(sorted(p for p in path.glob(pattern) if p.is_file()))
        victim.unlink()
        os.mkfifo(victim)
    return mutate


def delete(rel: str) -> Callable[[Path, World, random.Random], None]:
    def mutate(path: Path, world: World, rng: random.Random) -> None:
        (path / rel).unlink()
    return mutate


def newest_manifest(how: str) -> Callable[[Path, World, random.Random], None]:
    def mutate(path: Path, world: World, rng: random.Random) -> None:
        f = path / "manifests" / f"{world.two[1]}.json"
        data = f.read_bytes()
        if how == "truncate":
            f.write_bytes(data[: rng.randrange(len(data))])
        else:
            at = rng.randrange(len(data))
            f.write_bytes(data[:at] + bytes([data[at] ^ rng.randrange(1, 256)]) + data[at + 1:])
    return mutate


def unrelated(path: Path, world: World, rng: random.Random) -> None:
    (path / "README.txt").write_text("notes of the operator\n")


def case_list() -> list[Case]:
    """Every kind of case; the campaign draws from it."""
    cases: list[Case] = []
    for kind in ("plain", "zstd", "enc"):
        cases += [
            Case(f"{kind}: config.json", kind, file_json("config.json")),
            Case(f"{kind}: config.json deleted", kind, delete("config.json")),
            Case(f"{kind}: planted lock", kind, planted("lock"), harmless=True, writer="drop"),
            Case(f"{kind}: planted prune marker", kind, planted("marker"), harmless=True,
                 writer="backup"),
            Case(f"{kind}: link to config.json", kind, link_file("config.json"), link=True),
            Case(f"{kind}: link to a manifest", kind, link_file("manifests/*.json"), link=True),
            Case(f"{kind}: link to an object", kind, link_file("objects/*/*"), link=True),
            Case(f"{kind}: link for objects/aa", kind, link_dir_first_object(), link=True),
            Case(f"{kind}: FIFO for config.json", kind, fifo_file("config.json"), link=True),
            Case(f"{kind}: FIFO for a manifest", kind, fifo_file("manifests/*.json"), link=True),
            Case(f"{kind}: FIFO for an object", kind, fifo_file("objects/*/*"), link=True),
            Case(f"{kind}: unrelated file", kind, unrelated, harmless=True),
        ]
        cases += [Case(f"{kind}: link for {d}/", kind, link_dir(d), link=True,
                       writer="backup") for d in INTERNAL_DIRS]
    cases += [
        Case("enc: key file", "enc", file_json("keys/*.json")),
        Case("enc: key file deleted", "enc", delete_glob("keys/*.json")),
        Case("enc: link to the key file", "enc", link_file("keys/*.json"), link=True),
        Case("two: newest manifest truncated", "two", newest_manifest("truncate")),
        Case("two: newest manifest garbled", "two", newest_manifest("flip")),
    ]
    for kind in ("tar", "tarzst"):
        cases += [
            Case(f"{kind}: extra object member", kind, archive_case(_extra_object)),
            Case(f"{kind}: extra unknown member", kind, archive_case(_extra_unknown)),
            Case(f"{kind}: link member", kind, archive_case(_link)),
            Case(f"{kind}: extra link member", kind, archive_case(_extra_link)),
            Case(f"{kind}: duplicate member", kind, archive_case(_duplicate)),
            Case(f"{kind}: member with a bad path", kind, archive_case(_bad_path)),
            Case(f"{kind}: device member", kind, archive_case(_device)),
            Case(f"{kind}: members out of order", kind, archive_case(_unordered)),
            Case(f"{kind}: second manifest", kind, archive_case(_second_manifest)),
            Case(f"{kind}: extra key file", kind, archive_case(_extra_key)),
            Case(f"{kind}: no config.json", kind, archive_case(_drop("config.json"))),
            Case(f"{kind}: config.json member", kind, archive_case(_json_member("config.json"))),
            Case(f"{kind}: truncated", kind, _truncate_file),
            Case(f"{kind}: directory entry", kind, archive_case(_directory_entry), harmless=True),
        ]
    return cases


def link_dir_first_object() -> Callable[[Path, World, random.Random], None]:
    def mutate(path: Path, world: World, rng: random.Random) -> None:
        sub = rng.choice(sorted(p.name for p in (path / "objects").iterdir()))
        link_dir(f"objects/{sub}")(path, world, rng)
    return mutate


def delete_glob(pattern: str) -> Callable[[Path, World, random.Random], None]:
    def mutate(path: Path, world: World, rng: random.Random) -> None:
        for p in path.glob(pattern):
            p.unlink()
    return mutate
