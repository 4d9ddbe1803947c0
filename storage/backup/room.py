"""What a backup's manifest has room for, and what to say when it has none.

A manifest body holds at most `records.MAX_BODY` bytes (what a reader takes).
Two things fill it: every schema version of every table (each version lists
every column and its DEFAULT again) and the entries of the files and objects.
New DDL keeps the first to half of it (storage/schema.py), but a catalog
from before that bound, or very many files, can still be past it: BACKUP
(and START ARCHIVING's base backup) then refuses, naming which part is big,
and before storing any file when the manifest is sure to be too big."""

from __future__ import annotations

from typing import Any

import msgspec

from catalog.errors import InvalidArgument

from . import records
from .image import NamespaceImage
from .manifest import canonical


def check(images: list[NamespaceImage]) -> None:
    """INVALID_ARGUMENT before any file is stored if an image's schema
    versions and file entries alone (a part of its manifest) are past what
    a manifest holds."""
    encode = msgspec.json.encode
    for image in images:
        schemas = {t.name: (len(encode(t.schemas)), len(t.schemas)) for t in image.tables}
        files = sum(len(encode(t.files)) for t in image.tables)
        size = sum(s for s, _ in schemas.values()) + files
        if size > records.MAX_BODY:
            raise too_big(f"of a backup of namespace '{image.namespace}'", size, schemas,
                          sum(len(t.files) for t in image.tables), at_least=True)


def too_big_manifest(backup_id: str, size: int, tables: list[dict[str, Any]]) -> InvalidArgument:
    """The error for the manifest of `backup_id`, `size` bytes of which
    `tables` (its table entries, as written) are part."""
    schemas = {t["name"]: (len(canonical(t["schemas"])), len(t["schemas"])) for t in tables}
    return too_big(f"of backup '{backup_id}'", size, schemas,
                   sum(len(t["files"]) for t in tables))


def too_big(which: str, size: int, schemas: dict[str, tuple[int, int]], files: int,
            at_least: bool = False) -> InvalidArgument:
    history = sum(s for s, _ in schemas.values())
    rest = size - history
    name, (biggest, versions) = max(schemas.items(), key=lambda i: i[1][0], default=("", (0, 0)))
    text = (f"the manifest {which} would be {'at least ' if at_least else ''}{size} bytes before "
            f"compression, over the {records.MAX_BODY} a reader takes: its tables' schema "
            f"histories take {history} bytes")
    if name:
        text += f" (table '{name}': {biggest} bytes in {versions} version(s))"
    text += f", its {files} file(s) and the rest {rest}. "
    if history >= rest:
        return InvalidArgument(
            text + "A table's schema history is too long to back up: copy the table into a new "
            "one (CREATE TABLE, then INSERT INTO ... SELECT), which starts with one version, "
            "and drop it")
    return InvalidArgument(
        text + "Too many files for one backup: split it (BACKUP TABLE for some tables at a time)")
