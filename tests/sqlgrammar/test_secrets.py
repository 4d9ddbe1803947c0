"""A statement's secret values, hidden wherever its text is kept (the log's
statement shape, `cairn sql`'s history, the web console's kept text)."""

from __future__ import annotations

import pytest

from sqlgrammar.secrets import hide_secrets


@pytest.mark.parametrize("written", [
    "encryption_passphrase = 'correct horse battery staple'",
    "encryption_passphrase /* pp */ = 'correct horse battery staple'",
    "encryption_passphrase -- pp\n = 'correct horse battery staple'",
    "encryption_passphrase = /* the usual */ 'correct horse battery staple'",
    "ENCRYPTION_PASSPHRASE='correct horse battery staple'",
    "encryption_passphrase = correct_horse_battery_staple",
    'encryption_passphrase = "correct horse battery staple"',
    "encryption_passphrase = E'correct horse battery staple'",
    "encryption_passphrase = $$correct horse battery staple$$",
    "encryption_passphrase = ('correct horse battery staple')",
    "encryption_passphrase = CAST('correct horse, battery staple' AS TEXT)",
    "encryption_passphrase = U&'correct horse battery staple'",
    "encryption_passphrase = 'correct horse' || 'battery staple'",
    "encryption_passphrase = 'correct horse'\n'battery staple'",
    "encryption_passphrase = 'correct horse battery staple",
])
def test_a_passphrase_is_hidden_however_it_is_written(written: str) -> None:
    """A comment before the `=` (valid SQL) kept the passphrase in clear in
    the history: the bare-word reading took `/*` for the value."""
    text = f"BACKUP DATABASE app TO 'x' WITH ({written})"
    hidden = hide_secrets(text, "'***'")
    assert "horse" not in hidden and "staple" not in hidden, hidden
    assert hidden.startswith("BACKUP DATABASE app TO 'x' WITH (")


def test_what_follows_a_plain_passphrase_is_kept() -> None:
    text = "BACKUP DATABASE app TO 'x' WITH (encryption_passphrase = 'it''s', label = 'l')"
    assert hide_secrets(text, "'***'") == (
        "BACKUP DATABASE app TO 'x' WITH (encryption_passphrase = '***', label = 'l')")
