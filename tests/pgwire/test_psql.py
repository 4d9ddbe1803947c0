"""psql and pgbench (Debian's postgresql-client) against a real `cairn serve`."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.pgwire.conftest import PgServer

SCRIPT = """\
CREATE NAMESPACE shop;
CREATE TABLE shop.customers (id BIGINT PRIMARY KEY, name TEXT NOT NULL, city TEXT);
CREATE TABLE shop.orders (id BIGINT PRIMARY KEY, customer_id BIGINT, amount DECIMAL(10,2),
                          placed TIMESTAMP);
INSERT INTO shop.customers VALUES (1, 'Ada', 'London'), (2, 'Grace', 'New York');
INSERT INTO shop.orders VALUES (10, 1, 12.50, '2026-11-20 10:00:00'),
                               (11, 1, 7.25, '2026-11-21 11:30:00'),
                               (12, 2, 99.99, '2026-11-22 12:45:00');
SELECT c.name, count(*) AS orders, sum(o.amount) AS total
  FROM shop.orders o JOIN shop.customers c ON c.id = o.customer_id
 GROUP BY c.name ORDER BY c.name;
BACKUP DATABASE shop TO 'psql-target';
DELETE FROM shop.orders WHERE id = 12;
RESTORE DATABASE shop FROM 'psql-target' AS shop_restored;
SELECT id, amount FROM shop_restored.orders ORDER BY id;
SELECT job_type, status, namespace FROM system.jobs ORDER BY created_at;
"""


def psql(pg: PgServer, *args: str, user: str = "alice", check: bool = True,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["psql", pg.dsn(user), "-X", "-v", "ON_ERROR_STOP=1", *args],
        check=False, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PGCONNECT_TIMEOUT": "10", **(env or {})},
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_script_creates_queries_backs_up_and_restores(pg: PgServer, tmp_path: Path) -> None:
    script = tmp_path / "script.sql"
    script.write_text(SCRIPT)
    out = psql(pg, "-f", str(script)).stdout
    assert re.search(r"Ada\s+\|\s+2\s+\|\s+19\.75", out), out
    assert re.search(r"Grace\s+\|\s+1\s+\|\s+99\.99", out), out
    # the restored copy still has the order deleted after the backup
    assert re.search(r"12 \|\s+99\.99", out), out
    jobs = re.findall(r"(backup|restore)\s+\|\s+(\w+)\s+\|\s+(\w+)", out)
    assert ("backup", "completed", "shop") in jobs
    assert ("restore", "completed", "shop_restored") in jobs
    # progress notices arrive on stderr while jobs run
    assert "NOTICE:" in psql(pg, "-c", "BACKUP DATABASE shop TO 'psql-target-2'").stderr


def test_describe_commands(pg: PgServer) -> None:
    psql(pg, "-c", "CREATE NAMESPACE IF NOT EXISTS meta",
         "-c", "CREATE TABLE IF NOT EXISTS meta.items (id BIGINT PRIMARY KEY,"
               " label TEXT(20) NOT NULL,"
               " price DECIMAL(12,3) DEFAULT 1.5, doc JSON, seen TIMESTAMP, blob BYTES)")
    dn = psql(pg, "-c", r"\dn").stdout
    assert re.search(r"^\s*meta\s+\|", dn, re.MULTILINE), dn
    assert re.search(r"^\s*system\s+\|", dn, re.MULTILINE), dn
    dt = psql(pg, "-c", r"\dt meta.*").stdout
    assert re.search(r"meta\s+\|\s+items\s+\|\s+table", dt), dt
    d = psql(pg, "-c", r"\d meta.items").stdout
    assert 'Table "meta.items"' in d
    expected = [("id", "bigint", "not null"), ("label", r"character varying\(20\)", "not null"),
                ("price", r"numeric\(12,3\)", ""), ("doc", "json", ""),
                ("seen", "timestamp with time zone", ""), ("blob", "bytea", "")]
    for name, typ, nullable in expected:
        line = rf"^\s*{name}\s+\|\s+{typ}\s+\|\s*\|\s*{nullable}"
        assert re.search(line, d, re.MULTILINE), (name, d)
    assert re.search(r"price .*\| 1\.5", d), d
    assert '"items_pkey" PRIMARY KEY, btree (id)' in d, d
    all_tables = psql(pg, "-c", r"\dt").stdout
    assert re.search(r"meta\s+\|\s+items", all_tables), all_tables
    assert "connected to database" in psql(pg, "-c", r"\conninfo").stdout


def test_describe_plus_and_database_list(pg: PgServer) -> None:
    """psql 15's \\d+ said "Did not find any relation with OID …" and \\dt+
    'Did not find any relation named "…"' (`c.reloptions || array(select … from
    pg_catalog.unnest(…))`, `pg_catalog.pg_size_pretty(pg_catalog.pg_table_size(…))`),
    and \\l listed no database (pg_database had no daticulocale): a catalog
    query that fails is answered with no rows."""
    psql(pg, "-c", "CREATE NAMESPACE IF NOT EXISTS plus",
         "-c", "CREATE TABLE IF NOT EXISTS plus.t (id BIGINT PRIMARY KEY, v TEXT)")
    d = psql(pg, "-c", r"\d+ plus.t").stdout
    assert 'Table "plus.t"' in d, d
    assert re.search(r"^\s*id\s+\|\s+bigint\s+\|\s*\|\s*not null\s*\|\s*\|\s*plain\s", d,
                     re.MULTILINE), d
    assert re.search(r"^\s*v\s+\|\s+text\s+\|.*\|\s*extended\s", d, re.MULTILINE), d
    assert '"t_pkey" PRIMARY KEY, btree (id)' in d, d
    dt = psql(pg, "-c", r"\dt+ plus.*").stdout
    assert re.search(r"plus\s+\|\s+t\s+\|\s+table\s+\|\s+cairn\s+\|\s+permanent", dt), dt
    for command in (r"\l", r"\l+"):
        listed = psql(pg, "-c", command).stdout
        assert re.search(r"^\s*cairn\s+\|\s+cairn\s+\|\s+UTF8\s", listed, re.MULTILINE), listed
    assert "pg_default" in psql(pg, "-c", r"\l+").stdout


def test_tablespace_list_plus(pg: PgServer) -> None:
    """psql's \\db listed pg_default and \\db+ listed nothing: its query asks
    pg_tablespace_size(oid), which was not answered, and a catalog query that
    fails is answered with no rows."""
    for command in (r"\db", r"\db+"):
        listed = psql(pg, "-c", command).stdout
        assert re.search(r"^\s*pg_default\s+\|\s+cairn\s+\|", listed, re.MULTILINE), listed
    assert re.search(r"pg_default\s+\|.*\|\s+0 bytes\s+\|", psql(pg, "-c", r"\db+").stdout)


def test_show_function_of_one_cairn_has_not_says_so(pg: PgServer) -> None:
    """psql's \\sf and \\ef look the function up by `'f'::regproc::oid`: it was
    0, and the next query refused "function pg_get_functiondef() is not
    allowed: queries cannot touch files…". PostgreSQL's answer is 42883."""
    for command in (r"\sf no_such_fn", r"\sf public.no_such_fn(int)"):
        proc = psql(pg, "-c", command, check=False)
        assert proc.returncode != 0 and 'function "' in proc.stderr, proc.stderr
        assert "does not exist" in proc.stderr and "not allowed" not in proc.stderr, proc.stderr


