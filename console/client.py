"""The console's HTTP client: one POST /api/sql per call, over urllib.

urllib rather than aiohttp's client because the console is synchronous (a
prompt, then a request, then output) and an event loop would only add weight.
Every outcome, a transport failure included, comes back as a `Reply`, so the
callers have one shape to print."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from . import jsontext

SYSTEM_TABLES = ("namespaces", "tables", "table_schemas", "jobs", "backups", "schedules",
                 "archives")
_NAMES_TTL = 30.0  # seconds before the completion names are fetched again
_LOOKUP_TIMEOUT = 2.0  # a slow server must not freeze typing


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 3xx is answered as itself, never followed: following it would carry the
    token and X-User-Id to whatever host the Location names, and turn the POST
    into a GET whose answer would print as the statement's result."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


@dataclass(frozen=True)
class ApiError:
    """The contract's error object (§2); position fields are None when absent."""

    code: str
    message: str
    statement: int | None = None
    line: int | None = None
    column: int | None = None


@dataclass(frozen=True)
class Reply:
    """One request's outcome: the results that ran, and the error if one stopped it."""

    results: list[dict[str, Any]] = field(default_factory=list)
    error: ApiError | None = None
    took_ms: float = 0.0  # wall time seen by the client, network included

    @property
    def ok(self) -> bool:
        return self.error is None


