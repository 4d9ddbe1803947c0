"""Hostile backup targets (issue 11): take real backups (plain, zstd, encrypted,
`.tar`, `.tar.zst`), copy one per case and craft it the way someone with write
access to the target could: its `config.json`, key files, locks and prune
markers with swapped types, out-of-range numbers, missing and extra keys or
bytes that are not JSON; archives with extra, link, duplicate, unordered or
badly named members; a symlink planted for every internal folder, for
`config.json` and for single files; a damaged newest backup beside an older
good one; targets nested in another repository's internal folders. Then, for
each crafted target:

- VERIFY BACKUP and RESTORE (no backup_id) agree: VERIFY calls it valid exactly
  when RESTORE restores it;
- a refusal is 422 BACKUP_INVALID, or 403 PERMISSION_DENIED for a link or a
  nested target; never a 500 (SHOW BACKUPS IN and a writing statement too);
- a refused RESTORE installs nothing;
- no file outside the backup roots is created, changed or deleted (every link
  points at a copy of what it replaces, outside the roots, so following it would
  "work");
- afterwards a control INSERT and a SELECT of every system table succeed.

    python bench/bench_fuzz_targets.py --cases 600 [--seed 11]

The test `tests/proof/test_hostile_targets.py` runs a seeded subset of the same
campaign against an in-process server; this script runs more cases against a
real aiohttp server on 127.0.0.1 and prints the counts."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import shutil
import socket
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

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
    link: bool = False  # a planted link: refusals are 403
    harmless: bool = False  # VERIFY must say valid and RESTORE must restore
    writer: str | None = None  # "backup" or "drop": a statement that must be refused (422/403)


@dataclass
class Outcome:
    case: str
    verify: str
    restore: str
    problems: list[str]
    refused: bool
    status_500: int


# --- building the world -----------------------------------------------------------


async def must(sql: Sql, text: str) -> dict[str, Any]:
    status, body = await sql(text)
    if status != 200:
        raise AssertionError(f"{text}: {status} {body}")
    return body


async def prepare(sql: Sql, root: Path, outside: Path) -> World:
    world = World(sql, root, outside)
    await must(sql, "CREATE NAMESPACE app;"
                    "CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT) WITH (flush_rows = 1000)")
    rows = ", ".join(f"({i}, '{'text ' * 40}{i}')" for i in range(200))
    await must(sql, f"INSERT INTO app.t VALUES {rows}; FLUSH TABLE app.t;"
                    "INSERT INTO app.t VALUES (500, 'buffered'); DELETE FROM app.t WHERE id = 3")
    for kind in KINDS:
        opts = f" WITH ({OPTIONS[kind]})" if OPTIONS[kind] else ""
        body = await must(sql, f"BACKUP DATABASE app TO '{BASE[kind]}'{opts}")
        world.ids[kind] = body["results"][0]["rows"][0]["backup_id"]
    older = (await must(sql, "BACKUP DATABASE app TO 'base-two' WITH (compression = 'none')"))
    await must(sql, "INSERT INTO app.t VALUES (501, 'newer')")
    newer = (await must(sql, "BACKUP DATABASE app TO 'base-two' WITH (compression = 'none')"))
    world.two = (older["results"][0]["rows"][0]["backup_id"],
                 newer["results"][0]["rows"][0]["backup_id"])
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "precious.txt").write_text("outside the roots: must never change\n")
    return world


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


# --- running a case -----------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` (links not followed) with its size and mtime."""
    out = {}
    for dirpath, dirs, files in os.walk(folder):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[os.path.relpath(p, folder)] = (st.st_size, st.st_mtime_ns)
    return out


def verdict(status: int, body: dict[str, Any], field_name: str | None = None) -> str:
    if status == 200:
        if field_name is None:
            return "ok"
        row = body["results"][-1]["rows"][0]
        return "valid" if row[field_name] else "invalid"
    return f"{status} {body.get('error', {}).get('code')}"


async def namespaces(sql: Sql) -> list[str]:
    status, body = await sql("SHOW NAMESPACES")
    assert status == 200, body
    return sorted(r["namespace"] for r in body["results"][0]["rows"])


