"""GET /metrics: Prometheus text that prometheus_client's own parser reads, counters
that move while a backup runs, gauges computed from the catalog at scrape time,
and the API's auth rules."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from server import faults, metrics
from server.app import CAIRN, create_app
from server.config import Config
from server.metrics import Metrics, statement_kind
from tests.helpers import Gate, fill, ok, rows, sql, wait_job


@pytest.fixture(autouse=True)
def no_faults() -> Iterator[None]:
    yield
    faults.clear()


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: Any, **headers: str) -> Samples:
    """{(sample name, sorted labels): value} from GET /metrics, parsed by
    prometheus_client's parser (which raises on text it cannot read)."""
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(await resp.text()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_counters_move_during_a_backup(client: Any) -> None:
    await fill(client, files=2)
    before = await scrape(client)
    assert value(before, "cairn_jobs_total", type="backup", status="completed") == 0
    assert ("cairn_backup_last_success_timestamp_seconds", (("namespace", "app"),)) not in before
    gate = Gate(client.server.app[CAIRN])
    faults.register("backup.before_object", gate)
    job_id = (await ok(client, "BACKUP DATABASE app TO 'nightly' WITH (detached = true)"))[0][
        "rows"][0]["job_id"]
    await gate.reach()
    during = await scrape(client)
    assert value(during, "cairn_jobs_running", type="backup", status="running") == 1
    assert value(during, "cairn_jobs_started_total", type="backup") == 1
    assert value(during, "cairn_jobs_total", type="backup", status="completed") == 0
    gate.opened.set()
    row = await wait_job(client, job_id)
    assert row["status"] == "completed"
    after = await scrape(client)
    assert value(after, "cairn_jobs_running", type="backup", status="running") == 0
    assert value(after, "cairn_jobs_total", type="backup", status="completed") == 1
    assert value(after, "cairn_job_duration_seconds_count", type="backup") == 1
    assert value(after, "cairn_job_bytes_total", type="backup") == row["result"]["bytes"] > 0
    assert value(after, "cairn_job_rows_total", type="backup") == 200
    assert value(after, "cairn_backup_bytes_written_total") == row["result"]["bytes_written"]
    age = value(after, "cairn_backup_age_seconds", namespace="app")
    assert 0 <= age < 60
    # The flushes `fill` made are counted too, and the requests by kind and outcome.
    assert value(after, "cairn_flushes_total") == 2
    assert value(after, "cairn_flushed_rows_total") == 200
    assert value(after, "cairn_requests_total", protocol="http", kind="backup", status="ok") == 1
    assert value(after, "cairn_request_duration_seconds_count", protocol="http",
                 kind="backup") == 1
    assert value(after, "cairn_process_resident_memory_bytes") > 10_000_000
    assert value(after, "cairn_rocksdb_keys") > 0
    assert value(after, "cairn_data_files", namespace="app") == 2


async def test_failed_and_cancelled_jobs_and_errors_are_counted(client: Any) -> None:
    await fill(client, files=1)
    status, _ = await sql(client, "VERIFY BACKUP 'nope' IN 'nightly'")
    assert status == 404
    status, _ = await sql(client, "SELEC 1")
    assert status == 400
    await ok(client, "INSERT INTO app.blobs VALUES (100000, 'x')")
    samples = await scrape(client)
    assert value(samples, "cairn_requests_total", protocol="http", kind="other",
                 status="PARSE_ERROR") == 1
    assert value(samples, "cairn_requests_total", protocol="http", kind="verify",
                 status="NOT_FOUND") == 1
    assert value(samples, "cairn_requests_total", protocol="http", kind="insert",
                 status="ok") == 2  # fill's and ours
    assert value(samples, "cairn_buffered_rows", namespace="app") == 1
    resp = await client.post("/api/sql", data=b"not json",
                             headers={"Content-Type": "application/json"})
    assert resp.status == 400
    samples = await scrape(client)
    assert value(samples, "cairn_requests_total", protocol="http", kind="none",
                 status="INVALID_REQUEST") == 1


async def test_backup_age_is_the_newest_backup_per_namespace(client: Any) -> None:
    await fill(client, ns="a", files=1)
    await fill(client, ns="b", files=1)
    await ok(client, "BACKUP DATABASE a TO 'x'")
    first = await scrape(client)
    time.sleep(0.3)
    await ok(client, "BACKUP DATABASE b TO 'x'")
    second = await scrape(client)
    age_a = value(second, "cairn_backup_age_seconds", namespace="a")
    age_b = value(second, "cairn_backup_age_seconds", namespace="b")
    # b's backup was taken at least 0.3 s after a's (however slow the machine:
    # a bound on age_b alone failed at 0.47 s in a loaded run).
    assert age_a >= 0.3 and age_b >= 0 and age_a - age_b >= 0.29, (age_a, age_b)
    assert age_a > value(first, "cairn_backup_age_seconds", namespace="a")
    # The archive lag family is there for dashboards, empty until archiving exists.
    resp = await client.get("/metrics")
    assert "# TYPE cairn_archive_lag_seconds gauge" in await resp.text()


async def test_backup_age_counts_whole_backups_of_the_namespace_as_it_is(client: Any) -> None:
    """Only a backup that holds the namespace as it is now makes it fresh: not a
    BACKUP TABLE of one empty table of it, nor a backup of a namespace of that
    name since dropped and created again. Without one, the age counts from the
    namespace's creation, as for one never backed up, so `age > 26h` fires."""
    await ok(client, "CREATE NAMESPACE shop; CREATE TABLE shop.small (k INT PRIMARY KEY); "
                     "CREATE TABLE shop.orders (k INT PRIMARY KEY, v TEXT); "
                     "INSERT INTO shop.orders VALUES (1, 'precious'); CREATE NAMESPACE never; "
                     "CREATE NAMESPACE app; CREATE TABLE app.t (k INT PRIMARY KEY); "
                     "INSERT INTO app.t VALUES (1)")
    await ok(client, "BACKUP DATABASE app TO 'x'")
    await ok(client, "DROP NAMESPACE app CASCADE; CREATE NAMESPACE app; "
                     "CREATE TABLE app.new_data (k INT PRIMARY KEY); "
                     "INSERT INTO app.new_data VALUES (42)")
    time.sleep(0.5)
    await ok(client, "BACKUP TABLE shop.small TO 'x'")
    samples = await scrape(client)
    for ns in ("shop", "never", "app"):
        assert ("cairn_backup_last_success_timestamp_seconds", (("namespace", ns),)) not in samples
        assert value(samples, "cairn_backup_age_seconds", namespace=ns) >= 0.5, ns
    # A backup set holds each namespace whole.
    await ok(client, "BACKUP ALL TO 'x'")
    samples = await scrape(client)
    for ns in ("shop", "never", "app"):
        assert 0 <= value(samples, "cairn_backup_age_seconds", namespace=ns) < 0.5, ns
        assert value(samples, "cairn_backup_last_success_timestamp_seconds", namespace=ns) > 0


async def test_metrics_auth_follows_the_api(aiohttp_client: Any, cairn_config: Config) -> None:
    cairn_config.auth.mode = "token"
    cairn_config.auth.tokens = [{"token": "adm-secret", "user": "root", "role": "admin"},
                                {"token": "usr-secret", "user": "alice", "role": "user"}]
    client = await aiohttp_client(create_app(cairn_config))
    resp = await client.get("/metrics")
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "UNAUTHENTICATED"
    resp = await client.get("/metrics", headers={"Authorization": "Bearer wrong"})
    assert resp.status == 401
    resp = await client.get("/metrics", headers={"Authorization": "Bearer usr-secret"})
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "PERMISSION_DENIED"
    samples = await scrape(client, Authorization="Bearer adm-secret")
    assert value(samples, "cairn_requests_total", protocol="http", kind="none",
                 status="UNAUTHENTICATED") == 0  # /metrics itself is not an SQL request


async def test_each_app_has_its_own_registry(aiohttp_client: Any, tmp_path: Any) -> None:
    clients = []
    for name in ("one", "two"):
        cfg = Config()
        cfg.storage.data_dir = str(tmp_path / name)
        cfg.backup.roots = [str(tmp_path / f"{name}-backups")]
        cfg.pgwire.port = 0  # no PostgreSQL listener on the default port
        clients.append(await aiohttp_client(create_app(cfg)))
    await ok(clients[0], "SELECT 1")
    await ok(clients[0], "SELECT 2")
    one, two = await scrape(clients[0]), await scrape(clients[1])
    assert value(one, "cairn_requests_total", protocol="http", kind="select", status="ok") == 2
    assert value(two, "cairn_requests_total", protocol="http", kind="select", status="ok") == 0


def test_observe_request_is_what_pgwire_calls() -> None:
    m = Metrics()
    m.observe_request("pgwire", statement_kind("select 1"), 0.002, "ok")
    m.observe_request("pgwire", statement_kind("BACKUP DATABASE a TO 'x'"), 1.5, "NOT_FOUND")
    families = {f.name: f for f in text_string_to_metric_families(m.render().decode())}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for s in families["cairn_requests"].samples}
    assert samples[("cairn_requests_total",
                    (("kind", "select"), ("protocol", "pgwire"), ("status", "ok")))] == 1
    assert samples[("cairn_requests_total",
                    (("kind", "backup"), ("protocol", "pgwire"), ("status", "NOT_FOUND")))] == 1


