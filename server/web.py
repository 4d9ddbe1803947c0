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


# No other site may frame the console (a framed console under a decoy page
# takes the user's clicks: clickjacking).
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def index(request: web.Request) -> web.FileResponse:
    """The console page; never cached, so an upgraded server serves the new page."""
    return web.FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)


async def static_file(request: web.Request) -> web.FileResponse:
    """One of the console's files; any other name is 404."""
    name = request.match_info["name"]
    if name not in FILES:
        raise web.HTTPNotFound()
    return web.FileResponse(STATIC / name)


def add_routes(app: web.Application) -> None:
    """Add `GET /` (the console) and `GET /static/<file>` to the app."""
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static_file)