async def run_case(world: World, case: Case, n: int, rng: random.Random,
                   outside_before: dict[str, tuple[int, int]]) -> Outcome:
    sql = world.sql
    base_kind = "plain" if case.kind == "two" else case.kind
    source = world.root / (BASE[case.kind] if case.kind != "two" else "base-two")
    suffix = {"tar": ".tar", "tarzst": ".tar.zst"}.get(case.kind, "")
    name = f"c{n}{suffix}"
    path = world.root / name
    if path.exists() or path.is_symlink():
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    if source.is_dir():
        shutil.copytree(source, path, symlinks=True)
    else:
        shutil.copyfile(source, path)
    case.mutate(path, world, rng)
    outside_mid = snapshot(world.outside)

    secret = f"encryption_passphrase = '{PASS}'" if base_kind == "enc" else ""
    backup_id = world.two[1] if case.kind == "two" else world.ids[base_kind]
    problems: list[str] = []
    codes: list[int] = []

    async def run(text: str) -> tuple[int, dict[str, Any]]:
        status, body = await sql(text)
        codes.append(status)
        if status >= 500:
            problems.append(f"{text}: {status} {body.get('error')}")
        return status, body

    before = await namespaces(sql)
    v_status, v_body = await run(f"VERIFY BACKUP '{backup_id}' IN '{name}'"
                                 + (f" WITH ({secret})" if secret else ""))
    dest = f"r{n}"
    r_status, r_body = await run(f"RESTORE DATABASE app FROM '{name}' AS {dest}"
                                 + (f" WITH ({secret})" if secret else ""))
    l_status, l_body = await run(f"SHOW BACKUPS IN '{name}'")
    verify = verdict(v_status, v_body, "is_valid")
    restore = verdict(r_status, r_body)
    restored = r_status == 200
    if (verify == "valid") != restored:
        problems.append(f"VERIFY said {verify} but RESTORE answered {restore}: "
                        f"{(v_body.get('results') or [{}])[-1].get('rows')} "
                        f"{r_body.get('error')}")
    allowed = {403} if case.link else {422}
    for status in (v_status, r_status):
        if status != 200 and status not in allowed:
            problems.append(f"refused with {status}, expected one of {sorted(allowed)}: "
                            f"{v_body.get('error') if status == v_status else r_body.get('error')}")
    if case.harmless and not (verify == "valid" and restored):
        problems.append(f"a harmless change: VERIFY {verify}, RESTORE {restore}")
    if not case.harmless and not case.link and restored:
        problems.append("a damaged target restored")
    if case.kind == "two":
        rows = l_body.get("results", [{}])[0].get("rows", []) if l_status == 200 else []
        listed = {r["backup_id"]: r.get("error") for r in rows}
        if l_status != 200 or not listed.get(world.two[1]):
            problems.append(f"SHOW BACKUPS IN does not list the damaged newest backup: "
                            f"{l_status} {rows}")
        if r_status == 422 and world.two[1] not in r_body["error"]["message"]:
            problems.append(f"RESTORE refused without naming the damaged backup: {r_body}")
    after = await namespaces(sql)
    if restored:
        await run(f"DROP NAMESPACE {dest} CASCADE")
    elif after != before:
        problems.append(f"a refused RESTORE installed something: {after}")

    if case.writer == "backup":
        w_status, w_body = await run(f"BACKUP DATABASE app TO '{name}'"
                                     + (f" WITH ({secret})" if secret else ""))
        if w_status not in allowed | {422}:
            problems.append(f"BACKUP into it answered {w_status} {w_body.get('error')}")
    elif case.writer == "drop":
        w_status, w_body = await run(f"DROP BACKUP '{backup_id}' IN '{name}'")
        if w_status != 422:
            problems.append(f"DROP BACKUP answered {w_status} {w_body.get('error')}")
        if not (path / "manifests" / f"{backup_id}.json").exists():
            problems.append("a refused DROP BACKUP removed the manifest")

    if snapshot(world.outside) != outside_mid:
        problems.append("a file outside the roots was created, changed or deleted")
    if {k: v for k, v in outside_mid.items() if k in outside_before} != outside_before:
        problems.append("the mutation itself changed the outside folder (harness bug)")

    world.next_id += 1
    status, body = await run(f"INSERT INTO app.t VALUES ({world.next_id}, 'control')")
    if status != 200:
        problems.append(f"control INSERT answered {status} {body.get('error')}")
    for table in SYSTEM_TABLES:
        status, body = await run(f"SELECT * FROM system.{table}")
        if status != 200:
            problems.append(f"SELECT * FROM system.{table} answered {status} {body.get('error')}")
    return Outcome(case.name, verify, restore, problems, refused=not restored,
                   status_500=sum(c >= 500 for c in codes))


