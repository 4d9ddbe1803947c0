"""Transaction statements answered as PostgreSQL 15 answers them (with
`max_prepared_transactions = 0`, its default), the transaction status after
each included (server/pgwire/transactions.py). Until 2026-12-08 `ROLLBACK
PREPARED 'x'` and `COMMIT PREPARED 'x'` answered ROLLBACK / COMMIT as if done,
`PREPARE TRANSACTION` was 42501 "PREPARE is not allowed" with the block left
open, `COMMIT AND CHAIN` ended the block where PostgreSQL begins the next
transaction at once (and outside one answered COMMIT where PostgreSQL says
25P01), `COMMIT garbage` was answered COMMIT, and `RELEASE x` of a savepoint
the block never made answered RELEASE (PostgreSQL: 3B001)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.pq import TransactionStatus

from server.pgwire import chatter, transactions
from server.pgwire.errors import PgError
from tests.pgwire.conftest import PgServer

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)

IDLE, BLOCK = TransactionStatus.IDLE, TransactionStatus.INTRANS
NO_TX = "there is no transaction in progress"

# (statements before, the statement, its tag or SQLSTATE, the status after, a WARNING's code)
CASES: list[tuple[list[str], str, str, TransactionStatus, str | None]] = [
    ([], "ROLLBACK PREPARED 'x'", "42704", IDLE, None),
    ([], "COMMIT PREPARED 'x'", "42704", IDLE, None),
    ([], "COMMIT PREPARED ''", "42704", IDLE, None),
    (["BEGIN"], "COMMIT PREPARED 'x'", "25001", BLOCK, None),
    (["BEGIN"], "ROLLBACK PREPARED 'x'", "25001", BLOCK, None),
    ([], "PREPARE TRANSACTION 'x'", "ROLLBACK", IDLE, "25P01"),
    (["BEGIN"], "PREPARE TRANSACTION 'x'", "55000", IDLE, None),  # and the block is over
    ([], "COMMIT AND CHAIN", "25P01", IDLE, None),
    ([], "ROLLBACK AND CHAIN", "25P01", IDLE, None),
    ([], "END AND CHAIN", "25P01", IDLE, None),
    ([], "ABORT WORK AND CHAIN", "25P01", IDLE, None),
    (["BEGIN"], "COMMIT AND CHAIN", "COMMIT", BLOCK, None),
    (["BEGIN"], "COMMIT WORK AND CHAIN;", "COMMIT", BLOCK, None),
    (["BEGIN"], "ROLLBACK AND CHAIN", "ROLLBACK", BLOCK, "25P01"),  # undid nothing
    (["BEGIN", "COMMIT AND CHAIN"], "COMMIT", "COMMIT", IDLE, None),
    (["BEGIN"], "COMMIT TRANSACTION AND NO CHAIN", "COMMIT", IDLE, None),
    (["BEGIN"], "ROLLBACK AND NO CHAIN", "ROLLBACK", IDLE, "25P01"),
    ([], "COMMIT", "COMMIT", IDLE, "25P01"),
    ([], "ROLLBACK", "ROLLBACK", IDLE, "25P01"),
    (["BEGIN"], "BEGIN", "BEGIN", BLOCK, "25001"),
    (["BEGIN"], "COMMIT", "COMMIT", IDLE, None),
    ([], "BEGIN ISOLATION LEVEL SERIALIZABLE, READ WRITE NOT DEFERRABLE", "BEGIN", BLOCK, None),
    ([], "START TRANSACTION ISOLATION LEVEL REPEATABLE READ", "START TRANSACTION", BLOCK, None),
    ([], "COMMIT garbage", "42601", IDLE, None),
    ([], "BEGIN WORK garbage", "42601", IDLE, None),
    ([], "ROLLBACK PREPARED x", "42601", IDLE, None),
    ([], "PREPARE TRANSACTION x", "42601", IDLE, None),
    ([], "COMMIT AND", "42601", IDLE, None),
    ([], "SAVEPOINT a", "25P01", IDLE, None),
    ([], "RELEASE SAVEPOINT a", "25P01", IDLE, None),
    ([], "ROLLBACK TO a", "25P01", IDLE, None),
    (["BEGIN"], "SAVEPOINT a", "SAVEPOINT", BLOCK, None),
    (["BEGIN", "SAVEPOINT a"], "RELEASE a", "RELEASE", BLOCK, None),
    (["BEGIN", "SAVEPOINT a"], "ROLLBACK TO SAVEPOINT a", "ROLLBACK", BLOCK, "25P01"),
    # savepoints kept as PostgreSQL keeps them: 3B001 for one the block does not have
    (["BEGIN"], "RELEASE a", "3B001", BLOCK, None),
    (["BEGIN"], "ROLLBACK TO SAVEPOINT a", "3B001", BLOCK, None),
    (["BEGIN", "SAVEPOINT a", "SAVEPOINT b", "RELEASE a"], "RELEASE b", "3B001", BLOCK, None),
    (["BEGIN", "SAVEPOINT a", "SAVEPOINT b", "ROLLBACK TO a"], "RELEASE b", "3B001", BLOCK,
     None),
    (["BEGIN", "SAVEPOINT a", "SAVEPOINT b", "ROLLBACK TO a"], "RELEASE a", "RELEASE", BLOCK,
     None),
    (["BEGIN", "SAVEPOINT a", "COMMIT", "BEGIN"], "RELEASE a", "3B001", BLOCK, None),
    (["BEGIN", "SAVEPOINT a", "COMMIT AND CHAIN"], "RELEASE a", "3B001", BLOCK, None),
    (["BEGIN", "SAVEPOINT a", "ROLLBACK AND CHAIN"], "ROLLBACK TO a", "3B001", BLOCK, None),
    (["BEGIN", 'SAVEPOINT "A"'], "RELEASE a", "3B001", BLOCK, None),
    (["BEGIN", "SAVEPOINT A"], 'RELEASE "a"', "RELEASE", BLOCK, None),
    (["BEGIN", "SAVEPOINT a", "SAVEPOINT a", "RELEASE a"], "RELEASE a", "RELEASE", BLOCK, None),
    # a name past ASCII is a name (it was 42601), folded as PostgreSQL folds in UTF8: ASCII only
    (["BEGIN"], "SAVEPOINT é", "SAVEPOINT", BLOCK, None),
    (["BEGIN", "SAVEPOINT Éa"], "RELEASE Éa", "RELEASE", BLOCK, None),
    (["BEGIN", "SAVEPOINT Éa"], "RELEASE éa", "3B001", BLOCK, None),
    (["BEGIN", "SAVEPOINT ıa"], "RELEASE ıA", "RELEASE", BLOCK, None),
    # RELEASE SAVEPOINT and ROLLBACK TO SAVEPOINT name the savepoint "savepoint" (42601 before)
    (["BEGIN", "SAVEPOINT savepoint"], "RELEASE SAVEPOINT", "RELEASE", BLOCK, None),
    (["BEGIN", "SAVEPOINT savepoint"], "ROLLBACK TO SAVEPOINT", "ROLLBACK", BLOCK, "25P01"),
    (["BEGIN"], "RELEASE SAVEPOINT", "3B001", BLOCK, None),
    ([], "ROLLBACK TO SAVEPOINT", "25P01", IDLE, None),
    # a reserved keyword is no unquoted name, as in PostgreSQL (it was taken)
    (["BEGIN"], "SAVEPOINT select", "42601", BLOCK, None),
    (["BEGIN"], "SAVEPOINT End", "42601", BLOCK, None),
    (["BEGIN", 'SAVEPOINT "user"'], "RELEASE user", "42601", BLOCK, None),
    (["BEGIN", 'SAVEPOINT "user"'], 'RELEASE "user"', "RELEASE", BLOCK, None),
    (["BEGIN", "SAVEPOINT work"], "ROLLBACK TO work", "ROLLBACK", BLOCK, "25P01"),
    # a name is its first 63 bytes, not characters (40 é are 80 bytes: 31 are kept)
    (["BEGIN", "SAVEPOINT " + "é" * 40], "RELEASE " + "é" * 31, "RELEASE", BLOCK, None),
    (["BEGIN", 'SAVEPOINT "' + "€" * 30 + '"'], 'RELEASE "' + "€" * 21 + '"', "RELEASE", BLOCK,
     None),
    (["BEGIN", "SAVEPOINT " + "é" * 40], "RELEASE " + "é" * 32, "RELEASE", BLOCK, None),
    (["BEGIN", "SAVEPOINT " + "é" * 31], "RELEASE " + "é" * 40, "RELEASE", BLOCK, None),
    # a transaction identifier of 200 bytes or more: PostgreSQL's 22023, the block ended
    (["BEGIN"], "PREPARE TRANSACTION '" + "x" * 200 + "'", "22023", IDLE, None),
    (["BEGIN"], "PREPARE TRANSACTION '" + "é" * 100 + "'", "22023", IDLE, None),
    (["BEGIN"], "PREPARE TRANSACTION '" + "x" * 199 + "'", "55000", IDLE, None),
    ([], "PREPARE TRANSACTION '" + "x" * 300 + "'", "ROLLBACK", IDLE, "25P01"),
]


@pytest.mark.parametrize(("before", "sql", "said", "status", "warning"), CASES,
                         ids=[" / ".join([*c[0], c[1]])[:120] for c in CASES])
@pytest.mark.parametrize("prepare", [False, True], ids=["simple", "extended"])
def test_transaction_statements(pg: PgServer, before: list[str], sql: str, said: str,
                                status: TransactionStatus, warning: str | None,
                                prepare: bool) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for statement in before:
            conn.execute(statement)
        notices: list[str | None] = []  # (a Diagnostic is read in the handler only)
        conn.add_notice_handler(lambda diag: notices.append(diag.sqlstate))
        if said[0].isdigit():  # a SQLSTATE (42704, 3B001), else a tag
            with pytest.raises(psycopg.Error) as caught:
                conn.execute(sql, prepare=prepare)
            assert caught.value.sqlstate == said, caught.value
        else:
            assert conn.execute(sql, prepare=prepare).statusmessage == said
        assert conn.info.transaction_status == status
        assert notices == ([warning] if warning else [])
        assert conn.execute("SELECT 1 AS one").fetchall() == [(1,)]  # usable after


def test_prepare_transaction_in_a_block_says_why(pg: PgServer) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("BEGIN")
        conn.execute("SAVEPOINT a")
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as caught:
            conn.execute("PREPARE TRANSACTION 'x'")
        assert str(caught.value).startswith("prepared transactions are disabled")
        assert caught.value.diag.message_hint is not None
        assert conn.info.transaction_status == IDLE  # the block ended, its savepoints with it
        conn.execute("BEGIN")
        with pytest.raises(psycopg.errors.InvalidSavepointSpecification):
            conn.execute("RELEASE a")
        conn.execute("ROLLBACK")
        with pytest.raises(psycopg.errors.UndefinedObject,
                           match='prepared transaction with identifier "x" does not exist'):
            conn.execute("ROLLBACK PREPARED 'x'")


def test_a_chained_transaction_goes_on_for_a_driver(pg: PgServer) -> None:
    """psycopg (not autocommit) holds a block open; COMMIT AND CHAIN keeps it."""
    with psycopg.connect(pg.dsn()) as conn:
        conn.execute("SELECT 1")
        assert conn.info.transaction_status == BLOCK
        conn.execute("COMMIT AND CHAIN")
        assert conn.info.transaction_status == BLOCK
        conn.commit()
        assert conn.info.transaction_status == IDLE


@pytest.mark.parametrize("sql", ["START ARCHIVING", "PREPARE p AS SELECT 1", "ENDX", "BEGINS",
                                 "COMMITTED", "RELEASES x", "START"])
def test_other_statements_are_not_claimed(sql: str) -> None:
    assert not transactions.claims(sql)
    assert transactions.answer(sql, b"I") is None


@pytest.mark.parametrize(("before", "sql"), [
    (["BEGIN"], "COMMIT\u3000AND CHAIN"), (["BEGIN"], "COMMIT\u2003AND\u2003NO CHAIN"),
    ([], "BEGIN\u2003WORK"), ([], "BEGIN\x0bWORK"), ([], "BEGIN\x1cWORK"),
    (["BEGIN"], "END\u00a0AND CHAIN"), ([], "START\u00a0TRANSACTION"),
], ids=["ideographic_space", "em_space", "begin_em_space", "vertical_tab", "file_separator",
        "no_break_space", "start_no_break_space"])
def test_only_postgresqls_whitespace_parts_words(pg: PgServer, before: list[str],
                                                  sql: str) -> None:
    """PostgreSQL 15's lexer parts words at space, tab, CR, LF and form feed only,
    and a character past ASCII is part of a word: `COMMIT<U+3000>AND CHAIN` is
    no COMMIT but an error, the block left as it was. Until 2026-12-08 Python's
    \\s parted them: in a block it answered COMMIT and began a new transaction,
    and `BEGIN<U+2003>WORK` opened a block."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for statement in before:
            conn.execute(statement)
        status = conn.info.transaction_status
        with pytest.raises(psycopg.Error):
            conn.execute(sql)
        assert conn.info.transaction_status == status
        assert conn.execute("SELECT 1 AS one").fetchall() == [(1,)]


