"""Who runs a statement, and where (its own module so the job runner, which
records who started a job, need not import the server's state)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Session:
    """Who runs a statement and where: the caller's identity and role, the
    request's default namespace, and the statement's own SQL text."""

    user_id: str | None
    role: str = "admin"
    namespace: str | None = None
    text: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"
