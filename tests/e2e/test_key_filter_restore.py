"""Restored files get key filters too (storage/keyfilter.py), built from the
restored files themselves on the first INSERT that needs them: over HTTP, a
key of any restored file is still refused, and a new key in the middle of
every file's key range touches no file."""

from __future__ import annotations

from typing import Any

from tests.helpers import ok, sql, state
from tests.server.test_metrics import scrape, value

CLIENTS = 16


def _key(client: int, i: int) -> int:
    return 10**12 + client * 10**7 + i


async def test_restored_files_refuse_their_keys(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE app; "
                     "CREATE TABLE app.t (id BIGINT PRIMARY KEY, v INT) WITH (flush_rows = 100000)")
    keys = []
    for f in range(4):  # four files, each with keys of all 16 clients
        ks = [_key(c, f * 2 + j) for c in range(CLIENTS) for j in range(2)]
        keys += ks
        await ok(client, "INSERT INTO app.t VALUES " + ", ".join(f"({k}, 1)" for k in ks))
        await ok(client, "FLUSH TABLE app.t")
    await ok(client, "BACKUP DATABASE app TO 'kf'")
    await ok(client, "RESTORE DATABASE app FROM 'kf' AS app2")
    engine = state(client).engine
    filters = engine.file_ranges.filters
    built = filters.stats.built
    for k in keys[::9]:  # keys of every restored file
        status, body = await sql(client, f"INSERT INTO app2.t VALUES ({k}, 2)")
        assert status == 409, body
        assert body["error"]["code"] == "ALREADY_EXISTS"
    assert filters.stats.built == built + 4  # one per restored file, from the file
    runs, skipped = sum(engine.duckdb_runs.values()), filters.stats.filter_skipped
    await ok(client, f"INSERT INTO app2.t VALUES ({_key(5, 500)}, 3)")
    assert sum(engine.duckdb_runs.values()) == runs
    assert filters.stats.filter_skipped == skipped + 4
    [res] = await ok(client, "SELECT count(*) AS n FROM app2.t")
    assert res["rows"] == [{"n": len(keys) + 1}]
    samples = await scrape(client)  # what /metrics shows of it
    assert value(samples, "cairn_key_check_files_total", outcome="filter_skipped") == \
        filters.stats.filter_skipped >= 4
    assert value(samples, "cairn_key_filter_bytes") == filters.bytes > 0


async def test_replayed_files_refuse_their_keys(client: Any) -> None:
    """A restore to a time writes the archived changes as new files (storage/
    archive/replay.py): their filters too are built from the files, and a
    key the replay wrote is refused."""
    from tests.archive.test_archiving import wait_shipped

    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v INT);"
                     f"INSERT INTO app.t VALUES ({_key(0, 0)}, 0), ({_key(15, 0)}, 0);"
                     "FLUSH TABLE app.t")
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms')")
    later = [_key(c, i) for c in range(CLIENTS) for i in range(1, 4)]
    await ok(client, "INSERT INTO app.t VALUES " + ", ".join(f"({k}, 1)" for k in later))
    await ok(client, "DELETE FROM app.t WHERE id = " + str(later[5]))
    await wait_shipped(client)
    [row] = (await ok(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'"))[0]["rows"][-1:]
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{row['end_time']}')")
    for k in (_key(0, 0), later[0], later[-1], later[20]):
        status, body = await sql(client, f"INSERT INTO r.t VALUES ({k}, 2)")
        assert status == 409, (k, body)
    await ok(client, f"INSERT INTO r.t VALUES ({later[5]}, 3)")  # deleted before the time
    await ok(client, f"INSERT INTO r.t VALUES ({_key(7, 100)}, 3)")  # new, inside every range
    [res] = await ok(client, "SELECT count(*) AS n FROM r.t")
    assert res["rows"] == [{"n": 2 + len(later) + 1}]
