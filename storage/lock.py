"""One `moa-bot run` per SQLite file; several replicas need PostgreSQL, where they coordinate in the database.

A SQLite file is local to one machine and takes one writer at a time, so replicas on it would gain nothing, and
a second service would take the first one's answers in flight for a crash's leftovers. The service holds an exclusive `flock` on `<db>.lock` for its whole life; the kernel drops it when the
process ends in any way, SIGKILL included, so a crash never leaves a stale lock behind. Terminal commands (`ask`,
`chat`, `doctor`) do not take it: SQLite's WAL lets them work beside the service.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from moa.errors import ConfigError


class DatabaseInUse(ConfigError):
    """Another process serves this database."""


class ServiceLock:
    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = database.with_name(database.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise `DatabaseInUse`; OSError when the lock file cannot be created."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DatabaseInUse(
                f"MOA_DB: {self.database} is in use by another `moa-bot run`; one SQLite database "
                "serves one process (for several replicas, set MOA_DB to a PostgreSQL URL)"
            ) from None
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        # the file stays: unlinking it would let a third process lock a new file while the second holds the old
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
