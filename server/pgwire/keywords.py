"""`pg_get_keywords()`, which pgjdbc's DatabaseMetaData.getSQLKeywords()
reads (Hibernate and DBeaver ask for it when they connect): the keywords of
the SQL Cairn's queries are read in (DuckDB's parser, PostgreSQL's grammar
grown), in PostgreSQL's categories. It was refused (42501 "table function
pg_get_keywords() is not allowed"), and with it getSQLKeywords()."""

from __future__ import annotations

import functools

import duckdb
import pyarrow as pa

# DuckDB's category -> PostgreSQL's catcode and catdesc
_CATEGORIES = {
    "unreserved": ("U", "unreserved"),
    "column_name": ("C", "unreserved (cannot be function or type name)"),
    "type_function": ("T", "reserved (can be function or type name)"),
    "reserved": ("R", "reserved"),
}


@functools.cache
def table() -> pa.Table:
    """pg_get_keywords()'s rows: word, catcode, barelabel, catdesc, baredesc
    (DuckDB does not say which may be a bare column label: a reserved word is
    taken to need AS, any other not)."""
    con = duckdb.connect(":memory:")
    try:
        rows = con.execute("SELECT keyword_name, keyword_category FROM duckdb_keywords() "
                           "ORDER BY keyword_name").fetchall()
    finally:
        con.close()
    codes = [_CATEGORIES.get(category, ("R", "reserved")) for _, category in rows]
    bare = [code != "R" for code, _ in codes]
    return pa.table({
        "word": pa.array([word for word, _ in rows]),
        "catcode": pa.array([code for code, _ in codes]),
        "barelabel": pa.array(bare, pa.bool_()),
        "catdesc": pa.array([desc for _, desc in codes]),
        "baredesc": pa.array(["can be bare label" if b else "requires AS" for b in bare]),
    })
