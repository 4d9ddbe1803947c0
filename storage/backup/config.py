"""`config.json`: what makes a directory or prefix a Cairn backup repository.

It is written once, when the first backup goes in, and names the format version
and features every reader must understand before touching anything else."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from catalog.errors import BackupInvalid

from . import records
from .layout import utc_now
from .manifest import FORMAT, FORMAT_VERSION, KNOWN_FEATURES

# Manifests may name the data directory that wrote the namespace
# (`namespace_record.server`, 2026-12-05). A Cairn from before reads such a
# manifest as damaged ("unknown field server") and an archive's windows as
# gone; a target this Cairn makes names the feature, so it refuses the target
# instead, saying so. A target made before is not changed (config.json is
# never rewritten): an older Cairn still reads its older backups.
NAMESPACE_SERVER = "namespace-server"
CONFIG_FEATURES: frozenset[str] = KNOWN_FEATURES | {NAMESPACE_SERVER}


def new_config() -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "features": [NAMESPACE_SERVER],
        "created_at": utc_now(),
    }


def encode_config(config: dict[str, Any]) -> bytes:
    return json.dumps(config, indent=2).encode() + b"\n"


def parse_config(data: bytes, uri: str) -> dict[str, Any]:
    """A checked config; BackupInvalid when it is damaged, not Cairn's, or from a
    format version or with features this Cairn does not know."""
    where = f"config.json of backup target '{uri}'"
    head = records.decode(data, records.Preamble, where)
    if head.format != FORMAT:
        raise BackupInvalid(f"{where} is corrupt or not a Cairn backup repository")
    if head.format_version != FORMAT_VERSION:
        raise BackupInvalid(
            f"{where} has unknown format_version {head.format_version!r}; "
            f"this Cairn reads format_version {FORMAT_VERSION}"
        )
    unknown = [f for f in head.features if f not in CONFIG_FEATURES]
    if unknown:
        raise BackupInvalid(f"{where} needs format features this Cairn does not support: {unknown}")
    config = records.decode(data, records.Config, where)
    return dict(msgspec.structs.asdict(config))
