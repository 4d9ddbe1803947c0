"""The web console: `GET /` and `/static/...`, served from files inside the package.

Plain HTML, JS and CSS with no build step, so the files in `server/static/`
are exactly what the browser runs; the page talks to the same `/api/sql` as
every other client."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).with_name("static")


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


def add_routes(app: web.Application) -> None:
    """Add `GET /` (the console) and `GET /static/<file>` to the app."""
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC, append_version=False)
