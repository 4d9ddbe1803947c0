"""The web console: `GET /` and `/static/...`, served from files inside the package.

Plain HTML, JS and CSS with no build step, so the files in `server/static/`
are exactly what the browser runs; the page talks to the same `/api/sql` as
every other client."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).with_name("static")
# The files served under /static/, by name. A name is looked up here, never
# handed to the file system: aiohttp's static route did, and a name of 256+
# bytes (or a path of 4096+) was a 500 with a traceback (ENAMETOOLONG).
FILES = frozenset(p.name for p in STATIC.iterdir() if p.is_file())


# Every answer the server sends, on every route and for every error (the
# console's page and files, /api/sql, /health, /metrics, aiohttp's own 404,
# 405, 413 and 417): no other site may frame it (a framed console under a
# decoy page takes the user's clicks: clickjacking; /static/index.html is the
# same console as /, and was framed), and no browser reads it as another type
# than its Content-Type. Set once, as each answer is prepared (`protect`),
# never left to a route.
HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def protect(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: HEADERS on the answer about to be sent."""
    response.headers.update(HEADERS)


# The console's page and files: a browser keeps them but asks, each time they
# are used, whether they changed (a 304 if not).
NO_CACHE = {"Cache-Control": "no-cache"}


async def index(request: web.Request) -> web.FileResponse:
    """The console page; never cached, so an upgraded server serves the new page."""
    return web.FileResponse(STATIC / "index.html", headers=NO_CACHE)


async def static_file(request: web.Request) -> web.FileResponse:
    """One of the console's files; any other name is 404. Never used unasked
    either: with Last-Modified alone a browser kept console.js (heuristically,
    a tenth of its age: days) and ran the old one under an upgraded page. With
    `no-cache` it asks each time, and a file not changed since is a 304 (its
    ETag or Last-Modified)."""
    name = request.match_info["name"]
    if name not in FILES:
        raise web.HTTPNotFound()
    return web.FileResponse(STATIC / name, headers=NO_CACHE)


def add_routes(app: web.Application) -> None:
    """Add `GET /` (the console) and `GET /static/<file>` to the app, and
    HEADERS to every answer of the app."""
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static_file)
    app.on_response_prepare.append(protect)
