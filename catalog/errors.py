"""The error codes of the contract, shared by every layer below HTTP.

Each exception carries its code and HTTP status; the server's middleware turns
any `CairnError` into the contract's error JSON. Anything else is a bug and
becomes a logged 500 INTERNAL.
"""

from __future__ import annotations


class CairnError(Exception):
    code = "INTERNAL"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(CairnError):
    code, status = "INVALID_REQUEST", 400


class ParseError(CairnError):
    """The SQL does not parse. `line`/`column` are 1-based, relative to the
    statement text unless the caller has already made them absolute."""

    code, status = "PARSE_ERROR", 400

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


class InvalidArgument(CairnError):
    code, status = "INVALID_ARGUMENT", 400


class Unauthenticated(CairnError):
    code, status = "UNAUTHENTICATED", 401


class PermissionDenied(CairnError):
    code, status = "PERMISSION_DENIED", 403


class NotFound(CairnError):
    code, status = "NOT_FOUND", 404


class AlreadyExists(CairnError):
    code, status = "ALREADY_EXISTS", 409


class Cancelled(CairnError):
    code, status = "CANCELLED", 409


class RequestTooLarge(CairnError):
    code, status = "REQUEST_TOO_LARGE", 413


class BackupInvalid(CairnError):
    code, status = "BACKUP_INVALID", 422


class Unavailable(CairnError):
    """Something the statement needs cannot be reached now (an object store
    that does not answer): nothing is wrong with the statement or the data, and
    the same statement may succeed later. Not in the contract's table; added for
    the same reason as the HTTP layer's 503 for too many connections."""

    code, status = "UNAVAILABLE", 503


class Internal(CairnError):
    code, status = "INTERNAL", 500


class CannotStart(Exception):
    """The data directory is not one the server may open as it is (a lost or
    damaged catalog beside data files, a linked `files/`): `cairn serve` prints
    `cairn: cannot start: <message>` and exits 1, touching nothing."""


ALL_ERRORS: tuple[type[CairnError], ...] = (
    InvalidRequest,
    ParseError,
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    AlreadyExists,
    RequestTooLarge,
    BackupInvalid,
    Cancelled,
    Unavailable,
    Internal,
)
