"""RESTORE's `as_of` is read in one form (storage/timetext.py INSTANT_FORM).
Python 3.11's `fromisoformat` takes any character between date and time, so
'2026-12-06+05:30' (a date at UTC+05:30) restored to 05:30 UTC and said
completed; '_' as the separator, a trailing NUL, offsets with seconds or a
fraction (dropped) went through too."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from tests.helpers import err, ok, rows

from .test_archiving import wait_shipped


async def namespaces(client: Any) -> set[str]:
    return {n["namespace"] for n in await rows(client, "SHOW NAMESPACES")}


async def archived_with_a_middle(client: Any) -> datetime:
    """app.t archived to 'arch': row 1, then the returned moment, then row 2."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms')")
    await ok(client, "INSERT INTO app.t VALUES (1)")
    await asyncio.sleep(0.05)
    middle = datetime.now(UTC)
    await asyncio.sleep(0.05)
    await ok(client, "INSERT INTO app.t VALUES (2)")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    return middle


async def test_a_loose_time_is_refused_and_restores_nothing(client: Any) -> None:
    middle = await archived_with_a_middle(client)
    day, clock = middle.date().isoformat(), middle.strftime("%H:%M:%S.%f")
    loose = [
        f"{day}+{clock}",  # a date at an offset (xs:date) read as the clock time
        f"{day}_{clock}",
        f"{day}t{clock}Z",
        f"{day}T{clock}Z\x00",
        f"{day}T{clock}+00:00:00",  # offset with seconds
        f"{day}T{clock}+00:00:00.000001",  # and a fraction, dropped
        f"{day}T{clock}0Z",  # seven digits of fraction
        f"{day}T{middle:%H:%M:%S},{middle:%f}Z",
        f"{day}T{middle:%H}",  # an hour alone
        f"{day}T{clock}+05:60",
        f"{day}Z",
        f" {day}T{clock}Z",
        f"{day}T{clock}Z ",
    ]
    before = await namespaces(client)
    for i, text in enumerate(loose):
        message = await err(client, f"RESTORE DATABASE app FROM 'arch' AS r{i} "
                                    f"WITH (as_of = '{text}')", "INVALID_ARGUMENT")
        assert repr(text) in message and "YYYY-MM-DD" in message, (text, message)
    # the plain-backup choosers (RESTORE TABLE, RESTORE ALL) read it alike
    await ok(client, "BACKUP DATABASE app TO 'plain'")
    await err(client, f"RESTORE TABLE app.t FROM 'plain' AS app.t2 WITH (as_of = '{day}+{clock}')",
              "INVALID_ARGUMENT")
    await err(client, f"RESTORE ALL FROM 'plain' WITH (as_of = '{day}_{clock}')",
              "INVALID_ARGUMENT")
    assert await namespaces(client) == before
    assert not [t for t in await rows(client, "SHOW TABLES IN app") if t["table_name"] == "t2"]


async def test_every_documented_form_restores_the_time_it_names(client: Any) -> None:
    middle = await archived_with_a_middle(client)
    day, clock = middle.date().isoformat(), middle.strftime("%H:%M:%S.%f")
    east = middle.astimezone(timezone(timedelta(hours=5, minutes=30)))
    west = middle.astimezone(timezone(-timedelta(hours=3)))
    good = [f"{day}T{clock}Z", f"{day} {clock}Z", f"{day}T{clock}", f"{day} {clock}",
            f"{day}T{clock}+00:00", east.isoformat(), west.isoformat(),
            # as psql shows a timestamptz (SHOW RESTORE POINTS' end_time over pgwire)
            f"{day} {clock}+00", west.isoformat()[:-3], east.isoformat().replace("+05:30", "+0530"),
            f"{day}T{middle:%H:%M:%S}.{middle.microsecond // 1000:03d}Z"]
    for i, text in enumerate(good):
        await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r{i} WITH (as_of = '{text}')")
        assert await rows(client, f"SELECT id FROM r{i}.t ORDER BY id") == [{"id": 1}], text
    # without archived changes: a date alone is its midnight, HH:MM needs no seconds
    await ok(client, "BACKUP DATABASE app TO 'plain'")
    for i, text in enumerate(["2999-01-01", "2999-01-01 00:00", "2999-01-01T00:00-05:00"]):
        await ok(client, f"RESTORE DATABASE app FROM 'plain' AS p{i} WITH (as_of = '{text}')")
        assert await rows(client, f"SELECT id FROM p{i}.t ORDER BY id") == [{"id": 1}, {"id": 2}]
    await err(client, "RESTORE DATABASE app FROM 'plain' AS p9 WITH (as_of = '2000-01-01')",
              "NOT_FOUND")


async def test_a_table_restored_to_a_time_says_it_is_the_backups_state(client: Any) -> None:
    """RESTORE TABLE takes the newest backup at or before `as_of` and replays
    no archived change (docs/sql.md): from an archive's target that is the
    base START ARCHIVING took, older than `as_of`. Its answer said only
    "restored from backup '…'", as if the table were as of `as_of`; it now
    names the backup's time and that archived changes were not replayed."""
    middle = await archived_with_a_middle(client)
    (base,) = await rows(client, "SHOW BACKUPS IN 'arch'")
    when = middle.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    (done,) = await ok(client, f"RESTORE TABLE app.t FROM 'arch' AS app.t2 WITH (as_of = '{when}')")
    assert await rows(client, "SELECT id FROM app.t2") == []  # the base's rows, not row 1
    assert done["rows"][0]["backup_id"] == base["backup_id"]
    assert f"taken at {base['snapshot_at']}" in done["message"], done["message"]
    assert "archived changes are not replayed" in done["message"], done["message"]
    (by_id,) = await ok(client, f"RESTORE TABLE app.t FROM 'arch' AS app.t3 WITH "
                                f"(backup_id = '{base['backup_id']}')")
    assert by_id["message"] == f"Table 'app.t3' restored from backup '{base['backup_id']}'"
