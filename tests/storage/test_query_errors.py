"""A query that fails: the statement's fault is INVALID_ARGUMENT with the user's
table names; a data file gone from the data directory is INTERNAL, with no
server path in the message, and the log names the file."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from catalog import DataFile
from catalog.diskerrors import DataDirUnavailable
from catalog.errors import Internal, InvalidArgument
from storage.engine import Engine
from tests.helpers import no_descriptor_left

from .conftest import Run, col


@pytest.fixture
def flushed(engine: Engine, run: Run) -> Path:
    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True),
                                                col("v", "TEXT")])
    run("INSERT INTO app.t VALUES (1, 'a'), (2, 'b')")
    engine.flush_table("app", "t")
    (f,) = engine.catalog.scan(DataFile, engine.tables.state("app", "t").uid)
    return Path(engine.tables.files.abs(f.path))


def test_a_wrong_statement_is_invalid_argument(flushed: Path, run: Run) -> None:
    with pytest.raises(InvalidArgument, match="nope") as info:
        run("SELECT nope FROM app.t")
    assert "__" not in info.value.message  # no internal view name


@pytest.mark.parametrize("sql", ["SELECT * FROM app.t", "SELECT count(*) AS n FROM app.t",
                                 "UPDATE app.t SET v = 'c' WHERE id = 2"])
def test_a_missing_data_file_is_internal_without_paths(
        flushed: Path, run: Run, sql: str, caplog: pytest.LogCaptureFixture) -> None:
    flushed.unlink()
    with caplog.at_level(logging.ERROR, logger="cairn.storage"), \
            pytest.raises(Internal, match="data directory is damaged") as info:
        run(sql)
    assert str(flushed.parent) not in info.value.message
    assert flushed.name in caplog.text


def _zeroed(path: Path) -> None:
    path.write_bytes(b"\0" * path.stat().st_size)


def _truncated(path: Path) -> None:
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)


@pytest.mark.timeout(60)  # a FIFO opened to read waits for a writer: a hang is the bug
@pytest.mark.parametrize("damage", [_zeroed, _truncated, "fifo"])
@pytest.mark.parametrize("sql", ["SELECT v FROM app.t WHERE id = 2",  # point: the point cache
                                 "SELECT count(*) AS n FROM app.t",
                                 "UPDATE app.t SET v = 'c' WHERE id = 2"])
def test_a_damaged_data_file_is_internal_without_paths(
        flushed: Path, run: Run, sql: str, damage: object,
        caplog: pytest.LogCaptureFixture) -> None:
    """A data file truncated or zeroed at rest (a point SELECT was 500 'this is a
    bug' with ArrowInvalid's trace, a scan 400 quoting the server's path), or
    a FIFO in its place (every query on it waited for ever): the scan's error."""
    if damage == "fifo":
        flushed.unlink()
        os.mkfifo(flushed)
    else:
        assert callable(damage)
        damage(flushed)
    with caplog.at_level(logging.ERROR, logger="cairn.storage"), \
            pytest.raises(Internal, match="data directory is damaged") as info:
        run(sql)
    assert str(flushed.parent) not in info.value.message
    assert flushed.name in caplog.text
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("text", [
    "{rel}", "{abs}", "No magic bytes found at end of file '{abs}'",
    "File '{abs}' too small to be a Parquet file", "see '{abs}' and '{rel}'",
])
def test_a_users_own_error_naming_a_data_file_is_theirs(
        flushed: Path, engine: Engine, run: Run, text: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """`SELECT error('files/tbl-…/f-….parquet') FROM t` (the path EXPLAIN shows) was
    taken for a damaged data file: 500 INTERNAL and an ERROR line in the log, for
    any role-user, whatever they wrote around it (DuckDB's own wording too)."""
    rel = str(flushed.relative_to(engine.tables.files.data_dir))
    message = text.format(rel=rel, abs=flushed)
    with caplog.at_level(logging.INFO, logger="cairn.storage"), \
            pytest.raises(InvalidArgument) as info:
        run("SELECT error('{}') FROM app.t".format(message.replace("'", "''")))
    assert info.value.message == f"Invalid Input Error: {message}"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text



@pytest.mark.parametrize("sql, extension", [
    ("SELECT st_point(1, 2) AS p", "spatial"),
    ("SELECT excel_text(1, '0') AS x", "excel"),
])
def test_duckdbs_advice_to_install_an_extension_is_left_out_whole(
        run: Run, sql: str, extension: str) -> None:
    """DuckDB's "Please try installing and loading the spatial extension:\\nINSTALL
    spatial;\\nLOAD spatial;" was kept (following it is PERMISSION_DENIED), and where
    it went on to SET auto-install, that was cut, leaving a dangling "Please"."""
    with pytest.raises(InvalidArgument) as info:
        run(sql)
    message = info.value.message
    assert message.endswith(
        f"but it exists in the {extension} extension. "
        "Extensions cannot be installed or loaded on this server."), message
    for advice in ("Please", "INSTALL", "LOAD", "SET", "\n"):
        assert advice not in message, message


@pytest.mark.parametrize("warm", [False, True])
@pytest.mark.parametrize("sql", ["SELECT v FROM app.t WHERE id = 2",  # point: the point cache
                                 "SELECT count(*) AS n FROM app.t",
                                 "UPDATE app.t SET v = 'c' WHERE id = 2"])
def test_too_many_open_files_is_unavailable_not_damage(
        flushed: Path, engine: Engine, run: Run, sql: str, warm: bool,
        caplog: pytest.LogCaptureFixture) -> None:
    """A data file that cannot be opened for want of file descriptors (EMFILE)
    was 500 INTERNAL "the data directory is damaged" with an ERROR in the log.
    It is 503 UNAVAILABLE "too many open files" (SQLSTATE 53000), a WARNING,
    whether the server's own check opens the file first or DuckDB does (the
    check is made once a file: `warm`), and the same query works once
    descriptors are free again."""
    if warm:
        run("SELECT count(*) AS n FROM app.t")
    with caplog.at_level(logging.INFO, logger="cairn.storage"), \
            pytest.raises(DataDirUnavailable) as info, no_descriptor_left():
        run(sql)
    assert info.value.code == "UNAVAILABLE" and info.value.sqlstate == "53000"
    assert info.value.message.startswith("too many open files"), info.value.message
    assert "damaged" not in info.value.message and str(flushed.parent) not in info.value.message
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert "Too many open files" in caplog.text and "Traceback" not in caplog.text
    run(sql)
