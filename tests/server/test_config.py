"""Configuration: defaults, the TOML file, flags on top, and clear errors."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

import pytest

from server import config
from server.config import ConfigError
from server.serving import run_loop

ROOT = Path(__file__).parents[2]


def test_defaults_match_the_contract() -> None:
    cfg = config.load()
    assert (cfg.server.host, cfg.server.port) == ("127.0.0.1", 8080)
    assert cfg.server.max_request_bytes == 10485760
    assert cfg.storage.data_dir == "./cairn-data"
    assert cfg.storage.flush_rows == 10000
    assert cfg.auth.mode == "none"
    assert cfg.backup_roots == [str((Path("./cairn-data") / "backups").resolve())]


def test_file_then_flags(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[server]\nhost = "0.0.0.0"\nport = 9000\n[storage]\ndata_dir = "/tmp/x"\n')
    cfg = config.load(f)
    assert (cfg.server.host, cfg.server.port, cfg.storage.data_dir) == ("0.0.0.0", 9000, "/tmp/x")
    cfg = config.load(f, host="127.0.0.2", port=9001, data_dir="/tmp/y")
    assert (cfg.server.host, cfg.server.port, cfg.storage.data_dir) == ("127.0.0.2", 9001, "/tmp/y")


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[server]\nprot = 1\n", "unknown config key [server] prot"),
        ("[nope]\nx = 1\n", "unknown config section [nope]"),
        ('[server]\nport = "80"\n', "[server] port must be int"),
        ('[server]\nevent_loop = "trio"\n', '[server] event_loop must be "uvloop" or "asyncio"'),
        ('[auth]\nmode = "magic"\n', "[auth] mode"),
        ("[storage]\nduckdb_wide_row_bytes = -5\n",
         "[storage] duckdb_wide_row_bytes must be 0 (off) or more"),
        ("[storage]\npoint_cache_mb = -1\n", "[storage] point_cache_mb must be 0 (off) or more"),
        ('[storage]\nduckdb_memory_limit = "lots"\n',
         "[storage] duckdb_memory_limit must be a size"),
        ('[storage]\nduckdb_memory_limit = "0GB"\n',
         "[storage] duckdb_memory_limit must be a size"),
        ('[storage]\nduckdb_spill_limit = "4"\n', "[storage] duckdb_spill_limit must be a size"),
        ('[storage]\nduckdb_spill_limit = "-1GB"\n', "[storage] duckdb_spill_limit must be a size"),
        ('[jobs]\njob_process = "fork"\n', '[jobs] job_process must be "idle", "nice" or "off"'),
        ("[jobs]\njob_process = true\n", "[jobs] job_process must be str"),
        ('[auth]\nmode = "token"\n', "needs at least one"),
        ('[auth]\nmode = "token"\n[[auth.tokens]]\ntoken = "t"\nuser = "scheduler"\n',
         'user "scheduler" is reserved'),
        ("[server\n", "c.toml"),
        ('[storage]\ndata_dir = ""\n', "[storage] data_dir must not be empty"),
        ('[storage]\ndata_dir = "  "\n', "[storage] data_dir must not be empty"),
        ("[backup]\ns3_deadline_seconds = 0\n", "[backup] s3_deadline_seconds must be above 0"),
        ("[backup]\ns3_deadline_seconds = nan\n", "s3_deadline_seconds must be a finite number"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, fragment: str) -> None:
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        config.load(f)
    assert fragment in str(info.value)


def test_empty_data_dir_flag_is_refused() -> None:
    """`cairn serve --data-dir "$UNSET"` took the working directory as its data
    directory, and its start-up sweep deleted the user's tmp/ and files/ there."""
    with pytest.raises(ConfigError, match="--data-dir must not be empty"):
        config.load(data_dir="")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "nope.toml")


def test_example_config_documents_every_key() -> None:
    """config.example.toml loads, and every key of every section appears in it
    (commented or not), each with the default value."""
    text = (ROOT / "config.example.toml").read_text()
    loaded = config.from_dict(tomllib.loads(text))
    defaults = config.Config()
    import dataclasses

    for section in dataclasses.fields(config.Config):
        assert f"[{section.name}]" in text, section.name
        for key in dataclasses.fields(getattr(defaults, section.name)):
            documented = (
                f"\n{key.name} = " in text
                or f"# {key.name} = " in text
                or f"[{section.name}.{key.name}." in text  # a table of named entries
            )
            assert documented, (section.name, key.name)
            assert getattr(getattr(loaded, section.name), key.name) == getattr(
                getattr(defaults, section.name), key.name
            ), (section.name, key.name)


@pytest.mark.parametrize("event_loop, module", [("uvloop", "uvloop"), ("asyncio", "asyncio")])
def test_serve_runs_on_the_configured_loop(event_loop: str, module: str) -> None:
    seen: list[str] = []

    async def main() -> None:
        seen.append(type(asyncio.get_running_loop()).__module__.split(".")[0])

    run_loop(main(), event_loop)
    assert seen == [module]


SHARED_BUCKET = """[backup.targets.offsite]
uri = "s3://backups/offsite"
endpoint = "http://127.0.0.1:9000"
[backup.targets.dr]
uri = "s3://backups/dr"
endpoint = "{dr}"
"""


def test_one_bucket_name_on_two_endpoints_is_refused(tmp_path: Path) -> None:
    """A target is recorded (jobs, schedules, the backup catalog) as its bare
    s3://bucket/prefix, which resolved with the first configured target of that
    bucket: a schedule TO 'dr' backed up to offsite's endpoint."""
    f = tmp_path / "c.toml"
    f.write_text(SHARED_BUCKET.format(dr="http://127.0.0.1:9001"))
    with pytest.raises(ConfigError) as info:
        config.load(f)
    assert str(info.value) == (
        "[backup.targets.offsite] and [backup.targets.dr] both use bucket 'backups' on "
        "different endpoints (http://127.0.0.1:9000 and http://127.0.0.1:9001); give each "
        "a bucket of its own name")
    f.write_text(SHARED_BUCKET.format(dr="HTTP://127.0.0.1:9000/"))  # the same endpoint
    assert set(config.load(f).backup.targets) == {"offsite", "dr"}
