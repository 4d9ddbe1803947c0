"""Make docs/console-timeline.png: a real `cairn serve`, a few minutes of real work
(inserts, flushes, backups of three namespaces, a restore with a wrong
passphrase, a killed backup, a verify), then the web console in headless
Chromium with the jobs timeline at its 5-minute window.

    python bench/console_screenshot.py [--seconds 150] [--out docs/console-timeline.png]

Nothing is staged: every bar is a job the server ran during the run."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.console.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.helpers import ServerProcess  # noqa: E402


def post(server: ServerProcess, text: str, expect: int = 200) -> dict:
    status, body = server.post(text)
    if status != expect:
        raise SystemExit(f"{text!r}: HTTP {status} {body}")
    return body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=150.0)
    parser.add_argument("--out", default=str(ROOT / "docs" / "console-timeline.png"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "cairn.toml"
        config.write_text("[backup]\nthrottle_bytes_per_second = 400000\n")
        server = ServerProcess(Path(tmp) / "data", config=config).start()
        try:
            for ns in ("shop", "crm", "audit"):
                post(server, f"CREATE NAMESPACE {ns}; CREATE TABLE {ns}.events (id BIGINT "
                             "PRIMARY KEY, body TEXT)")
            post(server, "CREATE NAMESPACE scratch; CREATE TABLE scratch.big (id BIGINT "
                         "PRIMARY KEY, body TEXT); INSERT INTO scratch.big SELECT i, md5(i::TEXT) "
                         "|| md5((i + 1)::TEXT) FROM range(40000) r(i); FLUSH TABLE scratch.big")
            started = time.monotonic()
            n = 0
            step = 0
            while time.monotonic() - started < args.seconds:
                for ns in ("shop", "crm", "audit"):
                    post(server, f"INSERT INTO {ns}.events SELECT {n} + i, md5(i::TEXT) "
                                 f"FROM range({2000 if ns == 'shop' else 300}) r(i)")
                n += 10_000
                if step % 2 == 0:
                    post(server, "FLUSH ALL TABLES IN shop")
                if step % 3 == 0:
                    post(server, "BACKUP DATABASE shop TO 'nightly'")
                if step % 4 == 1:
                    post(server, "FLUSH ALL TABLES IN crm; BACKUP DATABASE crm TO 'nightly' "
                                 "WITH (encryption_passphrase = 'demo')")
                if step == 5:
                    post(server, "RESTORE DATABASE crm FROM 'nightly' AS crm_copy WITH "
                                 "(encryption_passphrase = 'not-it')", expect=422)
                if step == 8:
                    job = post(server, "BACKUP DATABASE scratch TO 'offsite' WITH "
                                       "(detached = true)")["results"][0]["rows"][0]["job_id"]
                    time.sleep(2.0)
                    post(server, f"KILL JOB '{job}'")
                if step == 10:
                    post(server, "FLUSH ALL TABLES IN audit; BACKUP DATABASE audit TO 'nightly'")
                    backup = post(server, "SHOW BACKUPS FOR DATABASE shop")
                    bid = backup["results"][0]["rows"][0]["backup_id"]
                    post(server, f"VERIFY BACKUP '{bid}' IN 'nightly'")
                step += 1
                time.sleep(6.0)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_context(viewport={"width": 1360, "height": 860}).new_page()
                page.add_init_script("localStorage.setItem('cairn.timeline', '5 min')")
                page.goto(server.url + "/")
                page.fill("#editor", "SELECT namespace, count(*) AS backups, max(created_at) AS "
                                     "newest\nFROM system.backups\nGROUP BY namespace ORDER BY "
                                     "namespace;")
                page.press("#editor", "Control+Enter")
                page.wait_for_selector(".result")
                post(server, "BACKUP DATABASE scratch TO 'offsite' WITH (detached = true)")
                page.wait_for_selector(".tl-bar.running", timeout=10_000)  # the last backup
                page.screenshot(path=args.out)
                browser.close()
        finally:
            server.kill()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