def test_describe_shows_text_defaults_as_sql(pg: PgServer) -> None:
    """psql's \\d showed a TEXT default as Python's repr(): `"it's"`, a
    backslash doubled."""
    psql(pg, "-c", "CREATE NAMESPACE IF NOT EXISTS defs",
         "-c", "CREATE TABLE IF NOT EXISTS defs.t (k INT PRIMARY KEY, a TEXT DEFAULT 'it''s',"
               " b TEXT DEFAULT 'C:\\dir', c BOOLEAN DEFAULT true)")
    d = psql(pg, "-c", r"\d defs.t").stdout
    assert re.search(r"^\s*a\s+\|.*\| 'it''s'$", d, re.MULTILINE), d
    assert re.search(r"^\s*b\s+\|.*\| 'C:\\dir'$", d, re.MULTILINE), d
    assert re.search(r"^\s*c\s+\|.*\| true$", d, re.MULTILINE), d


def test_error_sqlstate_and_position(pg: PgServer) -> None:
    bad = psql(pg, "-v", "VERBOSITY=verbose", "-c", "SELECT 1 FROM system.jobs WHERE (",
               check=False)
    assert bad.returncode != 0
    assert "ERROR:  42601" in bad.stderr, bad.stderr
    line = re.search(r"LINE 1: (.*)\n(\s*)\^", bad.stderr)
    assert line is not None, bad.stderr
    caret = len(line.group(2)) - len("LINE 1: ")
    assert line.group(1)[caret] == "(", bad.stderr
    missing = psql(pg, "-v", "VERBOSITY=verbose", "-c", "SELECT * FROM nowhere.t", check=False)
    assert "3F000" in missing.stderr or "42P01" in missing.stderr, missing.stderr


def test_multi_statement_keeps_earlier_effects(pg: PgServer) -> None:
    psql(pg, "-c", "CREATE NAMESPACE IF NOT EXISTS multi; "
                   "CREATE TABLE IF NOT EXISTS multi.t (id BIGINT PRIMARY KEY)")
    bad = psql(pg, "-c", "INSERT INTO multi.t VALUES (1); SELEC 2; INSERT INTO multi.t VALUES (3)",
               check=False)
    assert "42601" in bad.stderr or "syntax" in bad.stderr.lower() or "unexpected" in bad.stderr
    out = psql(pg, "-At", "-c", "SELECT id FROM multi.t ORDER BY id").stdout.split()
    assert out == ["1"]


