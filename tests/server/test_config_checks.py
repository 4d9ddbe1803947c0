"""Config values that passed validation and then crashed `cairn serve` with a
traceback, or broke the running server: each is now one `cairn: …` line
naming the key, and exit status 2, before anything is opened."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from server import cli, config
from server.config import ConfigError
from tests.pgwire.conftest import self_signed


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[server]\nblocking_threads = 0\n", "[server] blocking_threads must be at least 1"),
        ("[backup]\ntargets = 5\n", "config key [backup] targets must be a table"),
        ('[auth]\nmode = "token"\n[[auth.tokens]]\ntoken = 1\nuser = "a"\n',
         "[[auth.tokens]] entry 1: token must be a non-empty string"),
        ('[auth]\nmode = "token"\n[[auth.tokens]]\ntoken = "t"\nuser = 5\n',
         "[[auth.tokens]] entry 1: user must be"),
        ('[auth]\nmode = "token"\ntokens = [1]\n', "[auth] tokens must be a list of tables"),
        ('[auth]\nmode = "token"\n[[auth.tokens]]\ntoken = "same"\nuser = "alice"\n'
         '[[auth.tokens]]\ntoken = "same"\nuser = "bob"\nrole = "admin"\n',
         "[[auth.tokens]] entry 2: the same token as entry 1"),
        ("[jobs]\nhistory_max_age_days = nan\n", "[jobs] history_max_age_days must be a finite"),
        ("[jobs]\nhistory_max_age_days = inf\n", "[jobs] history_max_age_days must be a finite"),
        ("[jobs]\nhistory_max_age_days = 1000000\n", "[jobs] history_max_age_days must be"),
        ("[jobs]\nhistory_max_age_days = 0\n", "[jobs] history_max_age_days must be"),
        ("[jobs]\nhistory_max_age_days = -1.0\n", "[jobs] history_max_age_days must be"),
        ("[jobs]\nhistory_max_count = 0\n", "[jobs] history_max_count must be at least 1"),
        ("[jobs]\nhistory_max_count = -3\n", "[jobs] history_max_count must be at least 1"),
        ("[jobs]\nmax_concurrent = 9223372036854775808\n", "[jobs] max_concurrent must be at most"),
        ('[storage]\ndata_dir = "/tmp/d\\u0000x"\n', "[storage] data_dir must not contain a NUL"),
        ('[storage]\ndata_dir = ""\n', "[storage] data_dir must not be empty"),
        ('[storage]\nduckdb_memory_limit = "100000%"\n', "[storage] duckdb_memory_limit"),
        ('[storage]\nduckdb_memory_limit = "0%"\n', "[storage] duckdb_memory_limit"),
        ('[storage]\nduckdb_memory_limit = "99999999999999TB"\n', "[storage] duckdb_memory_limit"),
        ('[storage]\nduckdb_spill_limit = "99999999999999999999TB"\n',
         "[storage] duckdb_spill_limit"),
        ("[storage]\nduckdb_threads = -5\n", "[storage] duckdb_threads must be at least 1"),
        ("[storage]\nflush_interval_seconds = -1.0\n", "[storage] flush_interval_seconds"),
        ("[storage]\nflush_interval_seconds = nan\n", "[storage] flush_interval_seconds"),
        ("[backup]\nroots = [1]\n", "[backup] roots must be a list of strings"),
        ('[backup]\nroots = ["/a\\u0000b"]\n', "[backup] roots must not hold"),
        ("[backup]\nmax_schedules = 0\n", "[backup] max_schedules must be at least 1"),
        ("[backup]\nmax_schedules = 100001\n", "[backup] max_schedules must be at most 100000"),
        ("[backup]\nthrottle_bytes_per_second = -5\n",
         "[backup] throttle_bytes_per_second must be at least 0"),
        ('[backup.targets.x]\nuri = 1\n', "[backup.targets.x] uri must be a string"),
        ('[backup.targets.x]\nuri = "ftp://h/p"\n', "[backup.targets.x] uri must be an s3://"),
        ('[backup]\nresume_window = "99999999999999999999d"\n',
         "[backup] resume_window must be at most 36500d"),
        ("[server]\nquery_timeout_seconds = nan\n", "[server] query_timeout_seconds"),
        ("[server]\nquery_timeout_seconds = inf\n", "[server] query_timeout_seconds"),
        ("[server]\nquery_timeout_seconds = 1e10\n", "[server] query_timeout_seconds"),
        ("[server]\nheader_timeout_seconds = inf\n", "[server] header_timeout_seconds"),
        ("[server]\nallowed_hosts = [1]\n", "[server] allowed_hosts must be a list of strings"),
        ('[server]\nhost = ""\n', "[server] host must not be empty"),
        ('[pgwire]\nhost = " "\n', "[pgwire] host must not be empty"),
        ('[log]\nlevel = "\u0131nfo"\n', "[log] level must be"),
    ],
)
def test_value_that_broke_the_server_is_a_config_error(
        tmp_path: Path, text: str, fragment: str) -> None:
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        config.load(f)
    assert fragment in str(info.value)


def _toml(text: str) -> str:
    """`text` as a TOML basic string, every character past ASCII's letters escaped."""
    return '"' + "".join(c if c.isalnum() and c.isascii() else f"\\U{ord(c):08X}"
                         for c in text) + '"'


