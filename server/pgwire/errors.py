"""Cairn's error codes as SQLSTATEs (contract §7), and the one error message
builder of the protocol layer."""

from __future__ import annotations

from catalog.errors import CairnError

from . import messages

SQLSTATE = {
    "PARSE_ERROR": "42601",
    "INVALID_ARGUMENT": "22023",
    "PERMISSION_DENIED": "42501",
    "BACKUP_INVALID": "XX001",
    "CANCELLED": "57014",
    "UNAUTHENTICATED": "28P01",
    "INTERNAL": "XX000",
    "INVALID_REQUEST": "08P01",
    "REQUEST_TOO_LARGE": "54000",
    "UNAVAILABLE": "58030",  # io_error: a backup target that cannot be reached
    # (the data directory's disk: catalog/diskerrors.py names its own, 53100 disk_full, …)
}


def sqlstate(exc: CairnError) -> str:
    """NOT_FOUND and ALREADY_EXISTS tell a namespace (schema) from the rest."""
    schema = exc.message.lower().startswith("namespace")
    if exc.code == "NOT_FOUND":
        return "3F000" if schema else "42P01"
    if exc.code == "ALREADY_EXISTS":
        return "42P06" if schema else "42P07"
    if exc.code == "INVALID_ARGUMENT" and exc.message.startswith("statement too complex"):
        return "54000"  # program_limit_exceeded (sqlgrammar/parser.py MAX_PARSED_TOKENS)
    if exc.code == "INVALID_REQUEST" and ("unicode" in exc.message.lower()
                                          or "utf-8" in exc.message.lower()):
        return "22021"
    return getattr(exc, "sqlstate", None) or SQLSTATE.get(exc.code, "XX000")


# The contract's code closest to a SQLSTATE the protocol layer raised itself
# (not a Cairn error, which carries its own code): exact codes first, then the
# class (its first two characters). Only XX000 is a bug (INTERNAL): a SELECT of
# 1,700 columns refused with 54011 was counted as INTERNAL in /metrics.
_BY_CODE = {"57014": "CANCELLED", "XX001": "BACKUP_INVALID", "42601": "PARSE_ERROR",
            "42501": "PERMISSION_DENIED", "42P01": "NOT_FOUND", "42P05": "ALREADY_EXISTS",
            "42P06": "ALREADY_EXISTS", "42P07": "ALREADY_EXISTS", "22021": "INVALID_REQUEST"}
_BY_CLASS = {"08": "INVALID_REQUEST", "26": "NOT_FOUND", "34": "NOT_FOUND", "3F": "NOT_FOUND",
             "28": "UNAUTHENTICATED", "53": "UNAVAILABLE", "58": "UNAVAILABLE",
             "XX": "INTERNAL"}


def contract_code(exc: PgError) -> str:
    """The contract's code for `exc` (/metrics' `status`): a Cairn error's own,
    else the closest to its SQLSTATE; a refusal of no other class (22, 0A, 42,
    54, …) is INVALID_ARGUMENT."""
    if exc.cairn_code:
        return exc.cairn_code
    return _BY_CODE.get(exc.code) or _BY_CLASS.get(exc.code[:2], "INVALID_ARGUMENT")


class PgError(Exception):
    """An error answered with ErrorResponse; FATAL ones close the connection."""

    def __init__(self, code: str, message: str, position: int | None = None,
                 severity: str = "ERROR", detail: str | None = None,
                 cairn_code: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint
        self.cairn_code = cairn_code  # the contract's code, when a Cairn error caused it
        self.code = code
        self.message = message
        self.position = position
        self.severity = severity
        self.detail = detail

    @classmethod
    def of(cls, exc: CairnError, position: int | None = None) -> PgError:
        return cls(sqlstate(exc), exc.message, position, detail=f"Cairn error code {exc.code}",
                   cairn_code=exc.code)

    def to_bytes(self) -> bytes:
        extra = {}
        if self.position is not None:
            extra["P"] = str(self.position)
        if self.detail:
            extra["D"] = self.detail
        if self.hint:
            extra["H"] = self.hint
        return messages.error(self.severity, self.code, self.message, **extra)


def position(text: str, line: int | None, column: int | None) -> int | None:
    """A 1-based character position in `text` for a 1-based line and column."""
    if not line or not column:
        return None
    offset = 0
    for _ in range(line - 1):
        nl = text.find("\n", offset)
        if nl < 0:
            break
        offset = nl + 1
    return min(offset + column, len(text) + 1)
