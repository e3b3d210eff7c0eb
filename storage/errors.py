"""What went wrong with the database, in words an operator can act on.

SQLite and the operating system report faults as codes (`SQLITE_FULL`, `ENOSPC`); `describe` turns them into a
short phrase that `StorageError` carries, so no exception class name ever reaches a log line, /healthz or a user.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

DISK_FULL = "the disk is full"
READ_ONLY = "the database is read-only"
FOLDER_READ_ONLY = "the database's folder is read-only (SQLite keeps its -wal and -shm files there)"
REPLACED = "the database file was deleted or replaced; restart to recreate it"
LOCKED = "the database is locked by another process"

# by SQLite's primary result code (the low byte of the extended code)
_SQLITE = {
    sqlite3.SQLITE_FULL: DISK_FULL,
    sqlite3.SQLITE_READONLY: READ_ONLY,
    sqlite3.SQLITE_BUSY: LOCKED,
    sqlite3.SQLITE_LOCKED: LOCKED,
    sqlite3.SQLITE_PERM: "permission denied by the database",
    sqlite3.SQLITE_NOMEM: "SQLite ran out of memory",
    sqlite3.SQLITE_IOERR: "a disk read or write failed (I/O error)",
    sqlite3.SQLITE_CORRUPT: "the database file is damaged",
    sqlite3.SQLITE_NOTADB: "the file is not a SQLite database",
}

_OS = {
    errno.ENOSPC: DISK_FULL,
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: READ_ONLY + " (read-only file system)",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EFBIG: "the file size limit was reached",
}


def describe(exc: sqlite3.Error | OSError, path: Path | None = None) -> str:
    """A phrase for `exc`; `path` (the database file) lets "cannot open" say which part is read-only."""
    if isinstance(exc, OSError):
        if exc.errno in _OS:
            return _OS[exc.errno]
        return os.strerror(exc.errno).lower() if exc.errno else "the operating system refused"
    code: int | None = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_READONLY_DBMOVED:
        return REPLACED
    if code is not None and code & 0xFF == sqlite3.SQLITE_CANTOPEN:
        return _cannot_open(path)
    if code is not None and code & 0xFF in _SQLITE:
        return _SQLITE[code & 0xFF]
    # SQLite's own message ("no such table: runs", "Cannot operate on a closed database.") is already words
    return f"the database refused: {exc}"


def _cannot_open(path: Path | None) -> str:
    if path is not None and not os.access(path.parent, os.W_OK):
        return FOLDER_READ_ONLY
    if path is not None and path.exists() and not os.access(path, os.W_OK):
        return READ_ONLY
    return "the database file cannot be opened"
