"""After an upgrade the browser runs the new console, not its cached files.

console.js, timeline.js and console.css were sent with Last-Modified and no
Cache-Control, so Chromium kept them heuristically (a tenth of their age:
three days for a month-old install) and an upgraded server's page (itself
`no-cache`) ran the old console.js. Now every console file is `no-cache`: the
browser asks each time, the new file comes at once, and an unchanged one is a
304 (its ETag), not sent again."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright

from server import web
from server.app import create_app
from server.config import Config
from tests.console.conftest import CHROMIUM, CHROMIUM_ARGS

MONTH = 30 * 86400


def release(static: Path, number: int) -> None:
    """The console's files of release `number`: each says which it is."""
    for name, line in (("console.js", f'\nwindow.CAIRN_CONSOLE_JS = "{number}";\n'),
                       ("timeline.js", f'\nwindow.CAIRN_TIMELINE_JS = "{number}";\n'),
                       ("console.css", f'\n:root {{ --cairn-release: "{number}"; }}\n')):
        original = (web.STATIC / name).read_text()
        (static / name).write_text(original + line)


async def test_an_upgraded_server_s_page_runs_its_new_files(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    static = tmp_path / "static"
    shutil.copytree(web.STATIC, static)
    release(static, 1)
    installed = time.time() - MONTH  # the installed release's files: a month old
    for path in static.iterdir():
        os.utime(path, (installed, installed))
    monkeypatch.setattr(web, "STATIC", static)
    app = create_app(cairn_config)
    answered: list[tuple[str, int]] = []  # the server's answers to /static/…

    async def record(request: Any, response: Any) -> None:
        if request.path.startswith("/static/"):
            answered.append((request.path.removeprefix("/static/"), response.status))

    app.on_response_prepare.append(record)
    client = await aiohttp_client(app)
    url = f"http://127.0.0.1:{client.port}/"

    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        errors: list[str] = []

        async def running() -> tuple[list[str], dict[str, int]]:
            """Open the console in a new tab: the releases its files say, and
            what the server answered for each of its files."""
            answered.clear()
            page = await context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(url, wait_until="load")
            seen = await page.evaluate(
                "[window.CAIRN_CONSOLE_JS, window.CAIRN_TIMELINE_JS, getComputedStyle("
                "document.documentElement).getPropertyValue('--cairn-release').trim()]")
            await page.close()
            return seen, dict(answered)

        try:
            seen, _ = await running()
            assert seen == ["1", "1", '"1"'], seen
            release(static, 2)  # the upgrade: the files replaced
            seen, statuses = await running()
            assert seen == ["2", "2", '"2"'], f"the upgraded page ran {seen}"
            assert statuses == {"console.js": 200, "timeline.js": 200,
                                "console.css": 200}, statuses
            # Unchanged files are kept: asked again, answered 304, nothing re-sent.
            seen, statuses = await running()
            assert seen == ["2", "2", '"2"'], seen
            assert statuses == {"console.js": 304, "timeline.js": 304,
                                "console.css": 304}, statuses
        finally:
            await context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"
