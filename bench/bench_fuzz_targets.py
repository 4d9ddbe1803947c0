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
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fuzz_cases import (  # noqa: E402 (after the path)
    BASE,
    KINDS,
    OPTIONS,
    PASS,
    SYSTEM_TABLES,
    Case,
    Sql,
    World,
    case_list,
)


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
        cfg.pgwire.port = 0  # no PostgreSQL listener on the default port
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