@pytest.mark.parametrize("token", [
    "to\u0308k",             # SASLprep (NFKC) folds the combining mark into one letter
    "a\u00a0b",              # SASLprep maps a no-break space to a space
    "x\u00ady",              # SASLprep drops a soft hyphen: s3cret<SHY>XY logged in as s3cretXY
    "\uff46\uff55\uff4c\uff4c",  # fullwidth letters: NFKC makes them "full"
    "s3cretXY\u3000",        # str.strip() over HTTP took the ideographic space off
    "pad ",                  # a header's end blank is dropped: HTTP never matched it
    " pad", "a b", "tab\there", "del\u007f", "nl\n", "\U0001f511key",
])
def test_a_token_two_protocols_would_read_differently_is_refused(
        tmp_path: Path, token: str) -> None:
    """pgwire clients SASLprep the password before SCRAM and HTTP drops blanks around
    a header: a token outside '!'..'~' meant another user's token over one of them
    (mallory's "s3cret<SHY>XY" was root2's "s3cretXY" over psycopg)."""
    f = tmp_path / "c.toml"
    f.write_text('[auth]\nmode = "token"\n'
                 '[[auth.tokens]]\ntoken = "s3cretXY"\nuser = "root2"\nrole = "admin"\n'
                 f'[[auth.tokens]]\ntoken = {_toml(token)}\nuser = "mallory"\n')
    with pytest.raises(ConfigError) as info:
        config.load(f)
    message = str(info.value)
    assert message.startswith("[[auth.tokens]] entry 2: token must be printable ASCII"), message
    assert "SASLprep" in message and "HTTP" in message and "pgwire" in message


def test_every_printable_ascii_character_may_be_in_a_token(tmp_path: Path) -> None:
    token = "".join(map(chr, range(0x21, 0x7F)))
    f = tmp_path / "c.toml"
    f.write_text(f'[auth]\nmode = "token"\n[[auth.tokens]]\ntoken = {_toml(token)}\n'
                 'user = "a"\n')
    assert config.load(f).auth.tokens[0]["token"] == token


def test_every_interface_stays_allowed_when_named(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[server]\nhost = "0.0.0.0"\n[pgwire]\nhost = "0.0.0.0"\nport = 0\n')
    assert config.load(f).server.host == "0.0.0.0"


def _serve(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(["serve", *args])
    err = capsys.readouterr().err
    return code, err


def test_serve_prints_one_line_and_exits(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[server]\nblocking_threads = 0\n")
    code, err = _serve(capsys, "--config", str(f), "--data-dir", str(tmp_path / "d"))
    assert code == 2
    assert err == "cairn: [server] blocking_threads must be at least 1, not 0\n"
    assert not (tmp_path / "d").exists()  # nothing opened


def test_a_value_nested_too_deep_is_one_line_not_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[storage]\nflush_rows = " + "[" * 5000 + "]" * 5000 + "\n")
    code, err = _serve(capsys, "--config", str(f), "--data-dir", str(tmp_path / "d"))
    assert code == 2
    assert err == f"cairn: config file {f}: a value is nested too deep\n"
    assert not (tmp_path / "d").exists()


def test_bad_log_level_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _serve(capsys, "--log-level", "bogus", "--data-dir", str(tmp_path / "d"))
    assert code == 2
    assert err.startswith("cairn: --log-level must be DEBUG, INFO")
    assert "\n" not in err.rstrip("\n")


def test_config_file_not_utf8(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_bytes(b'[server]\nnode_id = "\xff"\n')
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        config.load(f)


def test_config_file_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "c.toml"
    os.mkfifo(fifo)  # nobody writes: reading it would wait forever
    with pytest.raises(ConfigError, match="is not a regular file"):
        config.load(fifo)
    with pytest.raises(ConfigError, match="is not a regular file"):
        config.load(tmp_path)  # a directory


def _tls(tmp_path: Path, cert: Path | str, key: Path | str) -> Path:
    f = tmp_path / "c.toml"
    f.write_text(f'[pgwire]\nport = 5999\ntls_cert = "{cert}"\ntls_key = "{key}"\n')
    return f


def test_tls_files_are_named(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    assert config.load(_tls(tmp_path, cert, key)).pgwire.tls_cert == str(cert)
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError) as info:
        config.load(_tls(tmp_path, cert, missing))
    assert str(info.value) == f"[pgwire] tls_key '{missing}' does not exist"
    fifo = tmp_path / "fifo.pem"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError) as info:
        config.load(_tls(tmp_path, fifo, key))
    assert str(info.value) == f"[pgwire] tls_cert '{fifo}' is not a regular file"
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError) as info:
        config.load(_tls(tmp_path, junk, key))
    assert f"[pgwire] tls_cert '{junk}' and tls_key '{key}' are not a PEM" in str(info.value)
    # The PostgreSQL listener off: the files are not read.
    f = tmp_path / "off.toml"
    f.write_text(f'[pgwire]\nport = 0\ntls_cert = "{missing}"\ntls_key = "{missing}"\n')
    assert config.load(f).pgwire.port == 0
