"""How high a row version (`_seq`) may go: what a backup may hold, and what a restore takes.

Every row version and every archived commit takes the next number of the server's one
sequence (`Catalog.next_seq`); `_seq` is an int64 in Parquet, Arrow and RocksDB keys. A
restore brings row versions numbered by another server, so it raises the sequence above
them (`Catalog.ensure_seq_above`): newer writes must sort after what was restored.

Two bounds, far apart:

- MAX_SEQ, 2^62: what a manifest or an archived row may hold (the format; what BACKUP
  writes and every reader decodes, Cairn before this split included).
- RESTORE_SEQ, 2^60: the highest row version a restore (and VERIFY, which says what a
  restore does) takes, unless this server's own sequence is already past it. So a
  restore never moves the sequence past max(2^60, where it was): hostile backups, any
  number of them, leave 2^62 - 2^60 = 3 * 2^60 (3.5e18) numbers for the server's own
  writes, 11,000 years at ten million a second, and every backup the server writes
  stays within MAX_SEQ and restorable on it. Before, a backup re-sealed with
  max_seq = 2^62 was restored, every later write took a number past 2^62, and BACKUP
  of every namespace written since refused its own manifest, for good.

No server's own sequence nears 2^60 (1.15e18): at ten million row versions a second
without pause (far beyond one server) it takes 3,650 years, and a restart skips at most
SEQ_BLOCK (100,000) numbers, so 10^13 restarts. A backup past 2^60 was made by hand, or
by a server that restored one made so: it restores where the sequence is already that
high (the server that wrote it), and is BACKUP_INVALID anywhere else."""

from __future__ import annotations

MAX_SEQ = 2**62
RESTORE_SEQ = 2**60


def restore_bound(seq_now: int) -> int:
    """The highest row version a restore takes on a server whose sequence is at `seq_now`."""
    return max(RESTORE_SEQ, seq_now)


# One wording for a backup's max_seq and an archived row's _seq, RESTORE's and VERIFY's.
LIMIT = (f"a restore takes row versions up to 2^60 ({RESTORE_SEQ}), or up to this server's "
         "own sequence where that is higher")


def seq_problem(backup_id: str, max_seq: int, seq_now: int) -> str | None:
    """Why a backup whose row versions reach `max_seq` is not restored on a server at
    `seq_now`, or None: RESTORE refuses it (BACKUP_INVALID) and VERIFY reports it, in
    these words."""
    if max_seq <= restore_bound(seq_now):
        return None
    return f"backup '{backup_id}' holds row versions up to max_seq {max_seq}: {LIMIT}"
