"""A value named in an error message is written as SQL writes it: `NULL`,
`TRUE`, `0.000000015`, `'it''s'`, `DATE '2020-01-01'`. Messages showed
Python's forms: "cannot take None", "needs a whole number, not 1.5E-8",
`True`, `"it's"`, `b'\\x01'`, `datetime.date(2020, 1, 1)`, "must be a str"."""

from __future__ import annotations

from typing import Any

from tests.helpers import err, ok


async def test_a_value_a_column_refuses_is_named_in_sql(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (k BIGINT PRIMARY KEY, "
                     "s TEXT(3), b BOOLEAN, i INT NOT NULL DEFAULT 1)")
    cases = {
        "INSERT INTO app.t (k, i) VALUES (1, NULL)": "is NOT NULL and cannot take NULL",
        "INSERT INTO app.t (k) VALUES (0.000000015)": "needs a whole number, not 0.000000015",
        "INSERT INTO app.t (k) VALUES (true)": "cannot take TRUE",
        "INSERT INTO app.t (k, s) VALUES (2, 'it''s long')":
            "is longer than 3 characters: 'it''s long'",
        "INSERT INTO app.t (k, s) VALUES (3, '\\x01'::BLOB)": "cannot take '\\x01'::BLOB",
        "INSERT INTO app.t (k, b) VALUES (4, DATE '2020-01-01')": "cannot take DATE '2020-01-01'",
        "INSERT INTO app.t (k, b) VALUES (5, [TIME '10:00', NULL])":
            "cannot take [TIME '10:00:00', NULL]",
    }
    for text, said in cases.items():
        assert (await err(client, text, "INVALID_ARGUMENT")).endswith(said), text


async def test_an_option_value_is_named_in_sql(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (k BIGINT PRIMARY KEY)")
    cases = {
        "CREATE STREAM TABLE app.s (k INT PRIMARY KEY) WITH (ttl_seconds = 0.000000015)":
            "option 'ttl_seconds' must be positive, not 0.000000015",
        "CREATE STREAM TABLE app.s (k INT PRIMARY KEY) WITH (ttl_seconds = NULL)":
            "option 'ttl_seconds' must be a number, not NULL",
        "BACKUP DATABASE app TO 'x' WITH (label = NULL)":
            "option 'label' must be a string, not NULL",
        "BACKUP DATABASE app TO 'x' WITH (keep_last = 0.000000015)":
            "option 'keep_last' must be a whole number, not 0.000000015",
        "BACKUP DATABASE app TO 'x' WITH (detached = 'yes')":
            "option 'detached' must be a boolean (TRUE or FALSE), not 'yes'",
    }
    for text, said in cases.items():
        assert await err(client, text, "INVALID_ARGUMENT") == said, text
