"""The DuckDB fault quarantine's fingerprint (server/fingerprint.py): read as
DuckDB's lexer reads a statement, in one pass, and per user."""

from __future__ import annotations

import threading

import pytest

from catalog.errors import InvalidArgument
from server.config import ServerConfig
from server.duckfaults import DuckFaults
from server.session import Session

BOB = "SELECT k, name FROM app.t WHERE name LIKE 'b%' ORDER BY k"
# A fault hidden in what a reader of `\'` as an escape takes for one literal.
MALLORY = ("SELECT k, name FROM app.t WHERE name LIKE 'x\\' OR (SELECT json_type(s.x) FROM "
           "(SELECT struct_pack(x := [j, NULL]::JSON[]) AS s FROM app.mine) q) IS NULL --'\n"
           "ORDER BY k")
TAGS = " ".join(f"$t{i}$" for i in range(16000))
LARGE = [f"SELECT 'a\\', '{TAGS}' AS v", f"SELECT {TAGS}", f"SELECT {TAGS.replace('$ ', ' ')}",
         "SELECT 1 " + "/* " * 40000, "SELECT E'" + "\\'" * 60000, "SELECT " + "'' " * 40000]


def _faults(user: str, text: str) -> DuckFaults:
    """A quarantine holding `text`, a fault of `user`'s."""
    faults = DuckFaults(ServerConfig())
    faults.record(Session(user, role="user", namespace="app", text=text), None)  # type: ignore[arg-type]
    return faults


def _refused(faults: DuckFaults, user: str, text: str) -> bool:
    try:
        faults.refuse(Session(user, role="user", namespace="app", text=text))
    except InvalidArgument:
        return True
    return False


def test_a_large_adversarial_statement_is_fingerprinted_in_one_pass() -> None:
    """A dollar-quote opener taken at each `$tN$` and scanned to the end held
    the GIL ~24 s for 133 KB (everyone's SELECT 1 waited): a hang guard."""
    faults = _faults("mallory", "SELECT 1 AS quarantined")
    for text in LARGE:
        answer: list[bool] = []
        worker = threading.Thread(target=lambda t=text, a=answer: a.append(
            _refused(faults, "mallory", t)), daemon=True)
        worker.start()
        worker.join(8)
        assert not worker.is_alive(), text[:40]
        assert answer == [False]


def test_the_scan_takes_one_step_per_piece() -> None:
    from server.fingerprint import pieces  # the work done, not the time taken
    assert pieces(LARGE[0])[1] == 3  # code, 'a\', code, the long string, code
    assert pieces(LARGE[1])[1] == 1  # an unterminated $t0$: to the end
    assert pieces("SELECT 'a', $x$ ' $x$, \"n\" -- c\n, 1")[1] == 5
    for text in LARGE:
        assert pieces(text)[1] <= len(text) // 2 + 2


@pytest.mark.parametrize(("faulted", "other", "same"), [
    (MALLORY, BOB, False),  # a backslash does not escape in '...'
    ("SELECT E'x\\' OR 1 --' AS v", "SELECT E'y' AS v", True),  # it does in E'...'
    ("SELECT 'it''s' AS v", "SELECT 'x' AS v", True),
    ("SELECT $q$ it's $q$ AS v", "SELECT 'x' AS v", True),
    ("SELECT $q$ a $r$ b $q$ AS v", "SELECT $q$ a $q$ AS v", True),
    ("SELECT 1 /* a /* nested */ still comment */ AS v", "SELECT 2 AS v", True),
    ("SELECT 1 /* a /* nested */ */ AS v", "SELECT 1 */ AS v", False),
    ("SELECT \"A\" FROM t WHERE k = 'a' -- x\n", "select \"a\" from t where k='b';", True),
    ("SELECT a$1$ FROM t", "SELECT a$2$ FROM t", False),  # a name with $ in it
])
def test_the_shape_is_read_as_duckdb_reads_it(faulted: str, other: str, same: bool) -> None:
    assert _refused(_faults("mallory", faulted), "mallory", other) is same


def test_a_fault_quarantines_only_its_users_statement() -> None:
    """Another user's identical statement runs (and, if it faults, is
    quarantined for them): one user cannot have another's refused."""
    faults = _faults("mallory", BOB)
    assert _refused(faults, "mallory", BOB)
    assert not _refused(faults, "bob", BOB)
    faults.refuse(Session("root", role="admin", namespace="app", text=BOB))
