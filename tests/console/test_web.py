"""The web console at GET / in a real headless Chromium (Debian's `chromium`,
driven by Playwright): type, run, read the rows; watch a backup's bar finish."""

from __future__ import annotations

import re
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.console.conftest import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ROOT
from tests.helpers import ServerProcess


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, "", b""


def run_sql(page: Page, sql: str) -> None:
    page.fill("#editor", sql)
    page.press("#editor", "Control+Enter")


def test_page_and_static_files_come_from_the_package(server: ServerProcess) -> None:
    status, ctype, body = get(server.url + "/")
    assert status == 200 and ctype.startswith("text/html")
    assert b'<textarea id="editor"' in body and b"/static/console.js" in body
    for name, kind in (("console.js", "javascript"), ("console.css", "text/css")):
        status, ctype, _ = get(f"{server.url}/static/{name}")
        assert status == 200 and kind in ctype, (name, ctype)
    assert get(server.url + "/static/nope.js")[0] == 404
    assert get(server.url + "/static/%2e%2e/web.py")[0] in (403, 404)
    # A name past the file system's limits (256+ bytes, a path of 4096+) was a
    # 500 INTERNAL with a traceback (ENAMETOOLONG), no token needed.
    for path in ("a" * 256, "a" * 5000, "a/" * 2100, "console.js/" + "a" * 300):
        assert get(f"{server.url}/static/{path}")[0] == 404, path[:20]
    # No other site may frame it (clickjacking).
    import urllib.request

    with urllib.request.urlopen(server.url + "/", timeout=10) as resp:
        assert resp.headers["X-Frame-Options"] == "DENY"
        policy = resp.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy


def test_every_static_file_is_package_data() -> None:
    """A wheel holds what `[tool.setuptools.package-data]` globs match (not recursive),
    so a file in a subfolder of server/static would be missing from a real install."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["server"]
    package = ROOT / "server"
    shipped = {p for pattern in patterns for p in package.glob(pattern) if p.is_file()}
    static = {p for p in (package / "static").rglob("*") if p.is_file()}
    assert {"index.html", "console.js", "console.css"} <= {p.name for p in static}
    assert static <= shipped, sorted(str(p) for p in static - shipped)


def test_query_runs_with_ctrl_enter_and_shows_rows(
        page: Page, server: ServerProcess, ns: str) -> None:
    page.goto(server.url + "/")
    run_sql(page, f"INSERT INTO {ns}.notes VALUES (3, 'third', NULL);\n"
                  f"SELECT id, body, score FROM {ns}.notes ORDER BY id")
    second = page.locator('.result[data-statement="2"]')
    expect(second.locator("th")).to_have_text(["idbigint", "bodytext", "scoredouble"])
    expect(second.locator("tbody tr")).to_have_count(3)
    expect(second.locator("tbody tr").first.locator("td")).to_have_text(["1", "hello", "1.5"])
    expect(second.locator("td.num").first).to_have_text("1")  # numbers right-aligned
    expect(second.locator("td.null")).to_have_count(2)
    expect(second.locator(".count")).to_have_text("(3 rows)")
    expect(page.locator('.result[data-statement="1"] .message')).to_have_text("1 row inserted")
    expect(page.locator("#status")).to_have_text(re.compile(r"2 statements · [\d.]+ ms"))
    expect(page.locator("#error")).to_be_hidden()
    # The editor is kept across reloads; the Run button runs just the selection.
    page.reload()
    expect(page.locator("#editor")).to_have_value(re.compile(r"^INSERT .*\nSELECT id, body"))
    page.evaluate("editor.setSelectionRange(editor.value.indexOf('SELECT'), editor.value.length)")
    page.click("#run")
    expect(page.locator(".result")).to_have_count(1)
    expect(page.locator('.result[data-statement="1"] .count')).to_have_text("(3 rows)")


def test_the_editor_is_kept_without_its_passphrases(page: Page, server: ServerProcess) -> None:
    """The editor's text, kept across reloads in localStorage, held a BACKUP's
    passphrase in clear."""
    page.goto(server.url + "/")
    run_sql(page, "SELECT 1 AS one -- WITH (encryption_passphrase = 'Web-Secret-1', label = 'l')\n"
                  "-- WITH (encryption_passphrase /* pp */ = 'Web-Secret-2')")
    expect(page.locator('.result[data-statement="1"] .count')).to_have_text("(1 row)")
    kept = page.evaluate("localStorage.getItem('cairn.editor')")
    assert "Web-Secret" not in kept and "encryption_passphrase = '***', label = 'l'" in kept
    page.reload()
    expect(page.locator("#editor")).to_have_value(re.compile(r"passphrase = '\*\*\*'"))


def test_bidirectional_controls_in_data_are_shown_as_escapes(
        page: Page, server: ServerProcess) -> None:
    """A role-user's value 'invoice_<RLO>fdp.exe' read as invoice_exe.pdf in the
    admin's console (names and errors too); `cairn sql` showed the escape."""
    page.goto(server.url + "/")
    run_sql(page, "SELECT 'invoice_\u202efdp.exe' AS \"a\u2067b\"")
    result = page.locator('.result[data-statement="1"]')
    expect(result.locator("td")).to_have_text("invoice_\\u202efdp.exe")
    expect(result.locator("th")).to_contain_text("a\\u2067b")


