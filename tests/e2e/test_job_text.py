"""What a job's row holds of the statement that started it: the statement
printed back from its parse, bounded, never the text as sent.

A role-user's `FLUSH TABLE app.t /* 9 MiB */` stored its raw text in
system.jobs: eleven of them made the data directory 400 MB, the web console's
1 s poll of system.jobs 66 MB, and every other client's `SELECT 1` wait a
second behind them."""

from __future__ import annotations

from typing import Any

import pytest

from catalog import Job
from catalog.records import JOB_TEXT_MAX
from server.app import create_app
from server.config import Config
from tests.helpers import ok, rows, state

COMMENT = "/*" + "A" * 1_000_000 + "*/"


@pytest.fixture
async def role_client(aiohttp_client: Any, cairn_config: Config) -> Any:
    cairn_config.auth.mode = "token"
    cairn_config.auth.tokens = [
        {"token": "root-secret", "user": "root", "role": "admin"},
        {"token": "alice-secret", "user": "alice", "role": "user"},
    ]
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE app; CREATE USER TABLE app.u (k INT PRIMARY KEY, v TEXT); "
                     "CREATE TABLE app.t (k INT PRIMARY KEY)", token="root-secret")
    await ok(client, "INSERT INTO app.u VALUES (1, 'a')", token="alice-secret")
    return client


async def test_a_role_users_flush_records_the_statement_not_its_comment(role_client: Any) -> None:
    await ok(role_client, f"FLUSH TABLE app.u {COMMENT}", token="alice-secret")
    await ok(role_client, f"{COMMENT} flush all tables in app -- and more", token="alice-secret")
    got = await rows(role_client, "SELECT statement, user_id FROM system.jobs "
                                  "WHERE job_type = 'flush' ORDER BY job_id", token="alice-secret")
    assert got == [{"statement": "FLUSH TABLE app.u", "user_id": "alice"},
                   {"statement": "FLUSH ALL TABLES IN app", "user_id": "alice"}]
    stored = [j for j in state(role_client).catalog.scan(Job) if j.job_type == "flush"]
    assert all(len(j.dumps()) < 2000 for j in stored), [len(j.dumps()) for j in stored]


async def test_every_job_rows_statement_and_error_are_bounded(role_client: Any) -> None:
    """Whatever path writes a job's row, its statement and error_message keep at most
    JOB_TEXT_MAX characters, the cut marked with the length it had."""
    cairn = state(role_client)
    huge = "B" * 3_000_000
    job = Job("job-huge", "flush", status="failed", statement=f"FLUSH TABLE app.t -- {huge}",
              error_message=f"it broke: {huge}")
    cairn.catalog.put(job)
    job.error_message = f"later: {huge}"  # set after it was made, stored again
    cairn.catalog.put(job)
    (row,) = await rows(role_client, "SELECT statement, error_message FROM system.jobs "
                                     "WHERE job_id = 'job-huge'", token="root-secret")
    for text, start in ((row["statement"], "FLUSH TABLE app.t -- BBB"),
                        (row["error_message"], "later: BBB")):
        assert len(text) == JOB_TEXT_MAX and text.startswith(start)
        assert text.endswith(f"… [cut: {len(start) - 3 + len(huge)} characters in all]")
    assert len(cairn.catalog.get(Job, "job-huge").dumps()) < 3 * JOB_TEXT_MAX
