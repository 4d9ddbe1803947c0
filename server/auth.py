"""Who is calling: `none` mode trusts X-User-Id (everyone admin); `token` mode
maps a Bearer token to a user and a role."""

from __future__ import annotations

import hmac
import re

from aiohttp import web

from catalog.errors import InvalidRequest, Unauthenticated

from .config import AuthConfig
from .state import Session
from .text import check_header

USER_ID = re.compile(r"^[A-Za-z0-9_.@:+-]{1,128}\Z")


def _user_header(request: web.Request) -> str | None:
    user = request.headers.get("X-User-Id")
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
    header = check_header(request.headers.get("Authorization"), "Authorization") or ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("missing Authorization: Bearer <token>")
    token = token.strip()
    found = None
    for entry in cfg.tokens:
        # Compare against every token in constant time, whatever matches first.
        if hmac.compare_digest(entry["token"].encode(), token.encode()):
            found = entry
    if found is None:
        raise Unauthenticated("invalid token")
    return Session(user_id=found["user"], role=found.get("role", "user"))
