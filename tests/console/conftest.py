"""Fixtures for the console tests: one real `cairn serve` per module, a fresh
namespace per test, and `cairn sql` run as a user runs it."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.helpers import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
_names = itertools.count(1)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1360, "height": 860})
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    yield p
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


# Slow enough that a backup of `big` in `slow_server` takes about two seconds, so
# there is time to see the bar drawn and to press Ctrl-C while it runs.
THROTTLE = 80_000  # a ~500 KB backup runs ~5 s: time for a Ctrl-C and its question


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("console") / "data").start()
    yield proc
    proc.kill()


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose backups are throttled, holding `big.t` (20,000 rows, ~500 KB)."""
    root = tmp_path_factory.mktemp("slow")
    config = root / "cairn.toml"
    config.write_text(f"[backup]\nthrottle_bytes_per_second = {THROTTLE}\n")
    proc = ServerProcess(root / "data", config=config).start()
    status, body = proc.post(
        "CREATE NAMESPACE big; CREATE TABLE big.t (id BIGINT PRIMARY KEY, body TEXT); "
        "INSERT INTO big.t SELECT i, md5(i::TEXT) FROM range(20000) r(i); FLUSH TABLE big.t")
    assert status == 200, body
    yield proc
    proc.kill()


@pytest.fixture
def ns(server: ServerProcess) -> str:
    """A new namespace holding `notes` with two rows."""
    name = f"c{os.getpid()}_{next(_names)}"
    status, body = server.post(
        f"CREATE NAMESPACE {name}; "
        f"CREATE TABLE {name}.notes (id BIGINT PRIMARY KEY, body TEXT, score DOUBLE); "
        f"INSERT INTO {name}.notes VALUES (1, 'hello', 1.5), (2, 'world', NULL)")
    assert status == 200, body
    return name


def cairn_sql(url: str, *args: str, stdin: str | None = None,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`cairn sql --url URL ARGS...` as a subprocess, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "server.cli", "sql", "--url", url, *args],
        input=stdin if stdin is not None else "", capture_output=True, text=True, timeout=60,
        cwd=str(ROOT), env={**os.environ, **(env or {})})