@pytest.mark.parametrize(("text", "kind"), [
    ("SELECT 1", "select"), ("  with x as (select 1) select * from x", "select"),
    ("-- note\n/* c */ INSERT INTO a.t VALUES (1)", "insert"), ("(SELECT 1)", "select"),
    ("-- a lone CR ends a comment\rINSERT INTO a.t VALUES (1)", "insert"),
    ("desc table a.t", "describe"), ("BACKUP DATABASE a TO 'x'", "backup"),
    ("RESTORE DATABASE a FROM 'x'", "restore"), ("EXPLAIN ANALYZE SELECT 1", "explain"),
    ("COPY a.t TO '/tmp/x'", "other"), ("", "other"), ("'; DROP", "other"),
    ("x" * 10_000, "other"),
])
def test_statement_kind_is_from_a_fixed_set(text: str, kind: str) -> None:
    assert statement_kind(text) == kind


# The pattern as first written: blanks and comments with backtracking; and
# the same with each comment closed at its first `*/`.
_BACKTRACKING = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*([A-Za-z]+)", re.DOTALL)
_FIRST_CLOSE = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*(?:(?!\*/).)*\*/)*([A-Za-z]+)",
                          re.DOTALL)


def test_statement_kind_reads_the_first_word_as_before() -> None:
    """Seeded texts of blanks, comments, words and other characters: where the
    possessive pattern finds a word, the backtracking one found the same; it
    finds what the backtracking one finds with comments closed at their first
    `*/` (the old one also read a comment on to a later `*/` when the text
    after it was no word: `/* a */ */ select`, not SQL)."""
    rng = random.Random(15)
    pieces = [" ", "\n", "\t", "  ", "-- c\n", "--\n", "/* c */", "/**/", "select", "INSERT",
              "with", "x", "1", "(", ";", "'", "-", "/", "*"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))
        old, closed = _BACKTRACKING.match(text), _FIRST_CLOSE.match(text)
        new = metrics._FIRST_WORD.match(text)
        assert (closed and closed.group(1)) == (new and new.group(1)), repr(text)
        if new is not None:
            assert old is not None and old.group(1) == new.group(1), repr(text)


