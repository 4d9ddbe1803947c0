"""The metadata catalog on RocksDB: typed records, atomic batches, checkpoints."""

from .diskerrors import CatalogLocked
from .records import (
    Archive,
    Backup,
    DataFile,
    Job,
    Meta,
    Namespace,
    Record,
    Schedule,
    Table,
    TableSchema,
    schema_key,
    table_key,
    utcnow,
)
from .store import Batch, Catalog

__all__ = [
    "Archive", "Backup", "Batch", "Catalog", "CatalogLocked", "DataFile", "Job", "Meta",
    "Namespace", "Record", "Schedule", "Table", "TableSchema", "schema_key", "table_key", "utcnow",
]
