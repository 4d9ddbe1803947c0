"""The storage engine's settings (the server's `[storage]` section extends them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EngineConfig:
    flush_rows: int = 10_000  # default flush threshold of a table
    # A table's buffer is flushed past this many bytes of values too, whatever
    # its row count: the buffer is held in memory (10,000 rows of 9 MB each
    # would have been 90 GB of RSS before the row threshold flushed them).
    flush_bytes: int = 64 << 20
    flush_interval_seconds: float = 300.0  # flush a buffer holding a row this old
    duckdb_memory_limit: str = "1GB"
    # What a query's sorts, joins and aggregates past the memory limit may
    # write to the data dir's tmp/duckdb-spill ("0": nothing; such a query
    # fails). DuckDB's own default is 90% of the disk's free space, and its
    # default place the server's working directory.
    duckdb_spill_limit: str = "4GB"
    duckdb_threads: int = 2
    # After a query that ran on the main DuckDB, and after an UPDATE or DELETE,
    # hand freed memory back to the OS (storage/allocator.py), so RSS goes back.
    duckdb_release_memory: bool = True
    # A query reading Parquet files whose rows average at least this many bytes
    # runs on one DuckDB thread (the single-threaded DuckDB): each further
    # thread holds ~25 MB more of a wide column's pages (docs/performance.md,
    # issue 15, rss2). 0: by rows read alone, as before.
    duckdb_wide_row_bytes: int = 512
    # Point SELECTs of flushed rows read off whole recent Parquet files kept as
    # Arrow tables, instead of a DuckDB query each (storage/pointcache.py): the
    # cache's size in MiB (files over a quarter of it are not kept); 0: off.
    point_cache_mb: int = 32
