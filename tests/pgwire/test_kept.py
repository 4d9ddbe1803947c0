"""What a connection may keep between messages (server/pgwire/kept.py): the
texts of its prepared statements and portals, and the answers its portals
hold. Without bounds any user could make the server keep gigabytes: 30
named 9 MB statements added 270 MB, 20 portals of a 100,000-row query in a
transaction 1.1 GB."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest

from server.pgwire import chatter, kept
from tests.pgwire.conftest import PgServer, _start
from tests.pgwire.test_protocol import _connect, _fields, _msg, _read_all

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)

REQUEST = 64 * 1024  # the test server's [server] max_request_bytes
QUERY = b"SELECT i FROM range(50) t(i)\x00"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    yield from _start(tmp_path_factory.mktemp("kept"),
                      f"[server]\nmax_request_bytes = {REQUEST}\n")


def _parse(name: bytes, sql: bytes) -> bytes:
    return _msg(b"P", name + b"\x00" + sql + b"\x00" + struct.pack("!h", 0))


def _bind(portal: bytes, statement: bytes) -> bytes:
    return _msg(b"B", portal + b"\x00" + statement + b"\x00" + struct.pack("!hhh", 0, 0, 0))


def _execute(portal: bytes, rows: int) -> bytes:
    return _msg(b"E", portal + b"\x00" + struct.pack("!i", rows))


def _round(sock: socket.socket, data: bytes) -> list[tuple[bytes, bytes]]:
    sock.sendall(data + _msg(b"S"))
    return _read_all(sock)


def _simple(sock: socket.socket, sql: bytes) -> list[tuple[bytes, bytes]]:
    sock.sendall(_msg(b"Q", sql + b"\x00"))
    return _read_all(sock)


def _error_code(msgs: list[tuple[bytes, bytes]]) -> str | None:
    errors = [_fields(body) for tag, body in msgs if tag == b"E"]
    return errors[0]["C"] if errors else None


def test_statement_texts_are_bounded_and_closing_frees_them(small: PgServer) -> None:
    budget = kept.TEXT_BUDGET_REQUESTS * REQUEST
    text = b"SELECT 1 -- " + b"x" * (REQUEST // 2)
    sock = _connect(small)
    fits = budget // (len(text) + kept.OVERHEAD + 3)
    for n in range(fits):
        assert _error_code(_round(sock, _parse(b"s%d" % n, text))) is None, n
    refused = _round(sock, _parse(b"one_more", text))
    assert _error_code(refused) == "54000", refused
    assert b"max_request_bytes" in dict(refused)[b"E"]
    # A closed statement's bytes are free again.
    assert _error_code(_round(sock, _msg(b"C", b"Ss0\x00"))) is None
    assert _error_code(_round(sock, _parse(b"one_more", text))) is None
    # DEALLOCATE ALL frees every one.
    assert _error_code(_simple(sock, b"DEALLOCATE ALL")) is None
    for n in range(fits):
        assert _error_code(_round(sock, _parse(b"t%d" % n, text))) is None, n
    sock.close()


def test_portals_end_with_the_implicit_transaction(small: PgServer) -> None:
    """As PostgreSQL: after Sync outside BEGIN no portal is left."""
    sock = _connect(small)
    msgs = _round(sock, _parse(b"q", QUERY[:-1]) + _bind(b"p", b"q") + _execute(b"p", 5))
    assert [tag for tag, _ in msgs].count(b"D") == 5 and (b"s", b"") in msgs, msgs
    gone = _round(sock, _execute(b"p", 5))
    assert _error_code(gone) == "34000", gone
    # Inside BEGIN … COMMIT a suspended portal lives on across Syncs.
    _simple(sock, b"BEGIN")
    _round(sock, _bind(b"p", b"q") + _execute(b"p", 5))
    more = _round(sock, _execute(b"p", 100))
    assert [tag for tag, _ in more].count(b"D") == 45, more
    _simple(sock, b"COMMIT")
    assert _error_code(_round(sock, _execute(b"p", 1))) == "34000"
    sock.close()


def test_portals_holding_unsent_rows_are_bounded(small: PgServer) -> None:
    sock = _connect(small)
    _round(sock, _parse(b"q", QUERY[:-1]))
    _simple(sock, b"BEGIN")
    for n in range(kept.MAX_PENDING_ANSWERS):
        msgs = _round(sock, _bind(b"p%d" % n, b"q") + _execute(b"p%d" % n, 1))
        assert (b"s", b"") in msgs, msgs  # suspended, 49 rows kept
    # A described portal runs its query too: one more pending answer is refused.
    refused = _round(sock, _bind(b"extra", b"q") + _msg(b"D", b"Pextra\x00"))
    assert _error_code(refused) == "54000", refused
    refused = _round(sock, _execute(b"extra", 1))  # bound: it waits for a place
    assert _error_code(refused) == "54000", refused
    # A portal run to completion keeps nothing, so it does not count.
    done = _round(sock, _bind(b"whole", b"q") + _execute(b"whole", 0))
    assert _error_code(done) is None and [t for t, _ in done].count(b"D") == 50, done
    # Reading one to its end frees a place; so does closing one.
    rest = _round(sock, _execute(b"p0", 0))
    assert [tag for tag, _ in rest].count(b"D") == 49, rest
    assert _error_code(_round(sock, _execute(b"extra", 1))) is None
    assert _error_code(_round(sock, _msg(b"C", b"Pp1\x00"))) is None
    assert _error_code(_round(sock, _bind(b"x2", b"q") + _execute(b"x2", 1))) is None
    # A name bound already is 42P03, as in PostgreSQL (the portal was replaced);
    assert _error_code(_round(sock, _bind(b"x2", b"q"))) == "42P03"
    # the unnamed portal is replaced: no place is taken twice (p2, p3, extra, x2 and it).
    assert _error_code(_round(sock, _msg(b"C", b"Px2\x00"))) is None
    twice = _round(sock, _bind(b"", b"q") + _execute(b"", 1) + _bind(b"", b"q") + _execute(b"", 1))
    assert _error_code(twice) is None, twice
    _simple(sock, b"COMMIT")
    sock.close()


def test_an_execute_that_fails_mid_answer_keeps_no_rows(small: PgServer) -> None:
    """An Execute whose rows could not be encoded (22003: 100000 promised as
    binary int2) left its portal holding its whole answer, pending, so inside
    BEGIN any number of them piled up past MAX_PENDING_ANSWERS."""
    sock = _connect(small)
    sql = b"SELECT $1 AS a, repeat('x', 50) AS pad FROM range(100)"
    int2 = struct.pack("!hI", 1, 21)
    sock.sendall(_msg(b"P", b"s\x00" + sql + b"\x00" + int2) + _msg(b"D", b"Ss\x00"))
    _round(sock, b"")
    _simple(sock, b"BEGIN")
    value = b"100000"
    for n in range(kept.MAX_PENDING_ANSWERS + 2):
        bind = _msg(b"B", b"f%d\x00s\x00" % n + struct.pack("!hhi", 0, 1, len(value)) + value
                    + struct.pack("!hh", 1, 1))
        failed = _round(sock, bind + _execute(b"f%d" % n, 0))
        assert _error_code(failed) == "22003", failed
    # None of them holds rows: a portal suspended with unsent rows is still allowed.
    ok = _round(sock, _parse(b"q", QUERY[:-1]) + _bind(b"p", b"q") + _execute(b"p", 1))
    assert _error_code(ok) is None and (b"s", b"") in ok, ok
    _simple(sock, b"COMMIT")
    sock.close()


def test_a_portal_that_failed_is_gone_and_one_read_to_its_end_sends_no_more(
        small: PgServer) -> None:
    """A portal whose Execute failed mid-answer (22008: a date binary cannot
    carry) was kept, emptied: inside BEGIN its next Execute completed as
    `SELECT 2` with no row, a cut answer with a whole answer's tag. As in
    PostgreSQL, where the error ends the transaction, the portal is gone
    (34000). One read to its end and executed again answered `SELECT 50`
    with no row: it is `SELECT 0`, and a suspended portal's last Execute
    counts the rows it sent, as PostgreSQL's tags do."""
    sock = _connect(small)
    dates = b"SELECT d FROM (VALUES (DATE '2020-01-01'), (DATE '5874898-01-01')) t(d)"
    binary = struct.pack("!hhhh", 0, 0, 1, 1)  # no parameters, binary results
    _round(sock, _parse(b"dates", dates) + _parse(b"q", QUERY[:-1]))
    _simple(sock, b"BEGIN")
    for limit in (0, 1):
        bind = _msg(b"B", b"p%d\x00dates\x00" % limit + binary)
        failed = _round(sock, bind + _execute(b"p%d" % limit, limit))
        if limit:  # one row sent, suspended; the next row fails
            assert [t for t, _ in failed].count(b"D") == 1 and (b"s", b"") in failed, failed
            failed = _round(sock, _execute(b"p%d" % limit, limit))
        assert _error_code(failed) == "22008", failed
        again = _round(sock, _execute(b"p%d" % limit, limit))
        assert _error_code(again) == "34000", again
    whole = _round(sock, _bind(b"whole", b"q") + _execute(b"whole", 0))
    assert (b"C", b"SELECT 50\x00") in whole, whole
    assert _round(sock, _execute(b"whole", 0)) == [(b"C", b"SELECT 0\x00"), (b"Z", b"T")]
    _round(sock, _bind(b"part", b"q") + _execute(b"part", 30))
    rest = _round(sock, _execute(b"part", 30))
    assert [t for t, _ in rest].count(b"D") == 20 and (b"C", b"SELECT 20\x00") in rest, rest
    _simple(sock, b"COMMIT")
    sock.close()


