"""Who runs a statement, and where (its own module so the job runner, which
records who started a job, need not import the server's state)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Session:
    """Who runs a statement and where: the caller's identity and role, the
    request's default namespace, and the statement's own SQL text."""

    user_id: str | None
    role: str = "admin"
    namespace: str | None = None
    text: str = ""
    # Told the id of every job a statement of this session starts (pgwire
    # turns it into progress notices and cancels it on a CancelRequest).
    on_job: Callable[[str], None] | None = field(default=None, repr=False, compare=False)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"
