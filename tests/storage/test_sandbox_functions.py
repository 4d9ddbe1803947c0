"""Every DuckDB function whose name says it may read SQL from a string,
settings, files, logs or secrets is denied, unless reviewed here as harmless:
a function DuckDB adds in an upgrade fails this test until someone looks.
`json_serialize_plan('SELECT ... FROM read_parquet(...)', optimize := true)`
was found by trying: it binds and folds the SQL in its string out of the
allow-list's sight (another user's file statistics, settings, unbounded
values). txid_current() and DuckDB's other counters of the whole server (the
transaction, query and connection ids) moved with other users' queries."""

from __future__ import annotations

import re

import duckdb

from storage import sandbox

RISKY = re.compile(r"sql|plan|query|serial|setting|secret|file|dir|path|env|extension|log|"
                   r"profil|variable|checkpoint|attach|copy|export|import|scan|read|write|glob|"
                   r"http|s3|pragma|macro|optimi|__internal|txid|transaction|_id$", re.I)
# Reviewed: they compute on their arguments only (or name what anyone may know).
HARMLESS = frozenset({
    "json_extract_path", "json_extract_path_text", "log", "log10", "log2",
    "parse_dirname", "parse_dirpath", "parse_filename", "parse_path", "path_join",
    "formatreadabledecimalsize", "formatreadablesize", "uuid_extract_version",
    "in_search_path", "has_database_privilege", "has_schema_privilege", "has_table_privilege",
    "has_tablespace_privilege", "json_copy_strftime_if_date", "json_copy_strftime_if_timestamp",
    "regexp_split_to_table", "current_catalog", "transaction_timestamp",
    "collate_id", "collate_id_id", "icu_collate_id", "icu_collate_id_id",
})


def test_risky_functions_are_denied() -> None:
    con = duckdb.connect()
    names = {n.lower() for (n,) in con.execute(
        "SELECT DISTINCT function_name FROM duckdb_functions() "
        "WHERE function_type IN ('scalar', 'aggregate', 'macro')").fetchall()}
    con.close()
    assert {"json_serialize_plan", "current_setting", "getvariable", "txid_current"} <= names
    loose = sorted(n for n in names if RISKY.search(n) and n not in HARMLESS
                   and not sandbox.denied_function(n))
    assert loose == [], f"review these DuckDB functions: deny them, or list them harmless: {loose}"


def test_a_cte_name_folds_as_duckdb_folds_it() -> None:
    assert sandbox.fold("DuckDB_Databases") == "duckdb_databases"
    assert sandbox.fold("duc\u212adb_databases") != "duckdb_databases"  # lower() made it so
    assert sandbox.fold("Ä") == "Ä"  # DuckDB lowers ASCII only
