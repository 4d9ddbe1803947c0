"""A hostile writer of backup targets: real backups (plain, zstd, encrypted, a
`.tar` archive) whose manifests are mutated field by field and RE-SEALED with a
valid checksum (and, for features, a freshly compressed and encrypted body under
the backup's own key), as anyone with write access to a target could.

`mutations(doc)` lists every (path, description, new document); `Case.run`
writes one crafted repository, then VERIFY and RESTORE it over HTTP and checks
what must hold whatever the mutation: they agree, a refusal is 422
BACKUP_INVALID, a refused restore installs nothing and its job is `failed`, a
restore that succeeded gives a namespace every table of which answers SELECT,
and a control INSERT and SELECTs of system tables still succeed.

Used by tests/proof/test_manifest_fuzz.py (a seeded subset) and
bench/bench_fuzz_manifests.py (every mutation)."""

from __future__ import annotations

import base64
import copy
import json
import re
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage.backup import Repository, open_repository, resolve_target
from storage.backup.codec import RAW, ZSTD, Form, encode_bytes
from storage.backup.crypto import binding_for_manifest
from storage.backup.manifest import canonical, checksum
from storage.backup.schema import PUBLIC
from storage.backup.tarball import pack
from tests.helpers import sql

PASSPHRASE = "fuzz passphrase"
SOURCE = """
    CREATE NAMESPACE app;
    CREATE TABLE app.items (id BIGINT PRIMARY KEY, name TEXT DEFAULT 'n', price DECIMAL(10,2));
    INSERT INTO app.items VALUES (1, 'one', 1.5), (2, 'two', 2.5);
    FLUSH TABLE app.items;
    ALTER TABLE app.items ADD COLUMN stock INT DEFAULT 7;
    INSERT INTO app.items VALUES (3, 'three', 3.5, 30);
    DELETE FROM app.items WHERE id = 2;
    CREATE USER TABLE app.notes (k TEXT PRIMARY KEY, body JSON);
    CREATE STREAM TABLE app.events (kind TEXT) WITH (ttl_seconds = 60);
    CREATE TABLE app.log (msg TEXT);
    INSERT INTO app.log VALUES ('hello');
    CREATE NAMESPACE control;
    CREATE TABLE control.t (id BIGINT PRIMARY KEY);
"""
# target name -> (BACKUP options, whether RESTORE/VERIFY need the passphrase)
KINDS = {
    "plain": ("compression = 'none'", False),
    "zstd": ("compression = 'zstd'", False),
    "enc": (f"encryption_passphrase = '{PASSPHRASE}'", True),
    "arch.tar": ("compression = 'zstd'", False),
}


# --- the source backups -----------------------------------------------------------


async def make_backups(client: Any) -> dict[str, str]:
    """Back up `app` once into each kind of target; target -> backup_id."""
    status, body = await sql(client, SOURCE)
    assert status == 200, body
    status, body = await sql(client, "INSERT INTO app.notes VALUES ('a', '{\"x\": 1}')", user="u1")
    assert status == 200, body
    ids = {}
    for target, (options, _) in KINDS.items():
        status, body = await sql(client, f"BACKUP DATABASE app TO 'src-{target}' WITH ({options})")
        assert status == 200, body
        ids[target] = body["results"][0]["rows"][0]["backup_id"]
    return ids


def read_doc(root: Path, kind: str, backup_id: str) -> dict[str, Any]:
    """The source backup's whole manifest (body opened)."""
    repo = open_repository(resolve_target(f"src-{kind}", [str(root)], {}),
                           passphrase=PASSPHRASE if KINDS[kind][1] else None,
                           scratch_dir=str(root.parent))
    doc = repo.read_manifest(backup_id)
    repo.close()
    return doc


# --- mutations --------------------------------------------------------------------

INTS: list[Any] = [-1, 2**62 + 1, 2**63, 2**64, "1", 1.5, True, None]
STRS: list[Any] = ["", 7, None, "Bad Name", "system", "_seq", "x" * 300, ["a"]]
BOOLS: list[Any] = [1, "true", None]
SKIP = frozenset({"manifest_sha256", "body", "key"})


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            if not path and k in SKIP:
                continue
            yield from _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*path, i))


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(doc)
    target = out
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    return out