def test_pgbench_custom_script_has_no_failures(pg: PgServer, tmp_path: Path) -> None:
    psql(pg, "-c", "CREATE NAMESPACE IF NOT EXISTS bench",
         "-c", "CREATE TABLE IF NOT EXISTS bench.acct (id BIGINT PRIMARY KEY, balance BIGINT)",
         "-c", "INSERT INTO bench.acct SELECT range, range * 10 FROM range(1, 1001)",
         "-c", "CREATE TABLE IF NOT EXISTS bench.hist (aid BIGINT, delta BIGINT)")
    script = tmp_path / "bench.sql"
    script.write_text(
        "\\set aid random(1, 1000)\n\\set delta random(-500, 500)\n"
        "SELECT balance FROM bench.acct WHERE id = :aid;\n"
        "INSERT INTO bench.hist (aid, delta) VALUES (:aid, :delta);\n")
    proc = subprocess.run(
        ["pgbench", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "bench", "-n", "-f", str(script),
         "-c", "8", "-j", "2", "-T", "3", "cairn"],
        check=False, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    done = int(re.search(r"actually processed: (\d+)", proc.stdout).group(1))  # type: ignore[union-attr]
    failed = int(re.search(r"failed transactions: (\d+)", proc.stdout).group(1))  # type: ignore[union-attr]
    assert done > 0 and failed == 0, proc.stdout
    count = psql(pg, "-At", "-c", "SELECT count(*) FROM bench.hist").stdout.strip()
    assert int(count) == done


def test_catalog_queries_of_drivers_and_gui_clients(pg: PgServer) -> None:
    import psycopg

    psql(pg, "-c", "CREATE NAMESPACE IF NOT EXISTS gui",
         "-c", "CREATE TABLE IF NOT EXISTS gui.things (id BIGINT PRIMARY KEY, label TEXT NOT NULL, "
               "price DECIMAL(8,2))")
    with psycopg.connect(pg.dsn("gina"), autocommit=True) as conn:
        cur = conn.execute("SELECT current_user, session_user, version(), current_database()")
        assert [d.name for d in cur.description] == ["current_user", "session_user", "version",
                                                     "current_database"]
        user, session_user, version, db = cur.fetchone()  # type: ignore[misc]
        assert (user, session_user, db) == ("gina", "gina", "cairn")
        assert version.startswith("PostgreSQL 15")
        tables = conn.execute(
            "SELECT table_schema, table_name, table_type FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        ).fetchall()
        assert ("gui", "things", "BASE TABLE") in tables and ("system", "jobs", "VIEW") in tables
        cols = conn.execute(
            "SELECT column_name, data_type, is_nullable, numeric_precision, numeric_scale "
            "FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
            "ORDER BY ordinal_position", ("gui", "things")).fetchall()
        assert cols[:3] == [("id", "bigint", "NO", None, None), ("label", "text", "NO", None, None),
                            ("price", "numeric", "YES", 8, 2)]
        # DBeaver-style: pg_class joined with pg_description, regclass literals
        rows = conn.execute(
            "SELECT c.oid, c.relname, d.description FROM pg_catalog.pg_class c "
            "LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid = c.oid AND d.objsubid = 0 "
            "AND d.classoid = 'pg_class'::regclass WHERE c.relkind NOT IN ('i', 'I', 'c') "
            "AND c.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'gui')"
        ).fetchall()
        oid = conn.execute("SELECT 'gui.things'::regclass::oid").fetchone()[0]  # type: ignore[index]
        assert rows == [(oid, "things", None)]
        # a catalog relation Cairn does not model: no rows, the asked-for columns
        cur = conn.execute("SELECT polname, polcmd FROM pg_catalog.pg_policy")
        assert cur.fetchall() == [] and [d.name for d in cur.description] == ["polname", "polcmd"]
        # settings chatter
        conn.execute("SET application_name = 'gui test'")
        assert conn.execute("SHOW application_name").fetchone() == ("gui test",)
        setting = conn.execute("SELECT current_setting('application_name')").fetchone()
        assert setting == ("gui test",)
        assert conn.info.parameter_status("server_version") == "15.0"
        # a file function is refused beside catalog relations as anywhere
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM read_text('/etc/passwd'), pg_catalog.pg_class")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM read_text('/etc/passwd')")


def test_a_number_literal_with_an_empty_exponent_is_42601(pg: PgServer) -> None:
    """`INSERT ... VALUES (1e)` was XX000 "internal error" (a traceback in
    the server's log); PostgreSQL calls it a syntax error, 42601, and so
    does DuckDB's parser (sqlgrammar/duckparse.py)."""
    psql(pg, "-c", "CREATE NAMESPACE IF NOT EXISTS lit; "
                   "CREATE TABLE IF NOT EXISTS lit.t (id BIGINT PRIMARY KEY, v DOUBLE)")
    proc = psql(pg, "-v", "VERBOSITY=verbose", "-c", "INSERT INTO lit.t VALUES (1, -1e)",
                check=False)
    assert proc.returncode != 0
    assert "ERROR:  42601: syntax error at or near 'e' at line 1, column 32" in proc.stderr, (
        proc.stderr)
