"""`cairn sql`'s history file: what it keeps of a statement, and who may read it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from console import prompt


def test_history_hides_passphrases_and_is_the_owners_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The prompt wrote `BACKUP … WITH (encryption_passphrase = '…')` to
    ~/.cairn_history in clear, and made that file 0644."""
    path = tmp_path / "hist"
    monkeypatch.setenv("CAIRN_HISTORY", str(path))
    old = os.umask(0o022)
    try:
        history = prompt._history()
    finally:
        os.umask(old)
    history.append_string("BACKUP DATABASE app TO 'hist_test' WITH (label = 'l', "
                          "encryption_passphrase = 'Hist0ry-PASSPHRASE');")
    history.append_string("RESTORE DATABASE app FROM 'x' WITH (ENCRYPTION_PASSPHRASE=Hunter2)")
    kept = path.read_text()
    assert "Hist0ry" not in kept and "Hunter2" not in kept, kept
    assert "encryption_passphrase = '***'" in kept and "label = 'l'" in kept
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_existing_history_file_is_made_the_owners_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "hist"
    path.write_text("\n# 2026-01-01\n+SELECT 1\n")
    path.chmod(0o644)
    monkeypatch.setenv("CAIRN_HISTORY", str(path))
    history = prompt._history()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(history.load_history_strings()) == ["SELECT 1"]