def test_a_failed_parse_of_the_unnamed_statement_drops_the_old_one(small: PgServer) -> None:
    """A Parse of the unnamed statement that failed left the one before it
    in place, so a Bind and Execute of '' ran the earlier DELETE again. As in
    PostgreSQL the old one goes first: the Bind is 26000."""
    sock = _connect(small)
    _simple(sock, b"CREATE NAMESPACE IF NOT EXISTS kpu")
    _simple(sock, b"CREATE TABLE IF NOT EXISTS kpu.t (id BIGINT PRIMARY KEY)")
    _simple(sock, b"INSERT INTO kpu.t VALUES (1), (2)")
    ran = _round(sock, _parse(b"", b"DELETE FROM kpu.t WHERE id < 10") + _bind(b"", b"")
                 + _execute(b"", 0))
    assert (b"C", b"DELETE 2\x00") in ran, ran
    _simple(sock, b"INSERT INTO kpu.t VALUES (3)")
    refused = _round(sock, _parse(b"", b"SELECT 1; SELECT 2"))
    assert _error_code(refused) == "42601", refused
    gone = _round(sock, _bind(b"", b"") + _execute(b"", 0))
    assert _error_code(gone) == "26000", gone
    assert (b"C", b"SELECT 1\x00") in _simple(sock, b"SELECT id FROM kpu.t")
    sock.close()


