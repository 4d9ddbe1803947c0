"""The PostgreSQL wire protocol (v3): psql, pgbench, psycopg, asyncpg and GUI
clients speak to the same executor, roles and jobs as POST /api/sql.

    messages.py    framing and message builders (bounded reads)
    server.py      listener, start-up, TLS, SCRAM-SHA-256, cancel requests
    connection.py  simple and extended query protocol over Cairn's executor
    params.py      $n parameters as typed literals; parameter type inference
    param_columns.py  the table column a $n is compared with, bound by SQL scopes
    types.py       Cairn types <-> OIDs, text and binary values
    chatter.py     SET/SHOW/BEGIN/... answered by the connection itself
    pgcatalog.py   pg_catalog / information_schema queries, from Cairn's catalog
    relations.py   the catalog relations as Arrow tables
"""

from .server import PgServer

__all__ = ["PgServer"]