def test_bidirectional_controls_in_tooltips_are_shown_as_escapes(
        page: Page, server: ServerProcess, ns: str) -> None:
    """A cell's text showed the escape, but its `title` tooltip the raw value
    (el() escaped text, not attributes): 'invoice_<RLO>fdp.exe' read
    invoice_exe.pdf on hover. So did a backup's target and label, a job's
    statement and a failed job's error on the timeline. Now no attribute of
    the page holds a bidirectional control: each shows its escape."""
    rlo = "\u202e"
    status, body = server.post(f"BACKUP DATABASE {ns} TO 'to{rlo}{ns}' WITH (label = 'lab{rlo}el')")
    assert status == 200, body
    backup_id, backup_job = (body["results"][0]["rows"][0][k] for k in ("backup_id", "job_id"))
    status, body = server.post(f"RESTORE DATABASE {ns} FROM 'to{rlo}{ns}' AS {ns}_copy "
                               "WITH (encryption_passphrase = 'pw')")
    assert status == 422, body
    _, body = server.post("SELECT job_id FROM system.jobs WHERE status = 'failed' "
                          "ORDER BY created_at DESC LIMIT 1")
    failed = body["results"][0]["rows"][0]["job_id"]
    page.goto(server.url + "/")
    run_sql(page, f"SELECT 'invoice_{rlo}fdp.exe' AS v")
    cell = page.locator('.result[data-statement="1"] td')
    expect(cell).to_have_attribute("title", "invoice_\\u202efdp.exe")
    item = page.locator(f'#backups li[data-backup-id="{backup_id}"]')
    expect(item.locator(".what")).to_have_attribute("title", re.compile(r"/to\\u202e\w+$"))
    expect(item.locator(".id")).to_have_attribute("title", "lab\\u202eel")
    expect(page.locator(f'.job[data-job-id="{backup_job}"] .what')).to_have_attribute(
        "title", re.compile(r"'to\\u202e.*'lab\\u202eel'"))
    bar = page.locator(f'.tl-bar[data-job-id="{failed}"]')
    expect(bar).to_have_attribute("title", re.compile(r"failed[\s\S]*/to\\u202e"))
    raw = page.evaluate("""() => [...document.querySelectorAll('*')].flatMap((e) =>
        [...e.attributes].filter((a) => /[\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]/
        .test(a.value)).map((a) => `${e.tagName}.${a.name}=${a.value}`))""")
    assert raw == [], raw


def test_error_shows_code_line_and_column(page: Page, server: ServerProcess) -> None:
    page.goto(server.url + "/")
    run_sql(page, "SELECT 1 AS one;\n  SELECT * FROM nope.t")
    error = page.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("ERROR NOT_FOUND: Namespace 'nope' does not exist")
    expect(error.locator(".where")).to_have_text("at line 2, column 3 (statement 2)")
    expect(error.locator("pre")).to_have_text("  SELECT * FROM nope.t\n  ^")
    assert page.evaluate("getComputedStyle(document.querySelector('#error')).color") \
        == "rgb(208, 52, 44)"
    # the statement before the failing one ran and is shown; the cursor is on the spot
    expect(page.locator('.result[data-statement="1"] td')).to_have_text("1")
    assert page.evaluate("[editor.selectionStart, editor.selectionEnd]") == [19, 25]
    expect(page.locator("#status")).to_have_text(re.compile(r"statement 2 failed"))


