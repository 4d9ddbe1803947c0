"""Who is calling: `none` mode trusts X-User-Id (everyone admin); `token` mode
maps a Bearer token to a user and a role."""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import urlsplit

from aiohttp import web

from catalog.errors import InvalidRequest, PermissionDenied, Unauthenticated

from .config import AuthConfig, ServerConfig
from .config_checks import USER_ID
from .state import Session
from .text import check_header


def _one_header(request: web.Request, name: str) -> str | None:
    """The header's value; a header sent twice is refused (400), never one of
    the two picked: a proxy in front that read the other would disagree on who
    is calling."""
    values = request.headers.getall(name, [])
    if len(values) > 1:
        raise InvalidRequest(f"header {name} is sent {len(values)} times; send it once")
    return check_header(values[0], name) if values else None


def _user_header(request: web.Request) -> str | None:
    user = _one_header(request, "X-User-Id")
    if user is None or user == "":
        return None
    if not USER_ID.match(user):
        raise InvalidRequest(
            "X-User-Id must be 1-128 characters of letters, digits and _ . @ : + -"
        )
    return user


def authenticate(request: web.Request, cfg: AuthConfig) -> Session:
    if cfg.mode == "none":
        return Session(user_id=_user_header(request), role="admin")
    header = _one_header(request, "Authorization") or ""
    scheme, _, token = header.partition(" ")
    # Only the blanks HTTP itself puts around a value (RFC 9110 OWS: spaces
    # and tabs) are dropped: str.strip() also took Unicode spaces (U+3000,
    # U+00A0, ...) off, making another user's token of one a match.
    token = token.strip(" \t")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("missing Authorization: Bearer <token>")
    found = None
    for entry in cfg.tokens:
        # Compare against every token in constant time, whatever matches first.
        if hmac.compare_digest(entry["token"].encode(), token.encode()):
            found = entry
    if found is None:
        raise Unauthenticated("invalid token")
    return Session(user_id=found["user"], role=found.get("role", "user"))


def check_origin(request: web.Request, server: ServerConfig | None = None) -> None:
    """Refuse a request a browser sent from another site's page (CSRF).

    A page on any site can make the browser POST to this server without a
    preflight (`fetch(..., {mode: "no-cors"})` with a body of no type or of
    type `text/plain`): it cannot read the answer, but the statement runs. In
    `auth.mode = "none"` nothing else stops it (the caller is admin). A
    browser names the page's origin in `Origin` on every such request; other
    clients send none. So a request whose `Origin` is not this server's own
    (the `Host` it was sent to) answers 403 PERMISSION_DENIED, and so does one
    sent to a name that is not the server's (localhost, an IP address, its
    configured host, `[server] allowed_hosts`): DNS rebinding."""
    origin = check_header(request.headers.get("Origin"), "Origin")
    if origin is None:
        return
    host = (request.headers.get("Host") or "").lower()
    try:
        netloc = urlsplit(origin).netloc.lower() if origin != "null" else ""
    except ValueError:
        netloc = ""
    if not host or netloc != host:
        raise PermissionDenied(
            f"cross-origin request refused: a page from {origin[:200]!r} may not send "
            f"statements to this server (Origin must be this server, {host[:200]!r})")
    # Same origin, but by which name? An attacker's name re-pointed at this
    # server (DNS rebinding) makes its page "same-origin": Origin and Host are
    # both that name. Only the names the server is reached by are taken.
    _check_name(host, server)


def check_reached(request: web.Request, server: ServerConfig, mode: str) -> None:
    """For `GET /metrics` and `GET /health`: the Origin check of /api/sql, and
    in `auth.mode = "none"` the Host's name checked on every request, Origin
    or not. A page's same-origin GET carries no Origin, so a page of a name
    re-pointed at this server (DNS rebinding) read /metrics (namespace names,
    archive targets) while its POSTs were refused. A request with no Host is
    no browser's."""
    check_origin(request, server)
    host = (request.headers.get("Host") or "").lower()
    if mode == "none" and host:
        _check_name(host, server)


def _check_name(host: str, server: ServerConfig | None) -> None:
    name = _hostname(host)
    allowed = {h.lower() for h in server.allowed_hosts} | {server.host.lower()} if server else set()
    if not (name in _LOCAL_NAMES or _is_address(name) or name in allowed):
        raise PermissionDenied(
            f"request refused: this server is not reached by the name {name[:200]!r} "
            "(add it to [server] allowed_hosts if it is this server's)")


_LOCAL_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def _hostname(host: str) -> str:
    """The name of a Host header, without its port (an IPv6 literal unbracketed)."""
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