def test_tally_follows_every_store_and_removal() -> None:
    tally = kept.Tally(1000)
    texts: kept.Kept[str] = kept.Kept(tally, len)
    portals: kept.Portals[str] = kept.Portals(tally, len)
    texts["a"] = "x" * 100
    portals["p"] = "y" * 50
    portals.pending.add("p")
    assert tally.used == 2 * kept.OVERHEAD + 1 + 100 + 1 + 50
    texts["a"] = "z"  # replaced: only the new text counts
    assert tally.used == 2 * kept.OVERHEAD + 2 + 1 + 50
    portals["p"] = "w"
    assert portals.pending == set()
    portals.pending.add("p")
    assert portals.pop("p") == "w" and portals.pending == set()
    texts.clear()
    assert tally.used == 0
    with pytest.raises(Exception, match="54000|past its limit"):
        texts["big"] = "x" * 4000
    assert tally.used == 0 and "big" not in texts


def test_declared_parameter_types_count_against_the_budget(small: PgServer) -> None:
    """Only a statement's name and text were counted: 65,535 declared types
    (262 KB of message) kept 2 MB each, any number of statements."""
    types = 16_000
    sock = _connect(small)
    parse = _msg(b"P", b"many\x00SELECT 1\x00" + struct.pack("!H", types) + struct.pack("!I", 23)
                 * types)
    refused = _round(sock, parse)
    assert _error_code(refused) == "54000", refused
    # Within the budget (a quarter of it) it is kept, and closing frees it.
    quarter = kept.TEXT_BUDGET_REQUESTS * REQUEST // 4 // kept.OID_BYTES
    fits = _msg(b"P", b"some\x00SELECT 1\x00" + struct.pack("!H", quarter)
                + struct.pack("!I", 23) * quarter)
    assert _error_code(_round(sock, fits)) is None
    sock.close()


