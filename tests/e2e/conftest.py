"""Every end-to-end test starts without armed fault points (server/faults.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from server import faults


@pytest.fixture(autouse=True)
def no_faults() -> Iterator[None]:
    yield
    faults.clear()