def test_keywords_fold_ascii_only() -> None:
    """A word past ASCII is no keyword, whatever str.upper() makes of it
    (dotless ı is I, ſ is S)."""
    for sql in ("BEGIN ıSOLATION LEVEL SERIALIZABLE", "COMMIT AND CHAıN", "ROLLBACK ſAVEPOINT"):
        with pytest.raises(PgError) as caught:
            transactions.answer(sql, b"T", [])
        assert caught.value.code == "42601", sql
    assert transactions.answer("SAVEPOINT ſ", b"T", kept := []) is not None
    assert kept == ["ſ"]


def test_a_long_statement_is_read_no_further_than_it_must() -> None:
    """Every statement is asked whether it is one of these (its first two
    words), and one of them is read word by word only up to MAX_WORDS."""
    with pytest.raises(PgError, match='syntax error at or near ","') as caught:
        transactions.answer("COMMIT" + "," * 5_000_000, b"T")
    assert caught.value.code == "42601"
    with pytest.raises(PgError, match='syntax error at or near "WRITE"'):  # the 65th word
        transactions.answer("BEGIN" + " READ WRITE" * 40, b"I")
    assert not transactions.claims("INSERT INTO t VALUES " + "(1, 'x'), " * 500_000 + "(2, 'y')")


def test_savepoints_are_bounded() -> None:
    """A block's savepoints are kept for its life: their names are PostgreSQL's
    63 characters, and there are at most MAX_SAVEPOINTS of them (a client could
    otherwise grow the server with SAVEPOINT "<1 MB name>", again and again)."""
    kept: list[str] = []
    transactions.answer('SAVEPOINT "' + "x" * 1_000_000 + '"', b"T", kept)
    assert kept == ["x" * 63]
    assert transactions.answer("RELEASE " + "X" * 70, b"T", kept) is not None
    for _ in range(transactions.MAX_SAVEPOINTS):
        transactions.answer("SAVEPOINT s", b"T", kept)
    with pytest.raises(PgError, match="too many savepoints") as caught:
        transactions.answer("SAVEPOINT s", b"T", kept)
    assert caught.value.code == "54000" and len(kept) == transactions.MAX_SAVEPOINTS
    transactions.answer("RELEASE s", b"T", kept)  # the newest s
    transactions.answer("SAVEPOINT t", b"T", kept)


def test_begin_read_only_stays_refused() -> None:
    with pytest.raises(chatter.ChatterError) as caught:
        chatter.answer("BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY", chatter.Settings(
            "alice", {}, True), b"I")
    assert caught.value.code == "0A000"