def test_settings_are_bounded(pg: PgServer) -> None:
    """`SET <any name> = '<9 MB>'` was kept for the connection's life."""
    sock = _connect(pg)
    big = _simple(sock, b"SET my.note = '" + b"x" * (chatter.MAX_SETTING_CHARS + 1) + b"'")
    assert _error_code(big) == "22023", big
    assert _error_code(_simple(sock, b"SET application_name = '" + b"y" * 70_000 + b"'")) == "22023"
    value = b"z" * chatter.MAX_SETTING_CHARS
    count = chatter.MAX_SETTINGS_CHARS // len(value)
    for n in range(count - 1):
        assert _error_code(_simple(sock, b"SET my.s%d = '%s'" % (n, value))) is None, n
    full = _simple(sock, b"SET my.last = '%s'" % value)  # with the defaults: past 1 MiB
    assert _error_code(full) == "54000", full
    assert _error_code(_simple(sock, b"RESET ALL")) is None  # frees them all
    assert _error_code(_simple(sock, b"SET my.last = '%s'" % value)) is None
    sock.close()


WIDE = b"SELECT * FROM keptwide.t a, keptwide.t b"  # over 200 columns of 62-character names


def _wide_table(sock: socket.socket) -> None:
    columns = ", ".join(f"c{i:03d}_{'x' * 57} BIGINT" for i in range(100))
    assert _error_code(_simple(sock, b"CREATE NAMESPACE IF NOT EXISTS keptwide")) is None
    created = _simple(sock, f"CREATE TABLE IF NOT EXISTS keptwide.t (id BIGINT PRIMARY KEY, "
                            f"{columns})".encode())
    assert _error_code(created) is None, created


def test_described_columns_count_against_the_budget(small: PgServer) -> None:
    """Describe(statement) kept the columns it found outside the budget: a
    90-byte statement of 1,604 columns held 320 KB, and 1,000 of them (82 KB
    sent) grew the server by 320 MB. Now a Describe past the budget is 54000."""
    sock = _connect(small)
    _wide_table(sock)
    codes: list[str | None] = []
    while not codes or codes[-1] is None and len(codes) < 40:
        n = len(codes)
        msgs = _round(sock, _parse(b"w%d" % n, WIDE) + _msg(b"D", b"Sw%d\x00" % n))
        codes.append(_error_code(msgs))
    # ~45 KB each against 256 KiB: the sixth or so is refused (its Parse was taken).
    assert codes[-1] == "54000" and 3 <= len(codes) <= 8, codes
    assert _error_code(_round(sock, _msg(b"C", b"Sw0\x00") + _msg(b"C", b"Sw1\x00"))) is None
    described = _round(sock, _msg(b"D", b"Sw%d\x00" % (len(codes) - 1)))
    assert _error_code(described) is None and b"T" in dict(described), described
    sock.close()