def _delete(doc: Any, path: tuple[Any, ...]) -> Any:
    out = copy.deepcopy(doc)
    target = out
    for p in path[:-1]:
        target = target[p]
    del target[path[-1]]
    return out


def show(path: tuple[Any, ...]) -> str:
    text = ""
    for p in path:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else str(p))
    return text or "$"


def mutations(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(description, mutated manifest) for every field of `doc`."""
    out: list[tuple[str, dict[str, Any]]] = []
    for path, value in _paths(doc):
        where = show(path)
        if path:
            if isinstance(value, bool):
                out += [(f"{where} = {v!r}", _set(doc, path, v)) for v in BOOLS]
            elif isinstance(value, int):
                out += [(f"{where} = {v!r}", _set(doc, path, v)) for v in INTS]
            elif isinstance(value, str):
                out += [(f"{where} = {v!r:.40}", _set(doc, path, v)) for v in STRS]
            elif value is None:
                out += [(f"{where} = {v!r}", _set(doc, path, v)) for v in (0, "x", [], {})]
            elif isinstance(value, list):
                out += [(f"{where} = {v!r}", _set(doc, path, v)) for v in ({}, "x", None, [])]
                if value:
                    out.append((f"{where} first entry twice", _set(doc, path, [value[0], *value])))
            elif isinstance(value, dict):
                out += [(f"{where} = {v!r}", _set(doc, path, v)) for v in ([], None, "x")]
        if isinstance(value, dict):
            out.append((f"{where} + extra key", _set(doc, (*path, "evil_extra"), 1)))
            for k in value:
                if not path and k in SKIP:
                    continue
                out.append((f"{where} - key {k}", _delete(doc, (*path, k))))
    out += _semantic(doc)
    return out


ARABIC_DIGITS = str.maketrans("0123456789", "".join(chr(0x660 + i) for i in range(10)))


def lookalikes(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every string field as a value that only looks like it: with a trailing
    newline (`$` in a pattern matches before one) and with its digits
    Arabic-Indic (`\\d` and int() take them)."""
    out = []
    for path, value in _paths(doc):
        if path and isinstance(value, str):
            out.append((f"{show(path)} + newline", _set(doc, path, value + "\n")))
            if any(c.isdigit() for c in value):
                out.append((f"{show(path)} in Arabic-Indic digits",
                            _set(doc, path, value.translate(ARABIC_DIGITS))))
    return out


def _semantic(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Mutations a field-by-field walk does not make: references between fields."""
    out = []
    for ti, t in enumerate(doc.get("tables", [])):
        base = ("tables", ti)
        out.append((f"tables[{ti}].primary_key -> a missing column",
                    _set(doc, (*base, "primary_key"), ["no_such_column"])))
        out.append((f"tables[{ti}].schema_version -> 99", _set(doc, (*base, "schema_version"), 99)))
        out.append((f"tables[{ti}] listed twice", _set(doc, ("tables",), [*doc["tables"], t])))
        out.append((f"tables[{ti}].table_type -> user", _set(doc, (*base, "table_type"), "user")))
        for si, s in enumerate(t["schemas"]):
            for ci in range(len(s["columns"])):
                cp = (*base, "schemas", si, "columns", ci)
                for typ in ("BLOB2", "INT8", "int", "DECIMAL"):
                    out.append((f"{show(cp)}.type = {typ}", _set(doc, (*cp, "type"), typ)))
                out.append((f"{show(cp)}.params = [99, 200]",
                            _set(doc, (*cp, "params"), [99, 200])))
                out.append((f"{show(cp)}.name reserved", _set(doc, (*cp, "name"), "_user")))
                out.append((f"{show(cp)}.since = 1", _set(doc, (*cp, "since"), 1)))
                out.append((f"{show(cp)}.default = 'x' (has_default)",
                            _set(_set(doc, (*cp, "has_default"), True), (*cp, "default"), "zz")))
        for fi, f in enumerate(t["files"]):
            fp = (*base, "files", fi)
            out.append((f"{show(fp)} listed twice",
                        _set(doc, (*base, "files"), [*t["files"], f])))
            out.append((f"{show(fp)}.user_id = 'mallory'", _set(doc, (*fp, "user_id"), "mallory")))
            out.append((f"{show(fp)}.schema_version = 2", _set(doc, (*fp, "schema_version"), 2)))
    out.append(("max_seq = 2^63 - 1", _set(doc, ("max_seq",), 2**63 - 1)))
    # An object no file uses (missing from the target, totals kept consistent): VERIFY
    # would look for it and RESTORE would never read it, so they must agree to refuse.
    extra = {"oid": "0f" * 32, "size": 5}
    orphan = _set(doc, ("objects",), [*doc["objects"], extra])
    totals = orphan["totals"]
    orphan = _set(orphan, ("totals", "objects"), totals["objects"] + 1)
    orphan = _set(orphan, ("totals", "object_bytes"), totals["object_bytes"] + 5)
    out.append(("objects + an object no file uses", orphan))
    return out


# --- re-sealing ---------------------------------------------------------------------


def seal(doc: dict[str, Any], keys: Any, compress: bool) -> bytes:
    """Stored bytes of `doc` with a valid checksum, whatever its content: a plain
    manifest whole; with features a header and a compressed/encrypted body, as
    envelope.pack makes them (but tolerating any content)."""
    doc = {k: v for k, v in doc.items() if k not in ("manifest_sha256", "key")}
    features = doc.get("features")
    if not features:
        return canonical({**doc, "manifest_sha256": checksum(doc)}) + b"\n"
    header = {k: v for k, v in doc.items() if k in PUBLIC}
    objects = doc.get("objects")
    if isinstance(objects, list):
        header["objects"] = [{"oid": o.get("oid"), "size": o.get("size")} if isinstance(o, dict)
                             else o for o in objects]
    body = {k: v for k, v in doc.items() if k not in PUBLIC or k == "objects"}
    plain = canonical(body)
    form = Form("", ZSTD if compress else RAW, keys)
    backup_id = str(doc.get("backup_id"))
    stored = encode_bytes(plain, form, binding_for_manifest(backup_id))
    codecs = ([ZSTD] if compress else []) + (["aes-256-gcm"] if keys is not None else [])
    header["body"] = {"codec": "+".join(codecs), "data": base64.b64encode(stored).decode(),
                      "plain_size": len(plain)}
    if keys is not None:
        header["key"] = keys.key_id
    header["manifest_sha256"] = checksum(header)
    return canonical(header) + b"\n"


def write_case(root: Path, kind: str, name: str, backup_id: str, doc: dict[str, Any]) -> str:
    """A copy of the source target named `name` whose manifest is `doc`; returns
    the target string for SQL."""
    src = root / f"src-{kind}"
    compress = "zstd" in doc.get("features", []) if isinstance(doc.get("features"), list) else False
    keys = None
    if KINDS[kind][1]:
        repo = Repository(resolve_target(str(src), [str(root)], {}), passphrase=PASSPHRASE)
        repo.has_content("0" * 64)  # opens the backup's key (the passphrase's key file)
        keys = repo.store.write_keys
    data = seal(doc, keys, compress)
    if kind.endswith(".tar"):
        staging = root.parent / "unpacked" / name
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        with tarfile.open(src) as tar:
            # `filter` came in Python 3.11.4 (the project runs on any 3.11); the
            # archive is the one this harness just had Cairn write.
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(staging, **safe)  # noqa: S202
        (staging / "manifests" / f"{backup_id}.json").write_bytes(data)
        pack(str(staging), str(root / f"{name}.tar"), durable=False)
        shutil.rmtree(staging, ignore_errors=True)
        return f"{name}.tar"
    shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("locks", "tmp"))
    (root / name / "manifests" / f"{backup_id}.json").write_bytes(data)
    return name


# --- one case -------------------------------------------------------------------------


@dataclass
class Outcome:
    refused: bool
    statuses: tuple[int, int]


def _files(data_dir: Path) -> set[str]:
    return {str(p) for p in (data_dir / "files").rglob("*") if p.is_file()}


def _namespace(doc: dict[str, Any]) -> str:
    """The namespace to name in RESTORE DATABASE: the manifest's, when it is a
    plain name (a manifest re-labelled `_seq` is a backup of `_seq`: naming
    `app` would be refused as the wrong namespace, INVALID_ARGUMENT, not as a
    damaged backup), else `app`."""
    ns = doc.get("namespace")
    return ns if isinstance(ns, str) and re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", ns) else "app"


def _left(data_dir: Path, before: set[str]) -> set[str]:
    """Files that appeared in a table directory that did not exist `before` (a
    restore writes under new table uids; a background flush of an existing table,
    e.g. the control table, writes beside that table's files)."""
    dirs = {str(Path(p).parent) for p in before}
    return {p for p in _files(data_dir) - before if str(Path(p).parent) not in dirs}


async def run_case(client: Any, root: Path, data_dir: Path, kind: str, backup_id: str,
                   description: str, doc: dict[str, Any], n: int,
                   objects: dict[str, bytes] | None = None) -> Outcome:
    """Craft, VERIFY, RESTORE and check one mutated repository (with `objects`,
    oid -> bytes, planted in a directory target beside the copied ones)."""
    name = f"case-{n}"
    try:
        target = write_case(root, kind, name, backup_id, doc)
    except (ValueError, TypeError) as exc:  # not even JSON (canonical form refuses it)
        raise AssertionError(f"{description}: cannot be sealed: {exc}") from None
    for oid, data in (objects or {}).items():
        (root / name / "objects" / oid[:2]).mkdir(exist_ok=True)
        (root / name / "objects" / oid[:2] / oid).write_bytes(data)
    why = f"[{kind}] {description}"
    opts = f" WITH (encryption_passphrase = '{PASSPHRASE}')" if KINDS[kind][1] else ""
    v_status, v_body = await sql(client, f"VERIFY BACKUP '{backup_id}' IN '{target}'{opts}")
    assert v_status in (200, 422), (why, v_status, v_body)
    if v_status == 200:
        verdict = v_body["results"][0]["rows"][0]
        verify_valid = verdict["is_valid"]
    else:
        assert v_body["error"]["code"] == "BACKUP_INVALID", (why, v_body)
        verify_valid = False
    # Nothing buffered while the restore runs, so no background flush writes a
    # table's first file (in a new directory) into the comparison below.
    for ns in ("app", "control"):
        status, body = await sql(client, f"FLUSH ALL TABLES IN {ns}")
        assert status == 200, (why, f"FLUSH {ns}", body)
    before = _files(data_dir)
    dest = f"r{n}"
    r_opts = f", encryption_passphrase = '{PASSPHRASE}'" if KINDS[kind][1] else ""
    r_status, r_body = await sql(
        client, f"RESTORE DATABASE {_namespace(doc)} FROM '{target}' AS {dest} "
                f"WITH (backup_id = '{backup_id}'{r_opts})")
    assert r_status in (200, 422), (why, r_status, r_body)
    refused = r_status == 422
    assert verify_valid == (not refused), (why, v_body, r_body)
    if refused:
        assert r_body["error"]["code"] == "BACKUP_INVALID", (why, r_body)
        status, body = await sql(client, f"SHOW TABLES IN {dest}")
        assert status == 404, (why, "namespace installed by a refused restore", body)
        assert not _left(data_dir, before), (why, "files left by a refused restore")
        status, body = await sql(
            client, "SELECT status FROM system.jobs WHERE job_type = 'restore' "
                    f"AND namespace = '{dest}'")
        assert status == 200 and body["results"][0]["rows"] == [{"status": "failed"}], (why, body)
    else:
        status, body = await sql(client, f"SHOW TABLES IN {dest}")
        assert status == 200, (why, body)
        for t in body["results"][0]["rows"]:
            status, got = await sql(client, f"SELECT * FROM {dest}.{t['table_name']}", user="u1")
            assert status == 200, (why, t, got)
        status, body = await sql(client, f"DROP NAMESPACE {dest} CASCADE")
        assert status == 200, (why, body)
    status, body = await sql(client, f"INSERT INTO control.t VALUES ({n})")
    assert status == 200, (why, "control INSERT", body)
    for table in ("jobs", "tables", "backups", "namespaces", "table_schemas"):
        status, body = await sql(client, f"SELECT * FROM system.{table}")
        assert status == 200, (why, f"SELECT system.{table}", body)
    shutil.rmtree(root / target, ignore_errors=True)
    if (root / target).is_file():
        (root / target).unlink()
    return Outcome(refused, (v_status, r_status))


def all_cases(docs: dict[str, dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, description, mutated manifest) over every kind of target."""
    return [(kind, d, m) for kind, doc in docs.items() for d, m in mutations(doc)]


def dumps(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True)[:200]
