"""Names fold A-Z only (storage/names.py), as DuckDB and PostgreSQL fold them.
`str.lower()` made U+212A KELVIN SIGN an ASCII 'k': `DELETE FROM kelvin.\u212a`
deleted from kelvin.k, `INSERT INTO kelvin.c (id, \u212a)` wrote column k and
`SELECT * FROM \u212aELVIN.\u212a` read kelvin.k, while CREATE TABLE refused
the name. Now such a name is no name: the write is INVALID_ARGUMENT by the
name rule (or the column is unknown), a read is NOT_FOUND, nothing changes."""

from __future__ import annotations

import io
import sys
from typing import Any

from console.client import Client
from console.output import Printer
from console.shell import Shell
from storage.names import fold
from tests.helpers import err, ok, rows

K = "\u212a"  # KELVIN SIGN: str.lower() gives ASCII 'k'
I_DOT = "\u0130"  # LATIN CAPITAL LETTER I WITH DOT ABOVE: 'i' and a combining dot


def test_only_a_to_z_fold() -> None:
    assert fold("App_Notes9") == "app_notes9"
    assert fold(f"{K}ELVIN") == f"{K}elvin" and fold(I_DOT) == I_DOT
    # every character whose str.lower() holds an ASCII letter keeps itself
    for ch in map(chr, range(128, sys.maxunicode + 1)):
        if any(c.isascii() for c in ch.lower()):
            assert fold(ch) == ch, hex(ord(ch))


def test_the_console_use_folds_a_to_z_only() -> None:
    """`\\use \u212aELVIN` in `cairn sql` set namespace kelvin before it reached the server."""
    shell = Shell(Client("http://127.0.0.1:9"), Printer("table", io.StringIO(), io.StringIO()))
    shell.run_input(f"\\use {K}ELVIN")
    assert shell.client.namespace == f"{K}elvin"
    shell.run_input("\\use App_1")
    assert shell.client.namespace == "app_1"


async def kelvin(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE kelvin; CREATE TABLE kelvin.k (id INT PRIMARY KEY, v INT);"
                     "INSERT INTO kelvin.k VALUES (1, 1), (2, 2);"
                     "CREATE TABLE kelvin.c (id INT PRIMARY KEY, k INT);"
                     "INSERT INTO kelvin.c VALUES (1, 5)")


async def unchanged(client: Any) -> None:
    assert await rows(client, "SELECT id, v FROM kelvin.k ORDER BY id") == [
        {"id": 1, "v": 1}, {"id": 2, "v": 2}]
    assert await rows(client, "SELECT id, k FROM kelvin.c ORDER BY id") == [{"id": 1, "k": 5}]


async def test_a_homoglyph_table_or_namespace_is_no_name(client: Any) -> None:
    await kelvin(client)
    for sql in [f"DELETE FROM kelvin.{K} WHERE id = 1", f'UPDATE kelvin."{K}" SET v = 99',
                f"INSERT INTO kelvin.{K} VALUES (3, 3)", f"INSERT INTO {K}ELVIN.k VALUES (3, 3)",
                f"DELETE FROM {K}elvin.k", f"DELETE FROM kelvin.{I_DOT}"]:
        message = await err(client, sql, "INVALID_ARGUMENT")
        assert "[A-Za-z_][A-Za-z0-9_]*" in message, (sql, message)
    message = await err(client, f"DELETE FROM {K}", "INVALID_ARGUMENT", namespace="kelvin")
    assert "bad table name" in message
    for sql in [f"SELECT * FROM kelvin.{K}", f"SELECT * FROM {K}ELVIN.{K} ORDER BY id",
                f"SELECT * FROM {K}elvin.k",
                f"DELETE FROM kelvin.k WHERE id IN (SELECT id FROM kelvin.{K})"]:
        await err(client, sql, "NOT_FOUND")
    await err(client, f"SELECT * FROM {K}", "NOT_FOUND", namespace="kelvin")
    await unchanged(client)


async def test_a_homoglyph_column_is_no_column(client: Any) -> None:
    await kelvin(client)
    for sql in [f"INSERT INTO kelvin.c (id, {K}) VALUES (2, 6)",
                f"UPDATE kelvin.c SET {K} = 9 WHERE id = 1",
                f'INSERT INTO kelvin.c BY NAME SELECT 2 AS id, 6 AS "{K}"',
                f"DELETE FROM kelvin.c WHERE {K} = 5", f"SELECT {K} FROM kelvin.c",
                # a table alias too, on the point-lookup path
                f"SELECT * FROM kelvin.k AS k WHERE {K}.id = 1"]:
        await err(client, sql, "INVALID_ARGUMENT")
    await unchanged(client)
