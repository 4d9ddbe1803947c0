"""The web console's jobs timeline and backup-age panel, in headless Chromium:
a bar per job of the last hour coloured by its status, and the age of each
namespace's newest backup (the number /metrics exports as cairn_backup_age_seconds)."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.console.conftest import ARTIFACTS, ROOT
from tests.helpers import ServerProcess

GREEN, RED, GREY = "rgb(31, 157, 85)", "rgb(208, 52, 44)", "rgb(103, 115, 131)"


def post_ok(server: ServerProcess, text: str) -> dict:
    status, body = server.post(text)
    assert status == 200, body
    return body


def bar_style(page: Page, job_id: str) -> dict:
    return page.evaluate(
        """(id) => { const b = document.querySelector(`.tl-bar[data-job-id="${id}"]`);
                     const t = document.querySelector('#timeline').getBoundingClientRect();
                     const r = b.getBoundingClientRect();
                     return {colour: getComputedStyle(b).backgroundColor,
                             left: (r.left - t.left) / t.width, right: (r.right - t.left) / t.width,
                             width: r.width}; }""", job_id)


def test_timeline_bars_and_backup_age(page: Page, slow_server: ServerProcess) -> None:
    server = slow_server
    ns = f"tl{os.getpid()}"
    post_ok(server, f"CREATE NAMESPACE {ns}; CREATE NAMESPACE {ns}_never; "
                    f"CREATE TABLE {ns}.t (id BIGINT PRIMARY KEY, v TEXT); "
                    f"INSERT INTO {ns}.t VALUES (1, 'a'), (2, 'b'); FLUSH TABLE {ns}.t")
    done = post_ok(server, f"BACKUP DATABASE {ns} TO 'tl' WITH (encryption_passphrase = 'pw')")
    backup_job = done["results"][0]["rows"][0]["job_id"]
    status, body = server.post(f"RESTORE DATABASE {ns} FROM 'tl' AS {ns}_copy WITH "
                               "(encryption_passphrase = 'wrong')")
    assert status == 422, body
    failed_job = server.post("SELECT job_id FROM system.jobs WHERE job_type = 'restore' "
                             "AND status = 'failed' ORDER BY created_at DESC LIMIT 1"
                             )[1]["results"][0]["rows"][0]["job_id"]
    page.goto(server.url + "/")
    # A throttled backup of big.t runs for ~2 s: its bar is seen running, then completed.
    slow = post_ok(server, "BACKUP DATABASE big TO 'tl-slow' WITH (detached = true)")
    slow_job = slow["results"][0]["rows"][0]["job_id"]
    running = page.locator(f'.tl-bar[data-job-id="{slow_job}"]')
    expect(running).to_have_attribute("data-status", re.compile("running|queued"), timeout=10000)
    expect(running).to_have_attribute("data-status", "completed", timeout=30000)
    # Another one, killed at once: cancelled.
    killed = post_ok(server, "BACKUP DATABASE big TO 'tl-kill' WITH (detached = true)")
    kill_job = killed["results"][0]["rows"][0]["job_id"]
    post_ok(server, f"KILL JOB '{kill_job}'")
    expect(page.locator(f'.tl-bar[data-job-id="{kill_job}"]')).to_have_attribute(
        "data-status", "cancelled", timeout=10000)

    completed = page.locator(f'.tl-bar[data-job-id="{backup_job}"]')
    expect(completed).to_have_attribute("data-status", "completed")
    expect(completed).to_have_attribute("title", re.compile(rf"^backup {ns} · completed · "))
    expect(page.locator(f'.tl-bar[data-job-id="{failed_job}"]')).to_have_attribute(
        "title", re.compile(r"failed[\s\S]*passphrase"))
    jobs = (backup_job, failed_job, slow_job, kill_job)
    styles = {job: bar_style(page, job) for job in jobs}
    assert [styles[j]["colour"] for j in jobs] == [GREEN, RED, GREEN, GREY]
    for s in styles.values():  # just now: at the right end of the hour, and visible
        assert 0.9 < s["left"] <= s["right"] <= 1.001 and s["width"] >= 3, s
    # The bars of this test follow each other in time, left to right.
    assert [styles[j]["left"] for j in jobs] == sorted(styles[j]["left"] for j in jobs)
    expect(page.locator("#timeline-note")).to_have_text(re.compile(r"\d+ completed.*1 cancelled"))

    age = page.locator(f'#ages li[data-namespace="{ns}"]')
    expect(age).to_have_class(re.compile(r"\bfresh\b"))
    expect(age.locator(".when")).to_have_text(re.compile(r"^\d+ s ago$"))
    expect(age.locator(".count")).to_have_text("1 backup")
    never = page.locator(f'#ages li[data-namespace="{ns}_never"]')
    expect(never).to_have_class(re.compile(r"\bnever\b"))
    expect(never.locator(".when")).to_have_text("never backed up")
    assert page.evaluate(f"""getComputedStyle(document.querySelector(
        '#ages li[data-namespace="{ns}_never"] .when')).color""") == RED
    # The same number /metrics exports, give or take the seconds between the two reads.
    with __import__("urllib.request").request.urlopen(server.url + "/metrics") as resp:
        text = resp.read().decode()
    m = re.search(rf'^cairn_backup_age_seconds{{namespace="{ns}"}} (\S+)$', text, re.M)
    assert m is not None
    shown = int(age.get_attribute("data-age-seconds") or "-1")
    assert abs(float(m.group(1)) - shown) < 10

    # The window can be narrowed: the same bars, spread over 5 minutes; kept on reload.
    expect(page.locator("#tl-axis span").first).to_have_text("−60 min")
    page.locator("#tl-windows").get_by_role("button", name="5 min", exact=True).click()
    expect(page.locator("#tl-axis span")).to_have_text(
        ["−5 min", "−3.75 min", "−2.5 min", "−1.25 min", "now"])
    five = page.locator("#tl-windows").get_by_role("button", name="5 min", exact=True)
    expect(five).to_have_attribute("aria-pressed", "true")
    zoomed = bar_style(page, backup_job)
    assert 0 < zoomed["left"] < styles[backup_job]["left"] and zoomed["right"] <= 1.001
    page.reload()
    expect(page.locator("#tl-axis span").first).to_have_text("−5 min")
    expect(completed).to_have_attribute("data-status", "completed")

    # A few more jobs, so the picture for the docs shows what the panel is for.
    for _ in range(3):
        post_ok(server, f"INSERT INTO {ns}.t VALUES ({int(time.time() * 1000) % 10**9}, 'x'); "
                        f"FLUSH TABLE {ns}.t; BACKUP DATABASE {ns} TO 'tl'")
    post_ok(server, f"VERIFY BACKUP '{done['results'][0]['rows'][0]['backup_id']}' IN 'tl' "
                    "WITH (encryption_passphrase = 'pw')")
    expect(age.locator(".count")).to_have_text("4 backups", timeout=10000)
    page.fill("#editor", "SELECT job_type, status, count(*) AS jobs\nFROM system.jobs\n"
                         "GROUP BY ALL ORDER BY ALL;")
    page.press("#editor", "Control+Enter")
    expect(page.locator(".result")).to_have_count(1)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "console-timeline.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("CAIRN_UPDATE_DOCS_SCREENSHOT"):
        shutil.copy(shot, ROOT / "docs" / "console-timeline.png")


def test_newest_jobs_are_drawn_after_a_thousand_flushes(page: Page, tmp_path: Path) -> None:
    """The timeline fetched the hour's oldest 1000 jobs: after 1000 quick flushes
    (anyone may FLUSH) every newer job, a BACKUP here, was not drawn for an hour.
    Now the newest, and always the failed and live ones."""
    config = tmp_path / "cairn.toml"  # a log line a job would fill the unread stderr pipe
    config.write_text('[log]\nlevel = "WARNING"\n')
    server = ServerProcess(tmp_path / "data", config=config).start()
    try:
        post_ok(server, "CREATE NAMESPACE busy; CREATE TABLE busy.t (id BIGINT PRIMARY KEY); "
                        "INSERT INTO busy.t VALUES (1); "
                        "BACKUP DATABASE busy TO 'busy' WITH (encryption_passphrase = 'pw')")
        status, body = server.post("RESTORE DATABASE busy FROM 'busy' AS busy_copy WITH "
                                   "(encryption_passphrase = 'wrong')")
        assert status == 422, body
        post_ok(server, "FLUSH TABLE busy.t; " * 1000)
        newest = post_ok(server, "BACKUP DATABASE busy TO 'busy' WITH (encryption_passphrase = "
                                 "'pw')")["results"][0]["rows"][0]["job_id"]
        failed = server.post("SELECT job_id FROM system.jobs WHERE status = 'failed'"
                             )[1]["results"][0]["rows"][0]["job_id"]
        page.goto(server.url + "/")
        expect(page.locator(f'.tl-bar[data-job-id="{newest}"]')).to_have_attribute(
            "data-status", "completed", timeout=10000)
        expect(page.locator(f'.tl-bar[data-job-id="{failed}"]')).to_have_attribute(
            "data-status", "failed")
        expect(page.locator("#timeline .tl-bar")).to_have_count(1000)
        expect(page.locator("#timeline-note")).to_have_text(
            re.compile(r"1 failed.*only the newest 1000 jobs"))
    finally:
        server.kill()


def test_backup_age_counts_whole_backups_of_the_namespace_as_it_is(
        page: Page, slow_server: ServerProcess) -> None:
    """A BACKUP TABLE of one empty table, or a backup of a namespace since dropped
    and created again, made the namespace "fresh" in the panel (as in
    cairn_backup_age_seconds): neither holds its data."""
    ns = f"ages{os.getpid()}"
    post_ok(server := slow_server,
            f"CREATE NAMESPACE {ns}_shop; CREATE TABLE {ns}_shop.small (k INT PRIMARY KEY); "
            f"CREATE TABLE {ns}_shop.orders (k INT PRIMARY KEY); INSERT INTO {ns}_shop.orders "
            f"VALUES (1); CREATE NAMESPACE {ns}_app; CREATE TABLE {ns}_app.t (k INT PRIMARY KEY)")
    post_ok(server, f"BACKUP TABLE {ns}_shop.small TO 'ages'; BACKUP DATABASE {ns}_app TO 'ages'")
    post_ok(server, f"DROP NAMESPACE {ns}_app CASCADE; CREATE NAMESPACE {ns}_app")
    post_ok(server, f"CREATE NAMESPACE {ns}_set; BACKUP DATABASE {ns}_set, {ns}_app TO 'ages'; "
                    f"CREATE NAMESPACE {ns}_late")
    page.goto(server.url + "/")
    for name, state, count in (("shop", "never", "0 backups"), ("set", "fresh", "1 backup"),
                               ("app", "fresh", "1 backup"), ("late", "never", "0 backups")):
        item = page.locator(f'#ages li[data-namespace="{ns}_{name}"]')
        expect(item).to_have_class(re.compile(rf"\b{state}\b"))
        expect(item.locator(".count")).to_have_text(count)
    # Never backed up: its age is the namespace's, as the metric's.
    with __import__("urllib.request").request.urlopen(server.url + "/metrics") as resp:
        text = resp.read().decode()
    for name in ("shop", "late"):
        m = re.search(rf'^cairn_backup_age_seconds{{namespace="{ns}_{name}"}} (\S+)$', text, re.M)
        assert m is not None, name
        shown = page.locator(f'#ages li[data-namespace="{ns}_{name}"]')
        assert abs(float(m.group(1)) - int(shown.get_attribute("data-age-seconds") or "-99")) < 10


def test_backup_age_counts_no_backup_dated_in_the_future(
        page: Page, slow_server: ServerProcess) -> None:
    """A backup whose manifest says 2099 (ATTACH BACKUPS of a target written by a
    server whose clock ran ahead, or forged) made the namespace "fresh" in the
    panel until 2099, as in cairn_backup_age_seconds; and a namespace restored
    from it, created "in 2099" by its record, had every later backup before its
    creation. Neither counts now: the panel says never backed up, the metric's
    age grows (+Inf for the one of unknown creation), and a real backup counts."""
    from tests.helpers import reseal

    ns = f"fut{os.getpid()}"
    server = slow_server
    post_ok(server, f"CREATE NAMESPACE {ns}; CREATE TABLE {ns}.t (k INT PRIMARY KEY); "
                    f"INSERT INTO {ns}.t VALUES (1)")
    created = time.monotonic()
    bid = post_ok(server, f"BACKUP DATABASE {ns} TO '{ns}_src' WITH (compression = 'none')"
                  )["results"][0]["rows"][0]["backup_id"]
    root = server.data_dir / "backups"
    shutil.copytree(root / f"{ns}_src", root / f"{ns}_dst")
    manifest = root / f"{ns}_dst" / "manifests" / f"{bid}.json"
    new_id = bid[:-1] + ("y" if bid[-1] != "y" else "z")

    def future(doc: dict) -> None:
        doc.update(backup_id=new_id, created_at="2099-01-01T00:00:00.000Z",
                   snapshot_at="2099-01-01T00:00:00.000Z")
        doc["namespace_record"]["created_at"] = "2099-01-01T00:00:00.000Z"

    reseal(manifest, future)
    manifest.rename(manifest.with_name(f"{new_id}.json"))
    post_ok(server, f"DROP BACKUP '{bid}' IN '{ns}_src'; ATTACH BACKUPS FROM '{ns}_dst'")
    post_ok(server, f"RESTORE DATABASE {ns} FROM '{ns}_dst' AS {ns}_born "
                    f"WITH (backup_id = '{new_id}')")
    page.goto(server.url + "/")
    for name in (ns, f"{ns}_born"):
        item = page.locator(f'#ages li[data-namespace="{name}"]')
        expect(item).to_have_class(re.compile(r"\bnever\b"))
        expect(item.locator(".count")).to_have_text("0 backups")
    # the age counts from the namespace's creation: at least a second now (a
    # quiet machine got here in 0.5 s), where the 2099 backup made it 0
    time.sleep(max(0.0, 1.1 - (time.monotonic() - created)))
    with __import__("urllib.request").request.urlopen(server.url + "/metrics") as resp:
        text = resp.read().decode()
    m = re.search(rf'^cairn_backup_age_seconds{{namespace="{ns}"}} (\S+)$', text, re.M)
    assert m is not None and float(m.group(1)) >= 1
    shown = int(page.locator(f'#ages li[data-namespace="{ns}"]').get_attribute(
        "data-age-seconds") or "-99")
    assert abs(float(m.group(1)) - shown) < 10
    assert re.search(rf'^cairn_backup_age_seconds{{namespace="{ns}_born"}} \+Inf$', text, re.M)
    post_ok(server, f"BACKUP DATABASE {ns}_born TO '{ns}_src'")
    born = page.locator(f'#ages li[data-namespace="{ns}_born"]')
    expect(born).to_have_class(re.compile(r"\bfresh\b"), timeout=10000)
    expect(born.locator(".count")).to_have_text("1 backup")


def test_a_paused_job_is_live_in_the_timeline_and_the_jobs_panel(
        page: Page, slow_server: ServerProcess) -> None:
    """A paused backup was drawn as a finished one (`paused · 0 ms`, 1% wide),
    not counted in the jobs panel, and had no kill button."""
    page.goto(slow_server.url + "/")
    job_id = post_ok(slow_server, "BACKUP DATABASE big TO 'tl-paused' WITH (detached = true)"
                     )["results"][0]["rows"][0]["job_id"]
    bar = page.locator(f'.tl-bar[data-job-id="{job_id}"]')
    expect(bar).to_have_attribute("data-status", "running", timeout=10000)
    post_ok(slow_server, f"PAUSE JOB '{job_id}'")
    expect(bar).to_have_attribute("data-status", "paused", timeout=5000)
    # Drawn to now, its time still counting.
    expect(bar).to_have_attribute("title", re.compile(r"· paused · [1-9][\d.]* s ·"), timeout=10000)
    assert bar_style(page, job_id)["right"] > 0.99
    item = page.locator(f'.job[data-job-id="{job_id}"]')
    expect(page.locator("#jobs-note")).to_have_text("0 running · 1 paused")
    page.on("dialog", lambda d: d.accept())
    item.locator(".kill").click()
    expect(item).to_have_attribute("data-status", "cancelled", timeout=10000)
    expect(bar).to_have_attribute("data-status", "cancelled")