@pytest.mark.parametrize("text", [" " * 100_000 + "1", "\n" * 100_000 + "(", "/**/" * 50_000 + "1",
                                  "--\n" * 50_000 + "1", "/* " * 50_000 + "1"])
def test_statement_kind_of_long_blanks_and_comments_is_quick(text: str) -> None:
    """Blanks or comments and then no word: the backtracking pattern tried every
    way of cutting them (24 blanks took 5 s on the event loop; these, forever)."""
    assert statement_kind(text) == ("select" if text.lstrip().startswith("(") else "other")


def test_newest_backups_decodes_two_fields_a_record_and_reads_any(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every scrape reads every backup record: it makes no `Backup` of a
    well-formed one (10,000 held the GIL ~130 ms a scrape), still reads one
    msgspec refuses (a NaN), and skips a time it cannot read, as before."""
    from catalog import Backup, Catalog, Namespace

    cat = Catalog(tmp_path / "catalog")
    try:
        for name in ("a", "b", "c"):
            cat.put(Namespace(name, created_at="2026-11-01T00:00:00.000Z"))

        def put(backup_id: str, ns: str, created: str, **kw: Any) -> None:
            kw.setdefault("job_id", "job-1")  # a BACKUP here made it: this server's
            cat.put(Backup(backup_id=backup_id, namespace=ns, target="t", created_at=created,
                           snapshot_at=created, **kw))

        put("bk-1", "a", "2026-12-01T00:00:00.000Z")
        put("bk-2", "a", "2026-12-03T00:00:00.000Z")
        put("bk-3", "b", "2026-12-02T00:00:00.000Z", rows=7)
        put("bk-4", "b", "not a time")
        put("bk-5", "c", "2026-12-04T00:00:00.000Z", bytes=float("nan"))  # type: ignore[arg-type]
        made: list[bytes] = []
        loads = Backup.loads.__func__  # type: ignore[attr-defined]
        monkeypatch.setattr(Backup, "loads", classmethod(
            lambda cls, raw: (made.append(raw), loads(cls, raw))[1]))
        got = metrics.newest_backups(cat)
        assert len(made) == 1 and b"NaN" in made[0]
        monkeypatch.undo()

        def at(stamp: str) -> float:
            return metrics._epoch(stamp) or 0.0

        assert got == {"a": at("2026-12-03T00:00:00.000Z"), "b": at("2026-12-02T00:00:00.000Z"),
                       "c": at("2026-12-04T00:00:00.000Z")}
    finally:
        cat.close()


def test_newest_backups_counts_only_what_restore_takes_as_this_servers(tmp_path: Any) -> None:
    """An attached backup counts only when its record says it is of this
    server's namespace (docs/backup-format.md "Whose backup"): not another
    server's database of that name, nor one whose record cannot tell (attached
    before records kept whose it was); a manifest from before manifests named
    their server, by its namespace's creation time."""
    from catalog import Backup, Catalog, Namespace

    cat = Catalog(tmp_path / "catalog")
    try:
        born = "2026-11-01T00:00:00.000Z"
        for name in ("mine", "theirs", "unknown", "older", "other_older"):
            cat.put(Namespace(name, created_at=born))
        me = cat.server_id()
        for ns, kw in (("mine", {"server": me, "namespace_created_at": born}),
                       ("theirs", {"server": "sv-" + "b" * 20, "namespace_created_at": born}),
                       ("unknown", {}),
                       ("older", {"namespace_created_at": born}),
                       ("other_older", {"namespace_created_at": "2026-11-02T00:00:00.000Z"})):
            cat.put(Backup(backup_id=f"bk-{ns}", namespace=ns, target="t",
                           created_at="2026-12-01T00:00:00.000Z",
                           snapshot_at="2026-12-01T00:00:00.000Z", **kw))
        assert set(metrics.newest_backups(cat)) == {"mine", "older"}
    finally:
        cat.close()


