"""Storage behind one contract (`storage.interface.Storage`): SQLite (the default) or PostgreSQL.

`open_store(MOA_DB)` chooses: a postgresql:// or postgres:// URL is PostgreSQL, anything else a SQLite file.
"""

from __future__ import annotations

from pathlib import Path

from storage.interface import SchemaStatus, Storage
from storage.postgres.connection import is_postgres_url
from storage.postgres.store import PostgresStore
from storage.store import Store

__all__ = ["PostgresStore", "SchemaStatus", "Storage", "Store", "is_postgres_url", "open_store"]


def open_store(
    database: str | Path, *, vectors: bool = False, cache_mib: int | None = None, concurrent_answers: int = 0
) -> Storage:
    """The store for `database` (a PostgreSQL URL or a SQLite path), not yet started. `vectors` and `cache_mib`
    tune SQLite's team-knowledge index (see `storage.store.Store`); `concurrent_answers` sizes PostgreSQL's
    pool (see `storage.postgres.store.PostgresStore`)."""
    if isinstance(database, str) and is_postgres_url(database):
        return PostgresStore(database, concurrent_answers=concurrent_answers)
    return Store(database, vectors=vectors, cache_mib=cache_mib)
