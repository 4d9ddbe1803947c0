"""The Backups panel's restore… button, in a real headless Chromium: the
statement it puts in the editor runs. It wrote RESTORE DATABASE for a BACKUP
TABLE backup (refused: "restore them with RESTORE TABLE") and `AS
<ns>_restored` past the 64-character bound for a namespace over 55 characters."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.helpers import ServerProcess


def restore_and_run(page: Page, server: ServerProcess, backup_id: str, expected: str) -> None:
    """Click restore… of `backup_id` (the page freshly loaded), see `expected`
    in the editor, run it: every statement runs."""
    page.goto(server.url + "/")
    item = page.locator(f'#backups li[data-backup-id="{backup_id}"]')
    item.locator("button", has_text="restore").click()
    expect(page.locator("#editor")).to_have_value(expected)
    page.press("#editor", "Control+Enter")
    count = expected.count("\n") + 1
    expect(page.locator("#status")).to_have_text(re.compile(rf"^{count} statements? · "),
                                                 timeout=30000)
    expect(page.locator("#error")).to_be_hidden()


def test_restore_button_writes_a_statement_that_runs(
        page: Page, server: ServerProcess, ns: str) -> None:
    long = (ns + "_long_" + "n" * 64)[:60]
    status, body = server.post(
        f"CREATE TABLE {ns}.more (id BIGINT PRIMARY KEY); INSERT INTO {ns}.more VALUES (7); "
        f"CREATE NAMESPACE {long}; CREATE TABLE {long}.t (id BIGINT PRIMARY KEY); "
        f"INSERT INTO {long}.t VALUES (1); "
        f"BACKUP TABLE {ns}.notes, {ns}.more TO 'tables_{ns}'; "
        f"BACKUP DATABASE {long} TO 'long_{ns}'; BACKUP DATABASE {ns}, {long} TO 'set_{ns}'")
    assert status == 200, body
    _, body = server.post("SELECT backup_id, namespace, target, scope FROM system.backups "
                          f"WHERE namespace IN ('{ns}', '{long}')")
    backups = {(b["namespace"], b["scope"].split(" ")[0]): b for b in body["results"][0]["rows"]}
    assert len(backups) == 4, backups

    def statement(b: dict[str, str], what: str, as_: str) -> str:
        options = f"WITH (backup_id = '{b['backup_id']}')"
        return f"RESTORE {what} FROM '{b['target']}' AS {as_} {options};"

    def each_table(b: dict[str, str], suffix: str) -> str:
        return "\n".join(statement(b, f'TABLE "{ns}"."{t}"', f'"{ns}"."{t}{suffix}"')
                         for t in ("more", "notes"))

    # A table backup: one RESTORE TABLE per table, beside it in its namespace.
    tables = backups[(ns, "tables:")]
    assert tables["scope"] == "tables: more, notes"
    restore_and_run(page, server, tables["backup_id"], each_table(tables, "_restored"))
    # A 60-character namespace: its new name cut to the bound.
    whole = backups[(long, "database")]
    as_long = long[:55] + "_restored"
    restore_and_run(page, server, whole["backup_id"],
                    statement(whole, f'DATABASE "{long}"', f'"{as_long}"'))
    # Again: the names now taken are passed over.
    restore_and_run(page, server, tables["backup_id"], each_table(tables, "_restored2"))
    member = backups[(long, "databases")]
    restore_and_run(page, server, member["backup_id"],
                    statement(member, f'DATABASE "{long}"', f'"{long[:54]}_restored2"'))
    status, body = server.post(
        f"SELECT (SELECT count(*) FROM {ns}.notes_restored2) AS notes, "
        f"(SELECT id FROM {ns}.more_restored) AS more, (SELECT id FROM {as_long}.t) AS t, "
        f"(SELECT id FROM {long[:54]}_restored2.t) AS t2")
    assert status == 200, body
    assert body["results"][0]["rows"] == [{"notes": 2, "more": 7, "t": 1, "t2": 1}]
