"""SQLite storage: migrations, per-thread history, runs and proposals, dedup."""

from storage.store import Store

__all__ = ["Store"]