async def nested_cases(world: World) -> list[Outcome]:
    """Targets inside another repository's internal folders, and a target whose
    own internal folder holds a repository: refused (403), nothing written."""
    sql = world.sql
    out = []
    holder = world.root / "holder"
    shutil.copytree(world.root / "base-plain", holder / "objects", symlinks=True)
    for target in ("base-plain/objects/x", "base-plain/tmp/y", "base-zstd/manifests/n",
                   "base-plain/keys/k.tar", "holder"):
        before = snapshot(world.root)
        problems = []
        for text in (f"BACKUP DATABASE app TO '{target}'", f"SHOW BACKUPS IN '{target}'"):
            status, body = await sql(text)
            if status != 403:
                problems.append(f"{text}: {status} {body.get('error')}")
        if snapshot(world.root) != before:
            problems.append("something was written")
        out.append(Outcome(f"nested: {target}", "-", "403", problems, True, 0))
    return out


@dataclass
class Campaign:
    outcomes: list[Outcome]
    seconds: float

    def counts(self) -> dict[str, int]:
        return {
            "crafted": len(self.outcomes),
            "refused": sum(o.refused for o in self.outcomes),
            "agreed": sum(not any("VERIFY said" in p for p in o.problems) for o in self.outcomes),
            "500s": sum(o.status_500 for o in self.outcomes),
            "with problems": sum(bool(o.problems) for o in self.outcomes),
        }

    def problems(self) -> list[str]:
        return [f"{o.case}: {p}" for o in self.outcomes for p in o.problems]

    def table(self) -> str:
        by_case: Counter[tuple[str, str, str]] = Counter()
        for o in self.outcomes:
            kind = o.case.split(": ", 1)[1] if ": " in o.case else o.case
            by_case[(kind, o.verify, o.restore)] += 1
        lines = ["| case | VERIFY | RESTORE | n |", "|---|---|---|---:|"]
        lines += [f"| {c} | {v} | {r} | {n} |" for (c, v, r), n in sorted(by_case.items())]
        return "\n".join(lines)


async def run_campaign(sql: Sql, root: Path, outside: Path, cases: int, seed: int) -> Campaign:
    """`cases` crafted targets drawn (seeded) from every kind of case, each kind
    at least once when `cases` allows, then the nested targets."""
    start = time.monotonic()
    world = await prepare(sql, root, outside)
    rng = random.Random(seed)
    kinds = case_list()
    order = kinds[:cases] + [rng.choice(kinds) for _ in range(max(0, cases - len(kinds)))]
    outcomes = []
    outside_before = snapshot(outside)
    for n, case in enumerate(order):
        outcome = await run_case(world, case, n, rng, outside_before)
        outcomes.append(outcome)
        outside_before = snapshot(outside)
        path = root / f"c{n}"
        for p in (path, root / f"c{n}.tar", root / f"c{n}.tar.zst"):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
    outcomes += await nested_cases(world)
    return Campaign(outcomes, time.monotonic() - start)


# --- the script ------------------------------------------------------------------------


async def main_async(args: argparse.Namespace) -> int:
    from aiohttp.test_utils import TestClient, TestServer

    from server.app import create_app
    from server.config import Config

    work = Path(tempfile.mkdtemp(prefix="cairn-fuzz-targets-"))
    try:
        cfg = Config()
        cfg.storage.data_dir = str(work / "data")
        cfg.backup.roots = [str(work / "backups")]
        async with TestClient(TestServer(create_app(cfg), host="127.0.0.1")) as client:

            async def sql(text: str) -> tuple[int, dict[str, Any]]:
                resp = await client.post("/api/sql", json={"sql": text})
                return resp.status, await resp.json()

            campaign = await run_campaign(sql, work / "backups", work / "outside", args.cases,
                                          args.seed)
        counts = campaign.counts()
        print(f"hostile targets: {args.cases} cases + nested, seed {args.seed}, "
              f"{campaign.seconds:.0f} s, load {os.getloadavg()[0]:.1f}")
        print(campaign.table())
        print(" ".join(f"{k}={v}" for k, v in counts.items()))
        for p in campaign.problems()[:50]:
            print("PROBLEM", p)
        return 1 if counts["with problems"] else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=600)
    parser.add_argument("--seed", type=int, default=11)
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