def _samples_for(samples: Samples, ns: str) -> tuple[float, float | None]:
    age = samples[("cairn_backup_age_seconds", (("namespace", ns),))]
    return age, samples.get(("cairn_backup_last_success_timestamp_seconds",
                             (("namespace", ns),)))


async def test_a_backup_dated_in_the_future_never_makes_the_age_fresh(
        client: Any, cairn_config: Config) -> None:
    """A backup stamped past the server's clock (taken while it ran a year
    ahead, or a manifest dated 2099 read by ATTACH BACKUPS) kept
    cairn_backup_age_seconds at 0 until then: the stale-backup alert could not
    fire. It does not count now: the age runs from the namespace's creation
    (or an older backup), and ATTACH says why in `error`."""
    import shutil
    from dataclasses import replace
    from pathlib import Path

    from catalog import Backup
    from tests.helpers import reseal

    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (k INT PRIMARY KEY); "
                     "INSERT INTO app.t VALUES (1); CREATE NAMESPACE clock; "
                     "CREATE TABLE clock.t (k INT PRIMARY KEY)")
    time.sleep(0.5)
    # (a) The clock ran a year ahead while BACKUP ran: its record says 2027.
    [done] = await rows(client, "BACKUP DATABASE clock TO 'nightly'")
    cat = client.server.app[CAIRN].catalog
    rec = cat.get(Backup, done["backup_id"])
    ahead = "2027-12-06T12:00:00.000Z"
    cat.put(replace(rec, created_at=ahead, snapshot_at=ahead))
    # (b) A copy of app's backup, its manifest dated 2099, is all that is left.
    [done] = await rows(client, "BACKUP DATABASE app TO 'src' WITH (compression = 'none')")
    root = Path(cairn_config.backup.roots[0])
    shutil.copytree(root / "src", root / "elsewhere")
    old = root / "elsewhere" / "manifests" / f"{done['backup_id']}.json"
    new_id = done["backup_id"][:-1] + ("y" if done["backup_id"][-1] != "y" else "z")

    def future(doc: dict[str, Any]) -> None:
        doc.update(backup_id=new_id, created_at="2099-01-01T00:00:00.000Z",
                   snapshot_at="2099-01-01T00:00:00.000Z")

    reseal(old, future)
    old.rename(old.with_name(f"{new_id}.json"))
    await ok(client, f"DROP BACKUP '{done['backup_id']}' IN 'src'")
    [row] = await rows(client, "ATTACH BACKUPS FROM 'elsewhere'")
    assert row["backup_id"] == new_id and row["status"] == "attached"
    samples = await scrape(client)
    for ns in ("app", "clock"):
        age, last = _samples_for(samples, ns)
        assert age >= 0.5 and last is None, (ns, age, last)
    assert "later than this server's clock" in row["error"], row
    # A backup dated within the skew (a clock a little ahead) counts: it is now.
    soon = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 60))
    cat.put(replace(rec, created_at=soon, snapshot_at=soon))
    age, last = _samples_for(await scrape(client), "clock")
    assert age == 0 and last == metrics._epoch(soon)


async def test_a_namespace_created_in_the_future_is_of_unknown_age(client: Any) -> None:
    """A namespace whose record says it was created past the clock (created, or
    restored from a backup made, while a clock ran ahead) read 0 (every backup
    was "before" it, and its own age counted from then): now its backups count,
    and without one the age is +Inf, so the alert fires."""
    from dataclasses import replace

    from catalog import Namespace

    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (k INT PRIMARY KEY); "
                     "CREATE NAMESPACE never")
    cat = client.server.app[CAIRN].catalog
    for name in ("app", "never"):
        cat.put(replace(cat.get(Namespace, name),
                                        created_at="2027-12-06T12:00:00.000Z"))
    samples = await scrape(client)
    assert _samples_for(samples, "never") == (float("inf"), None)
    assert _samples_for(samples, "app") == (float("inf"), None)
    await ok(client, "BACKUP DATABASE app TO 'x'")
    age, last = _samples_for(await scrape(client), "app")
    assert 0 <= age < 60 and last is not None