def test_a_portals_answer_columns_count_against_the_budget(small: PgServer) -> None:
    """Each portal run in a transaction kept its answer's columns uncounted."""
    sock = _connect(small)
    _wide_table(sock)
    _round(sock, _parse(b"w", WIDE))
    _simple(sock, b"BEGIN")
    codes: list[str | None] = []
    while not codes or codes[-1] is None and len(codes) < 40:
        name = b"p%d" % len(codes)
        codes.append(_error_code(_round(sock, _bind(name, b"w") + _execute(name, 0))))
    assert codes[-1] == "54000" and 3 <= len(codes) <= 8, codes
    # The portal whose answer passed it is closed: it is not run twice.
    assert _error_code(_round(sock, _execute(b"p%d" % (len(codes) - 1), 0))) == "34000"
    _simple(sock, b"COMMIT")  # the transaction's portals go, and their room with them
    assert _error_code(_round(sock, _bind(b"q", b"w") + _execute(b"q", 0))) is None
    sock.close()


def test_result_format_codes_count_against_the_budget(small: PgServer) -> None:
    """A Bind's result format codes (up to 65,535, 8 bytes each kept) were
    not counted: inside BEGIN, 300 portals of `SELECT 1` with 65,535 codes
    each (37 MB sent) grew the server by 100 MB."""
    count = 16_000
    sock = _connect(small)
    _round(sock, _parse(b"one", b"SELECT 1"))
    _simple(sock, b"BEGIN")
    codes = [_error_code(_round(sock, _msg(b"B", b"f%d\x00one\x00" % n + struct.pack(
        "!hhH", 0, 0, count) + b"\x00\x00" * count))) for n in range(4)]
    fits = kept.TEXT_BUDGET_REQUESTS * REQUEST // (kept.FORMAT_BYTES * count)
    assert codes == [None] * fits + ["54000"] * (4 - fits), codes
    _simple(sock, b"COMMIT")
    sock.close()


@pytest.mark.parametrize("then", [_execute(b"", 0), _msg(b"D", b"P\x00")],
                         ids=["execute", "describe"])
def test_a_result_format_count_of_neither_none_one_nor_each_column_is_08p01(
        pg: PgServer, then: bytes) -> None:
    """As PostgreSQL: no code (all text), one for all, or one per column;
    3 codes for a 1-column query were taken, the extra ones ignored."""
    sock = _connect(pg)
    for sql, counts in [(b"SELECT 1 AS a", {0: None, 1: None, 2: "08P01", 3: "08P01"}),
                        (b"SELECT 1 AS a, 2 AS b", {1: None, 2: None, 3: "08P01"})]:
        for count, code in counts.items():
            bind = _msg(b"B", b"\x00\x00\x00\x00\x00\x00" + struct.pack("!h", count)
                        + b"\x00\x01" * count)
            msgs = _round(sock, _parse(b"", sql) + bind + then)
            assert _error_code(msgs) == code, (sql, count, msgs)
            if code:
                message = _fields(dict(msgs)[b"E"])["M"]
                assert f"has {count} result formats but query has" in message
            assert msgs[-1] == (b"Z", b"I")
    sock.close()


def test_deallocate_names_a_statement_that_exists(small: PgServer) -> None:
    """As PostgreSQL: DEALLOCATE of a statement the connection does not hold
    is 26000 invalid_sql_statement_name (it answered DEALLOCATE), and an
    unquoted name is folded to lower case as PostgreSQL folds it."""
    sock = _connect(small)
    assert _error_code(_simple(sock, b"DEALLOCATE nope")) == "26000"
    assert _error_code(_round(sock, _parse(b"s1", QUERY[:-1]))) is None
    assert _error_code(_simple(sock, b"DEALLOCATE PREPARE S1")) is None
    assert _error_code(_simple(sock, b"DEALLOCATE s1")) == "26000"
    assert _error_code(_round(sock, _parse(b"Mixed", QUERY[:-1]))) is None
    assert _error_code(_simple(sock, b"DEALLOCATE Mixed")) == "26000"
    assert _error_code(_simple(sock, b'DEALLOCATE "Mixed"')) is None
    assert _error_code(_simple(sock, b"DEALLOCATE ALL")) is None
    # The connection is usable after each refusal.
    assert _error_code(_simple(sock, b"SELECT 1")) is None
    sock.close()
