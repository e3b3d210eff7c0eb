"""What went wrong with the database, in words an operator can act on.

SQLite, PostgreSQL and the operating system report faults as codes (`SQLITE_FULL`, SQLSTATE `53100`, `ENOSPC`);
`describe` and `describe_postgres` turn them into a short phrase that `StorageError` carries, so no exception class
name ever reaches a log line, /healthz or a user.
"""

from __future__ import annotations

import errno
import os
import re
import socket
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


# by PostgreSQL's SQLSTATE
_POSTGRES = {
    "53100": DISK_FULL,
    "25006": READ_ONLY + " (PostgreSQL refuses writes here: a standby, or a read-only setting)",
    "28P01": "PostgreSQL refused the user name or password (authentication failed)",
    "3D000": "the database does not exist",
    "42501": "permission denied by the database",
    "53200": "PostgreSQL ran out of memory",
    "53300": "PostgreSQL has no free connection (too many clients)",
    "55P03": LOCKED,
    "57014": "PostgreSQL cancelled the statement (it ran too long)",
    "57P01": "PostgreSQL was shut down",
    "57P02": "PostgreSQL was shut down",
    "57P03": "PostgreSQL is starting up or shutting down",
    "58030": "a disk read or write failed (I/O error)",
    "XX001": "the database file is damaged",
}


def describe_postgres(exc: Exception, timeout_s: float) -> str:
    """A phrase for a PostgreSQL driver or network failure (`timeout_s`: how long a statement may take)."""
    sqlstate: str | None = getattr(exc, "sqlstate", None)
    if sqlstate is not None and sqlstate in _POSTGRES:
        return _POSTGRES[sqlstate]
    if sqlstate == "28000":  # the server says which: 'role "x" does not exist', 'no pg_hba.conf entry for ...'
        return f"PostgreSQL refused the connection (authentication failed): {exc}"
    if sqlstate is not None and sqlstate.startswith("08"):  # connection exceptions
        return "the connection to PostgreSQL was lost"
    if isinstance(exc, TimeoutError):
        return f"PostgreSQL did not answer within {timeout_s:g} s"
    if isinstance(exc, OSError):
        return f"cannot connect to PostgreSQL ({_network(exc)})"
    if sqlstate is None:  # the driver's own refusal ("the pool is closing", "connection is closed")
        return f"the database client refused: {exc}"
    return f"the database refused: {exc}"


def _network(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return "the host name cannot be resolved"
    code = exc.errno
    if code is None:
        # asyncio's "Multiple exceptions: [Errno 111] Connect call failed ('::1', ...), [Errno 111] ..." when
        # every address of the host failed
        found = re.search(r"\[Errno (\d+)\]", str(exc))
        code = int(found[1]) if found else None
    if code == errno.ECONNREFUSED:
        return "connection refused"
    return os.strerror(code).lower() if code else str(exc) or "the network refused"
