"""The one storage contract: what every backend (SQLite, PostgreSQL) offers the bot.

`moa.persistence.ConversationStore` and `moa.knowledge.model.KnowledgeIndex` (team knowledge) are the parts the core
needs; `Storage` adds what the process around it needs: opening and closing, the run record for operators,
retention, upkeep, health and the schema's state. Both backends pass the same contract tests
(tests/test_store_contract.py, and for team knowledge tests/test_knowledge_index.py); semantic search is SQLite's
alone (sqlite-vec): on PostgreSQL `search_vector` finds nothing.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

from moa.knowledge.model import KnowledgeIndex
from moa.persistence import ConversationStore, RunRecord

# Runs in these states were in flight when the process stopped.
UNFINISHED = ("pending", "running")

# How long event ids are kept for deduplication: longer than any platform's redelivery.
EVENTS_KEPT_DAYS = 3.0


@dataclass(frozen=True)
class SchemaStatus:
    """Which database this is and how far its schema is migrated, for `moa-bot doctor`."""

    engine: str  # "SQLite 3.40.1", "PostgreSQL 15.6"
    location: str  # the file, or host:port/database (never a password)
    applied: frozenset[str]  # migrations recorded in the database
    known: tuple[str, ...]  # this release's migrations, in order

    @property
    def pending(self) -> tuple[str, ...]:
        return tuple(name for name in self.known if name not in self.applied)

    @property
    def unknown(self) -> tuple[str, ...]:
        """Migrations a newer release applied (after a rollback to this one)."""
        return tuple(sorted(self.applied - set(self.known)))

    @property
    def version(self) -> str:
        """"m003", the highest-numbered migration applied."""
        numbers = [name.split("_", 1)[0] for name in self.applied if re.match(r"m\d+_", name)]
        return max(numbers, key=lambda n: int(n[1:]), default="none")

    def describe(self) -> str:
        if self.pending:
            state = f"not migrated: {', '.join(self.pending)} pending"
        elif self.unknown:
            state = f"migrated by a newer release: {', '.join(self.unknown)}"
        else:
            state = "up to date"
        return f"{self.engine} at {self.location}, schema {self.version} ({state})"


class Storage(ConversationStore, KnowledgeIndex, Protocol):
    """Opened with `start()` (or `async with`), closed with `aclose()`; nothing happens in `__init__`.

    Every failure is a `moa.errors.StorageError` whose message says what is wrong in plain words.

    Several `moa-bot run` processes (replicas) may serve one database where `shared` is true (PostgreSQL). Each
    writes a heartbeat under its own id and owns the runs it answers; a run whose owner's heartbeat is older
    than the takeover timeout, or that was handed over, is an orphan, and exactly one replica claims it.
    """

    shared: bool  # several replicas may serve this database at once (what a stopping one leaves, others take)

    async def start(self, *, exclusive: bool = False) -> Self:
        """Connect, migrate, and check that the database takes a write.

        `exclusive` (for `moa-bot run`): this process serves the database. SQLite takes one such process:
        `storage.lock.DatabaseInUse` when another one does, and the heartbeats of earlier ones are void (they
        are gone). PostgreSQL takes any number.
        """
        ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def get_run(self, run_id: str) -> dict[str, object] | None:
        """The whole run record with its proposals and feedback, as plain data; None for an unknown run."""
        ...

    async def purge(self, *, older_than_days: float, events_older_than_days: float = EVENTS_KEPT_DAYS) -> int:
        """Delete conversations untouched for `older_than_days` (with their runs); returns how many."""
        ...

    async def maintain(self) -> None:
        """Periodic upkeep (hourly)."""
        ...

    async def health(self) -> str:
        """"ok" after committing a real write, or why the database cannot be used, in words."""
        ...

    async def writable(self) -> bool: ...

    async def schema_status(self) -> SchemaStatus: ...

    async def heartbeat(self, replica: str) -> None:
        """`replica` is alive now (by the database's clock, which every replica shares)."""
        ...

    async def retire(self, replica: str) -> None:
        """`replica` stops: its heartbeat goes, and the runs it still owns are orphans at once."""
        ...

    async def claim_orphans(
        self, replica: str, stale_after_s: float, platforms: Collection[str]
    ) -> list[RunRecord]:
        """Make `replica` the owner of every unfinished run of `platforms` that is handed over or whose owner
        has not beaten for `stale_after_s` seconds; those runs, oldest first. Claiming is a heartbeat of
        `replica` too. Of replicas claiming at once, each run goes to one."""
        ...
