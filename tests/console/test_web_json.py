"""The web console shows a JSON column's value as it is stored (and as the
answer carries it, docs/http.md), in a real headless Chromium: it parsed the
answer and wrote each JSON value again with JSON.stringify, so the grid showed
another text than the one stored."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.console.test_web import run_sql
from tests.helpers import ServerProcess

# Each as stored; JSON.parse + JSON.stringify showed the second.
STORED = [
    ('{"a":1,"a":2}', '{"a":2}'),
    ("-0", "0"),
    ("12345678901234567.89", "12345678901234568"),
    ("0.1000000000000000055511151231257827", "0.1"),
    ('{"price": 1.10}', '{"price":1.1}'),
    ('"str"', "str"),
    ('"<img src=x onerror=\\"document.title=1\\">"', '<img src=x onerror="document.title=1">'),
    ('{"q": "a\\"}]\\\\", "n": [1e2, -0.0, 2E-3], "": {}}',
     '{"q":"a\\"}]\\\\","n":[100,0,0.002],"":{}}'),
    ("[ ]", "[]"),
    ("true", "true"),
]


def test_json_values_are_shown_as_stored(page: Page, server: ServerProcess, ns: str) -> None:
    values = ", ".join(f"({i}, '{text}')" for i, (text, _) in enumerate(STORED))
    status, body = server.post(f"CREATE TABLE {ns}.docs (id BIGINT PRIMARY KEY, js JSON); "
                               f"INSERT INTO {ns}.docs VALUES {values}, (100, 'null'), (101, NULL)")
    assert status == 200, body
    _, body = server.post(f"SELECT id, js::VARCHAR AS t FROM {ns}.docs ORDER BY id")
    stored = [r["t"] for r in body["results"][0]["rows"]]
    assert stored[:len(STORED)] == [text for text, _ in STORED]  # DuckDB keeps the text
    page.goto(server.url + "/")
    run_sql(page, f"SELECT js, id FROM {ns}.docs ORDER BY id")
    cells = page.locator('.result[data-statement="1"] tbody td:first-child')
    # a wide bound: the answer may be slow on a loaded machine, never wrong
    expect(cells).to_have_text([text for text, _ in STORED] + ["NULL", "NULL"], timeout=30000)
    for i, (text, _) in enumerate(STORED):
        expect(cells.nth(i)).to_have_attribute("title", text)
    # The markup in a value is text: no element made of it, nothing ran.
    assert page.locator("#results img").count() == 0
    assert page.title() != "1"


def test_other_values_keep_what_the_answer_says(page: Page, server: ServerProcess) -> None:
    """A DOUBLE's -0.0 showed 0; a LIST's or STRUCT's numbers (typed JSON
    in the answer) went through JSON.stringify too."""
    page.goto(server.url + "/")
    run_sql(page, "SELECT -0.0::DOUBLE AS z, [-0.0::DOUBLE, 0.5] AS l, "
                  "{'a': 9007199254740993::BIGINT, 'b': -0.0::DOUBLE} AS s, 2.5::DOUBLE AS d")
    expect(page.locator('.result[data-statement="1"] td')).to_have_text(
        ["-0", "[-0.0,0.5]", '{"a":9007199254740993,"b":-0.0}', "2.5"], timeout=30000)