class Client:
    """Talks to one server as one identity, with a default namespace."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        user: str | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.user = user
        self.namespace = namespace
        self.timeout = timeout

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.user:
            headers["X-User-Id"] = self.user
        return headers

    def unsendable(self) -> str | None:
        """Why --url, the token or --user cannot make an HTTP request, or None.
        The message never quotes the token."""
        try:
            parts = urllib.parse.urlsplit(self.url)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError as exc:
            return f"--url {self.url} is not a URL ({exc})"
        if parts.scheme not in ("http", "https") or not parts.hostname or any(
                ord(c) <= 0x20 or ord(c) >= 0x7f for c in self.url):
            return f"--url {self.url} is not an http:// or https:// URL of printable ASCII"
        if self.token and any(not 0x21 <= ord(c) <= 0x7e for c in self.token):
            return ("the token ($CAIRN_TOKEN or --token) holds a space, a control character "
                    "or a character outside ASCII (a file with CRLF line ends leaves a \\r "
                    "at its end); it was not sent")
        if self.user and any(not 0x20 <= ord(c) <= 0x7e and not 0xa0 <= ord(c) <= 0xff
                             for c in self.user):
            return "--user holds a control character or a character outside Latin-1"
        return None

    def run(self, sql: str) -> Reply:
        """POST the SQL; never raises for server or network errors (KeyboardInterrupt passes)."""
        bad = self.unsendable()
        if bad is not None:
            return Reply(error=ApiError("INVALID_ARGUMENT", bad))
        body: dict[str, Any] = {"sql": sql}
        if self.namespace:
            body["namespace"] = self.namespace
        request = urllib.request.Request(
            self.url + "/api/sql", data=json.dumps(body).encode(), headers=self.headers(),
            method="POST")
        limit = self.timeout
        if limit is None:
            return self._send(request)
        # The whole exchange is bounded, not each socket read: a server that
        # drips its answer a byte at a time never trips a socket timeout.
        done: list[Reply] = []
        failed: list[BaseException] = []

        def send() -> None:
            try:
                # Its socket's own timeout after the whole exchange's: fired
                # first (the caller's thread scheduled late), a silent server
                # read "cannot reach … timed out" instead of TIMEOUT.
                done.append(self._send(request, 2 * limit + 1))
            except BaseException as exc:  # raised again below, in the caller's thread
                failed.append(exc)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        sender.join(limit)
        if failed:
            raise failed[0]
        if not done:
            return Reply(error=ApiError(
                "TIMEOUT", f"{self.url} did not answer within {self.timeout:g} s (--timeout); "
                "the server may still run the statement"))
        return done[0]

    def _send(self, request: urllib.request.Request, timeout: float | None = None) -> Reply:
        started = time.perf_counter()
        try:
            with _OPENER.open(request, timeout=timeout) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as exc:
            if 300 <= exc.code < 400:
                where = exc.headers.get("Location") or "nowhere"
                return Reply(error=ApiError(
                    "REDIRECT", f"{self.url} answered {exc.code} redirecting to {where[:200]}; "
                    "not followed (point --url at the server itself)"))
            payload = exc.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return Reply(error=ApiError("UNAVAILABLE", f"cannot reach {self.url}: {reason}"))
        except (ValueError, UnicodeError) as exc:  # never str(exc): it may quote the token
            return Reply(error=ApiError(
                "INVALID_ARGUMENT", f"cannot send a request to {self.url} ({type(exc).__name__})"))
        took = (time.perf_counter() - started) * 1000
        return parse_reply(payload, took)

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """The rows of a one-statement query, or [] if it failed (for completion, polling)."""
        reply = self.run(sql)
        if not reply.ok or not reply.results:
            return []
        return list(reply.results[-1].get("rows") or [])


class Names:
    """Namespace and table names for completion, fetched lazily and kept a while."""

    def __init__(self, client: Client) -> None:
        self.client = Client(client.url, token=client.token, user=client.user,
                             timeout=_LOOKUP_TIMEOUT)
        self.namespaces: list[str] = []
        self.tables: dict[str, list[str]] = {}
        self._fetched = 0.0

    def invalidate(self) -> None:
        """Called after DDL so a new table completes at once."""
        self._fetched = 0.0

    def refresh(self) -> None:
        if time.monotonic() - self._fetched < _NAMES_TTL:
            return
        self._fetched = time.monotonic()
        rows = self.client.rows("SELECT namespace FROM system.namespaces ORDER BY namespace")
        self.namespaces = [str(r["namespace"]) for r in rows if r.get("namespace")]
        tables: dict[str, list[str]] = {"system": list(SYSTEM_TABLES)}
        for r in self.client.rows("SELECT namespace, table_name FROM system.tables "
                                  "ORDER BY namespace, table_name"):
            tables.setdefault(str(r.get("namespace")), []).append(str(r.get("table_name")))
        self.tables = tables


def parse_reply(payload: bytes, took_ms: float) -> Reply:
    """Turn a response body into a Reply; a body that is not the contract's JSON is an error."""
    try:
        body = jsontext.loads(payload)  # JSON values as the server wrote them
    except RecursionError:
        return Reply(error=ApiError("INVALID_RESPONSE", "server sent JSON nested too deep"),
                     took_ms=took_ms)
    except ValueError:
        snippet = payload[:200].decode("utf-8", "replace")
        return Reply(error=ApiError("INVALID_RESPONSE", f"server sent non-JSON: {snippet!r}"),
                     took_ms=took_ms)
    if not isinstance(body, dict):
        return Reply(error=ApiError("INVALID_RESPONSE", "server sent JSON that is not an object"),
                     took_ms=took_ms)
    results = body.get("results") or []
    wrong = _wrong_shape(results)
    if wrong:
        return Reply(error=ApiError("INVALID_RESPONSE", f"server sent {wrong}"), took_ms=took_ms)
    err = body.get("error")
    if body.get("status") == "success" and err is None:
        return Reply(results=results, took_ms=took_ms)
    err = err if isinstance(err, dict) else {}
    return Reply(
        results=results,
        error=ApiError(
            code=str(err.get("code") or "UNKNOWN"),
            message=str(err.get("message") or "the server reported an error"),
            statement=_int(err.get("statement")),
            line=_int(err.get("line")),
            column=_int(err.get("column")),
        ),
        took_ms=took_ms,
    )


def _wrong_shape(results: Any) -> str | None:
    """What in `results` is not the contract's shape (the printers index into it), or None."""
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        return "results that are not a list of objects"
    for r in results:
        for key, item in (("columns", None), ("rows", dict), ("schema", dict)):
            value = r.get(key)
            if value is None:
                continue
            if not isinstance(value, list) or (
                    item is not None and not all(isinstance(v, item) for v in value)):
                return f"a result whose {key} is not a list" + (" of objects" if item else "")
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def quote(text: str) -> str:
    """A SQL string literal (for job ids and names the console puts into its own queries)."""
    return "'" + text.replace("'", "''") + "'"