def test_detached_backup_bar_finishes_and_backup_is_listed(
        page: Page, slow_server: ServerProcess) -> None:
    page.goto(slow_server.url + "/")
    run_sql(page, "BACKUP DATABASE big TO 'web' WITH (detached = true, label = 'from web')")
    job_id = page.locator('.result[data-statement="1"] tbody td').first.inner_text()
    assert job_id.startswith("job-")
    job = page.locator(f'.job[data-job-id="{job_id}"]')
    expect(job.locator(".badge")).to_have_text(re.compile("queued|running"), timeout=5000)
    expect(job.locator(".what")).to_have_text(re.compile(r"^backup big → \S*web$"))
    expect(job.locator(".kill")).to_be_visible()
    # The panel polls system.jobs every second; the throttle keeps this one ~2 s long.
    expect(job).to_have_attribute("data-status", "completed", timeout=20000)
    expect(job.locator(".pct")).to_have_text("100%")
    expect(job.locator('[role="progressbar"]')).to_have_attribute("aria-valuenow", "100")
    expect(job.locator(".kill")).to_have_count(0)
    _, body = slow_server.post(f"SELECT backup_id FROM system.jobs WHERE job_id = '{job_id}'")
    backup_id = body["results"][0]["rows"][0]["backup_id"]
    item = page.locator(f'#backups li[data-backup-id="{backup_id}"]')
    expect(item).to_be_visible(timeout=10000)  # the list refreshes when a job ends
    expect(item.locator(".what")).to_have_text("big → …/web")
    expect(item.locator(".size")).to_have_text(re.compile(r"^20000 rows · [\d.]+ KB$"))
    expect(item.locator(".label")).to_have_text("from web")
    target = item.locator(".what").get_attribute("title")
    item.locator("button", has_text="verify").click()
    expect(page.locator("#editor")).to_have_value(f"VERIFY BACKUP '{backup_id}' IN '{target}';")
    page.press("#editor", "Control+Enter")
    # The throttle keeps the VERIFY ~2 s long too; until it answers, the panel still
    # shows the BACKUP's row (status "queued"), so give it the backup's margin.
    expect(page.locator('.result[data-statement="1"] td').nth(1)).to_have_text(
        "true", timeout=20000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-console.png"), full_page=True)
    assert (ARTIFACTS / "web-console.png").stat().st_size > 10_000


# In the page, before console.js: the jobs panel's answers with every live job's
# `waiting_for` set (when the server's answer has the column), as for a restore
# whose install waits behind a busy table (storage/lockset.py).
WAITING_JOBS = """
const realFetch = window.fetch;
window.fetch = async (url, init) => {
  const body = String((init && init.body) || "");
  const resp = await realFetch(url, init);
  if (!(body.includes("FROM system.jobs") && body.includes("LIMIT 12"))) return resp;
  const answer = await resp.json();
  for (const r of answer.results || []) {
    if (!(r.columns || []).includes("waiting_for")) continue;
    for (const row of r.rows) if (row.status === "running") row.waiting_for = "table big.t";
  }
  return new Response(JSON.stringify(answer), {status: resp.status, headers: resp.headers});
};
"""


def test_a_job_waiting_for_a_lock_says_so_in_the_jobs_panel(
        page: Page, slow_server: ServerProcess) -> None:
    """A restore's install behind a busy table stands at 99%; the panel did not
    say why (`system.jobs.waiting_for`, asked of the real server)."""
    page.add_init_script(WAITING_JOBS)
    page.goto(slow_server.url + "/")
    run_sql(page, "BACKUP DATABASE big TO 'web-wait' WITH (detached = true)")
    job_id = page.locator('.result[data-statement="1"] tbody td').first.inner_text()
    job = page.locator(f'.job[data-job-id="{job_id}"]')
    expect(job.locator(".waiting")).to_have_text("waiting for table big.t", timeout=10000)
    expect(job).to_have_attribute("data-status", "completed", timeout=20000)
    expect(job.locator(".waiting")).to_have_count(0)


def test_archiving_panel_shows_status_and_lag(page: Page, server: ServerProcess) -> None:
    status, body = server.post("CREATE NAMESPACE web_arch; CREATE TABLE web_arch.t (id INT);"
                               "START ARCHIVING DATABASE web_arch TO 'web-arch'")
    assert status == 200, body
    try:
        page.goto(server.url + "/")
        item = page.locator('#archives li[data-namespace="web_arch"]')
        expect(item.locator(".badge")).to_have_text("running", timeout=10000)
        expect(item.locator(".lag")).to_have_text(re.compile(r"^lag \d+ ms$"))
        expect(item.locator(".what")).to_have_text("web_arch → …/web-arch")
        server.post("STOP ARCHIVING DATABASE web_arch")
        expect(item.locator(".badge")).to_have_text("stopped", timeout=10000)
    finally:
        server.post("STOP ARCHIVING DATABASE web_arch")


def test_a_page_of_another_site_cannot_run_statements(
        page: Page, server: ServerProcess, ns: str) -> None:
    """CSRF: any page the operator opens could POST a statement here without a
    preflight (`mode: "no-cors"`, a body of no type, or `text/plain; x=+json`,
    which passed as JSON), and in auth mode "none" it ran as admin. Now a
    request whose Origin is not the server's own answers 403 and runs nothing."""
    page.goto(server.url.replace("127.0.0.1", "localhost") + "/")  # another origin
    page.evaluate("""async ([url, ns]) => {
        const post = (body, headers) => fetch(url + "/api/sql", {method: "POST", mode: "no-cors",
            headers, body});
        await post(new Blob([JSON.stringify(
            {sql: `INSERT INTO ${ns}.notes VALUES (8, 'blob', 0)`})]));
        await post(JSON.stringify({sql: `INSERT INTO ${ns}.notes VALUES (9, 'plain', 0)`}),
                   {"Content-Type": "text/plain; x=+json"});
    }""", [server.url, ns])
    status, body = server.post(f"SELECT id FROM {ns}.notes ORDER BY id")
    assert status == 200 and body["results"][0]["rows"] == [{"id": 1}, {"id": 2}], body
    # The console on the server's own origin runs statements as before.
    page.goto(server.url + "/")
    run_sql(page, f"SELECT count(*) AS n FROM {ns}.notes")
    expect(page.locator('.result[data-statement="1"] td')).to_have_text("2")


def test_a_page_of_a_rebound_name_reads_no_metrics(page: Page, server: ServerProcess,
                                                   ns: str) -> None:
    """DNS rebinding in a real Chromium (evil.test mapped to 127.0.0.1, as a
    rebound name is): the page is same-origin with the server, its POST to
    /api/sql was refused, but its GET /metrics read every namespace name and
    archive target, and GET /health answered. Both are refused now."""
    browser = page.context.browser
    assert browser is not None
    rebound = browser.browser_type.launch(executable_path=CHROMIUM, args=[
        *CHROMIUM_ARGS, "--host-resolver-rules=MAP evil.test 127.0.0.1"])
    try:
        evil = rebound.new_page()
        evil.goto(server.url.replace("127.0.0.1", "evil.test") + "/")  # the page loads: no data
        got = evil.evaluate("""async () => {
            const m = await fetch('/metrics'), h = await fetch('/health');
            const s = await fetch('/api/sql', {method: 'POST', body: '{"sql": "SELECT 1"}'});
            return [m.status, await m.text(), h.status, s.status]; }""")
    finally:
        rebound.close()
    assert (got[0], got[2], got[3]) == (403, 403, 403), got
    assert ns not in got[1] and "PERMISSION_DENIED" in got[1]
    page.goto(server.url + "/")  # by its own name, the console works as before
    run_sql(page, f"SELECT count(*) AS n FROM {ns}.notes")
    expect(page.locator('.result[data-statement="1"] td')).to_have_text("2")


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("tokens")
    config = root / "cairn.toml"
    config.write_text('[auth]\nmode = "token"\n'
                      '[[auth.tokens]]\ntoken = "t-root"\nuser = "root"\nrole = "admin"\n')
    proc = ServerProcess(root / "data", config=config).start()
    yield proc
    proc.kill()


@pytest.mark.parametrize("typed, who", [("  t-root\t", "root"), ("t-root\u00a0", None),
                                        ("\u00a0t-root", None), ("\ufefft-root", None)])
def test_the_console_sends_the_token_typed_but_its_blanks(
        page: Page, token_server: ServerProcess, typed: str, who: str | None) -> None:
    """The console trimmed the token with trim(), which takes Unicode spaces too
    (U+00A0, U+FEFF, ...): a token typed with one was sent as another, the way the
    server's str.strip() read it. Only spaces and tabs at its ends are dropped,
    as the server drops from the header."""
    page.goto(token_server.url + "/")
    page.fill("#token", typed)
    run_sql(page, "SELECT current_user AS who")
    if who is not None:
        expect(page.locator('.result[data-statement="1"] td')).to_have_text(who)
    else:
        expect(page.locator("#error")).to_be_visible()
        expect(page.locator(".result")).to_have_count(0)


# In the page, before console.js: every jobs-panel request (`FROM system.jobs ...
# LIMIT 12`) is answered 2.5 s late, as by a server busy with a big jobs table;
# counted, with how many wait at once and how big each answer is.
SLOW_JOBS_POLLS = """
window.polls = {started: 0, waiting: 0, most: 0, sizes: []};
const realFetch = window.fetch;
window.fetch = async (url, init) => {
  const body = String((init && init.body) || "");
  const jobs = body.includes("FROM system.jobs") && body.includes("LIMIT 12");
  if (!jobs) return realFetch(url, init);
  const p = window.polls;
  p.started++; p.waiting++; p.most = Math.max(p.most, p.waiting);
  try {
    const resp = await realFetch(url, init);
    const text = await resp.text();
    p.sizes.push(text.length);
    await new Promise((r) => setTimeout(r, 2500));
    return new Response(text, {status: resp.status, headers: resp.headers});
  } finally { p.waiting--; }
};
"""


def test_jobs_polls_never_overlap_and_fetch_only_the_start_of_statements(
        page: Page, server: ServerProcess, ns: str) -> None:
    """setInterval started a jobs poll every second, answered or not: with a slow
    answer they piled up (every console open held the server busier). And each
    asked for every job's whole statement, megabytes a second."""
    label = "L" * 20_000
    status, body = server.post(f"BACKUP DATABASE {ns} TO 'web-polls' WITH (label = '{label}')")
    assert status == 200, body
    job_id = body["results"][0]["rows"][0]["job_id"]
    page.add_init_script(SLOW_JOBS_POLLS)
    page.goto(server.url + "/")
    what = page.locator(f'.job[data-job-id="{job_id}"] .what')
    expect(what).to_be_visible(timeout=10000)
    run_sql(page, "SELECT 1 AS one")  # asks for a poll while one waits
    expect(page.locator('.result[data-statement="1"] td')).to_have_text("1")
    page.wait_for_timeout(6000)
    polls = page.evaluate("window.polls")
    assert polls["most"] == 1 and polls["started"] >= 3, polls
    title = what.get_attribute("title") or ""
    assert len(title) == 201 and title.endswith("L…") and title.startswith("BACKUP DATABASE"), title
    assert max(polls["sizes"]) < 10_000, polls  # the 20,000-character label never comes


def test_jobs_panel_says_when_the_answer_was_cut(
        page: Page, tmp_path: Path) -> None:
    """The server cuts an answer past [server] max_result_rows and says so in
    the result's message; the panel dropped it and showed the rows as all."""
    config = tmp_path / "cairn.toml"
    config.write_text("[server]\nmax_result_rows = 2\n")
    server = ServerProcess(tmp_path / "data", config=config).start()
    try:
        status, body = server.post("CREATE NAMESPACE cut; CREATE TABLE cut.t (k INT PRIMARY KEY); "
                                   + "FLUSH TABLE cut.t; " * 3)
        assert status == 200, body
        page.goto(server.url + "/")
        expect(page.locator("#jobs li.job")).to_have_count(2, timeout=10000)
        expect(page.locator("#jobs-note")).to_have_text(
            re.compile(r"^0 running · answer truncated to its first 2 rows"))
        expect(page.locator("#timeline-note")).to_contain_text("answer truncated to its first 2")
    finally:
        server.kill()


def test_integers_past_2_53_are_shown_exactly(page: Page, server: ServerProcess, ns: str) -> None:
    """The answer's JSON holds them exactly; resp.json() made each a double
    (9007199254740993 shown as ...992, 2^63-1 as 9223372036854776000)."""
    status, body = server.post(
        f"CREATE TABLE {ns}.ids (id BIGINT PRIMARY KEY, doc JSON); INSERT INTO {ns}.ids VALUES "
        f"""(9007199254740993, '{{"n": 9007199254740993, "f": 1.5, """
        """"l": [-9223372036854775808, 7]}'), """
        "(9223372036854775807, NULL), (-9007199254740993, '12345678901234567890123')")
    assert status == 200, body
    page.goto(server.url + "/")
    run_sql(page, f"SELECT id, doc, id::HUGEINT * 2 AS twice FROM {ns}.ids ORDER BY id;\n"
                  "SELECT 170141183460469231731687303715884105727::HUGEINT AS h, 42 AS small, "
                  "0.1::DOUBLE AS d, 1e300::DOUBLE AS e")
    first = page.locator('.result[data-statement="1"] tbody tr')
    expect(first.nth(0).locator("td")).to_have_text(
        ["-9007199254740993", "12345678901234567890123", "-18014398509481986"])
    expect(first.nth(1).locator("td")).to_have_text(
        ["9007199254740993", '{"n": 9007199254740993, "f": 1.5, "l": [-9223372036854775808, 7]}',
         "18014398509481986"])
    expect(first.nth(2).locator("td")).to_have_text(
        ["9223372036854775807", "NULL", "18446744073709551614"])
    expect(page.locator('.result[data-statement="2"] td')).to_have_text(
        ["170141183460469231731687303715884105727", "42", "0.1", "1e+300"])
