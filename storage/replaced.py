"""The signal that a table's state was dropped under a statement that named it."""

from __future__ import annotations


class Replaced(Exception):  # noqa: N818 (a signal, not an error)
    """The state was dropped (DROP, or a restore replacing its table) between
    its name being resolved and its snapshot, or its write (storage/resolve.py):
    resolve the name again."""
