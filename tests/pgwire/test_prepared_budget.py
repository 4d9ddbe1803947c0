"""What all connections keep together in prepared statements and portals
(`[pgwire] max_prepared_bytes_total`, server/budget.py). The per-connection
bound alone let 30 idle connections of 4 × 9 MB statements add 1 GB to the
server (200 connections: ~7 GB)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pgwire.conftest import PgServer, _start
from tests.pgwire.test_kept import _error_code, _fields, _parse, _round, _simple
from tests.pgwire.test_protocol import _connect

REQUEST = 64 * 1024  # the test server's [server] max_request_bytes
TOTAL = 270_000  # its [pgwire] max_prepared_bytes_total: 4 × REQUEST (the floor) and a bit
TEXT = b"SELECT '" + b"x" * 58_000 + b"' AS c"


@pytest.fixture(scope="module")
def budgeted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    yield from _start(tmp_path_factory.mktemp("prepared_total"),
                      f"[server]\nmax_request_bytes = {REQUEST}\n"
                      f"[pgwire]\nmax_prepared_bytes_total = {TOTAL}\n")


def test_statements_past_the_servers_total_are_53200_until_a_connection_closes(
        budgeted: PgServer) -> None:
    first = _connect(budgeted)
    for i in range(4):  # within this connection's own 4 × max_request_bytes
        assert _error_code(_round(first, _parse(b"s%d" % i, TEXT))) is None
    other = _connect(budgeted)
    try:
        refused = _round(other, _parse(b"big", TEXT))
        errors = [_fields(body) for tag, body in refused if tag == b"E"]
        assert errors and errors[0]["C"] == "53200", refused
        assert "max_prepared_bytes_total" in errors[0]["M"]
        # The connection stays usable, and a small statement still fits.
        assert any(tag == b"D" for tag, _ in _simple(other, b"SELECT 42"))
        assert _error_code(_round(other, _parse(b"small", b"SELECT 2"))) is None
        first.close()  # what it kept is the server's again
        for _ in range(200):
            if _error_code(_round(other, _parse(b"big", TEXT))) is None:
                break
        else:
            pytest.fail("the closed connection's statements were never given back")
        # A new connection keeps statements too.
        third = _connect(budgeted)
        try:
            assert _error_code(_round(third, _parse(b"t", TEXT))) is None
        finally:
            third.close()
    finally:
        other.close()
        first.close()
