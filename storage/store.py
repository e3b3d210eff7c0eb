"""SQLite storage for conversations, runs, proposals and processed events (aiosqlite, WAL)."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from pathlib import Path
from types import TracebackType

import aiosqlite

from moa.conversation import ConversationKey
from moa.errors import StorageError
from moa.events import Message, Usage
from moa.persistence import HistoryBudget, ProposalRecord, RunRecord
from storage import vectors
from storage.database import operation
from storage.errors import REPLACED, describe
from storage.knowledge import TEXT_SEARCH, VECTOR_SEARCH, KnowledgeTables
from storage.interface import EVENTS_KEPT_DAYS, UNFINISHED, SchemaStatus
from storage.lock import ServiceLock
from storage.migrations import MIGRATIONS, migrate
from storage.shared import (
    PROPOSAL_COLUMNS,
    RUN_COLUMNS,
    newest_within,
    proposal_record,
    proposal_rows,
    rate_wait,
    run_dict,
    run_record,
)


class Store(KnowledgeTables):
    """Opened with `start()` (or `async with`), closed with `aclose()`; nothing happens in `__init__`.

    One connection for everything: conversations, runs and proposals here, the team-knowledge index in
    `storage.knowledge`. One `moa-bot run` per file (`storage.lock`): replicas need PostgreSQL.
    """

    shared = False

    def __init__(self, path: Path | str, *, vectors: bool = False, cache_mib: int | None = None) -> None:
        """`vectors`: load sqlite-vec for semantic search (only with MOA_EMBEDDING_MODEL set). `cache_mib`:
        SQLite's page cache (default: SQLite's 2 MiB); every knowledge search reads the same index pages, which
        a cache of tens of MiB keeps at hand (at 100,000 chunks: 12 MiB of full-text index, 10 MiB of vectors)."""
        super().__init__(path)
        self.vectors = vectors
        self.cache_mib = cache_mib
        self._lock: ServiceLock | None = None
        self._file: tuple[Path, int, int] | None = None  # the file opened, with its (st_dev, st_ino)

    @property
    def in_memory(self) -> bool:
        return str(self.path) == ":memory:"

    async def start(self, *, exclusive: bool = False) -> Store:
        """Open the database, creating and migrating it, and check that it takes writes.

        `exclusive` (for `moa-bot run`) also takes the one-service lock: `storage.lock.DatabaseInUse` when another
        process holds it.
        """
        try:
            try:
                await self._open(exclusive=exclusive)
            except (sqlite3.Error, OSError) as exc:
                raise StorageError(f"MOA_DB: cannot open {self.path}: {describe(exc, self.path)}") from exc
        except BaseException:
            await self.aclose()
            raise
        return self

    async def _open(self, *, exclusive: bool) -> None:
        if not self.in_memory:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if exclusive:
                self._lock = ServiceLock(self.path)
                self._lock.acquire()
            if not self.path.exists():
                # create it private before SQLite does: it holds every question and answer
                fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
        if self.vectors:
            vectors.register_for_new_connections()
        self._db = await aiosqlite.connect(self.path)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.execute("PRAGMA foreign_keys=ON")
        await self._db.execute("PRAGMA busy_timeout=5000")
        cache = (f"PRAGMA cache_size=-{int(self.cache_mib) * 1024}",) if self.cache_mib else ()
        for pragma in cache:
            await self._db.execute(pragma)
        await migrate(self._db)
        if exclusive:
            # the lock proves that every service which wrote a heartbeat here is gone: their runs are orphans
            await self._execute("DELETE FROM replicas")
            await self.db.commit()
        if self.vectors:
            await vectors.load(self._db)
            await self._start_vectors()
        if not self.in_memory:
            await self._open_reader(TEXT_SEARCH, *cache)
            if self.vectors:
                await vectors.load(await self._open_reader(VECTOR_SEARCH, *cache))
        if not self.in_memory:
            path = self.path.absolute()
            opened = os.stat(path)
            self._file = (path, opened.st_dev, opened.st_ino)
        await self._stamp()  # a database that cannot take a write is of no use to any command

    async def aclose(self) -> None:
        try:
            await self._close_readers()
            if self._db is not None:
                db, self._db = self._db, None
                await db.close()
        finally:
            # after the close: the next service must not open the file while this one still checkpoints it
            if self._lock is not None:
                lock, self._lock = self._lock, None
                lock.release()

    async def __aenter__(self) -> Store:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def _check_file(self) -> None:
        """Raise StorageError when the file opened is no longer at its path (deleted, or another put there).

        SQLite keeps writing to a deleted file through its open descriptor without a word, and everything it
        takes is gone at the next start.
        """
        if self._file is None:
            return
        path, device, inode = self._file
        try:
            now = os.stat(path)
        except FileNotFoundError:
            raise StorageError(REPLACED) from None
        except OSError as exc:
            raise StorageError(describe(exc, path)) from exc
        if (now.st_dev, now.st_ino) != (device, inode):
            raise StorageError(REPLACED)

    # conversations -------------------------------------------------------------------------------------

    async def _conversation_id(self, key: ConversationKey, *, create: bool) -> int | None:
        params = (key.platform, key.workspace, key.channel, key.thread)
        if create:
            now = time.time()
            await self._execute(
                "INSERT INTO conversations (platform, workspace, channel, thread, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (platform, workspace, channel, thread) DO UPDATE SET updated_at = excluded.updated_at",
                (*params, now, now),
            )
        async with self.db.execute(
            "SELECT id FROM conversations WHERE platform = ? AND workspace = ? AND channel = ? AND thread = ?",
            params,
        ) as cursor:
            row = await cursor.fetchone()
        return None if row is None else int(row[0])

    @operation
    async def load_history(self, key: ConversationKey, budget: HistoryBudget) -> list[Message]:
        """The newest messages that fit the budget, oldest first; older ones are dropped first."""
        conversation = await self._conversation_id(key, create=False)
        if conversation is None:
            return []
        async with self.db.execute(
            "SELECT role, content FROM messages WHERE conversation_id = ? ORDER BY id DESC", (conversation,)
        ) as cursor:
            return await newest_within(cursor, budget)

    @operation
    async def has_history(self, key: ConversationKey) -> bool:
        conversation = await self._conversation_id(key, create=False)
        if conversation is None:
            return False
        async with self.db.execute(
            "SELECT 1 FROM messages WHERE conversation_id = ? LIMIT 1", (conversation,)
        ) as cursor:
            return await cursor.fetchone() is not None

    @operation
    async def append_turn(self, key: ConversationKey, question: str, answer: str, run_id: str) -> None:
        conversation = await self._conversation_id(key, create=True)
        now = time.time()
        await self._execute_many(
            "INSERT INTO messages (conversation_id, role, content, run_id, created_at) VALUES (?, ?, ?, ?, ?)",
            [(conversation, "user", question, run_id, now), (conversation, "assistant", answer, run_id, now)],
        )
        await self.db.commit()

    @operation
    async def seed_history(self, key: ConversationKey, messages: Sequence[Message]) -> None:
        """Store context read from the platform once, so it never has to be read again."""
        conversation = await self._conversation_id(key, create=True)
        now = time.time()
        await self._execute_many(
            "INSERT INTO messages (conversation_id, role, content, created_at) VALUES (?, ?, ?, ?)",
            [(conversation, m["role"], m["content"], now) for m in messages if m["role"] in ("user", "assistant")],
        )
        await self.db.commit()

    @operation
    async def forget(self, key: ConversationKey) -> int:
        """Delete a conversation's messages and finished runs; returns how many messages there were.

        Runs still in flight stay until they finish, so crash recovery never loses a question.
        """
        conversation = await self._conversation_id(key, create=False)
        if conversation is None:
            return 0
        rowcount = await self._execute("DELETE FROM messages WHERE conversation_id = ?", (conversation,))
        await self._execute(
            f"DELETE FROM runs WHERE conversation_id = ? AND status NOT IN {UNFINISHED}", (conversation,)
        )
        await self.db.commit()
        return rowcount

    # runs ----------------------------------------------------------------------------------------------

    @operation
    async def create_run(
        self, key: ConversationKey, user: str, question: str, preset: str, event_id: str, *, owner: str = ""
    ) -> str:
        self._check_file()  # refuse a question rather than keep it in a file that is gone
        conversation = await self._conversation_id(key, create=True)
        run_id = uuid.uuid4().hex
        await self._execute(
            "INSERT INTO runs (id, conversation_id, user_id, event_id, question, preset, status, created_at, owner)"
            " VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
            (run_id, conversation, user, event_id, question, preset, time.time(), owner),
        )
        await self.db.commit()
        return run_id

    @operation
    async def release_run(self, run_id: str) -> None:
        await self._execute("UPDATE runs SET owner = '' WHERE id = ?", (run_id,))
        await self.db.commit()

    @contextlib.asynccontextmanager
    async def claim_turn(
        self, key: ConversationKey, on_wait: Callable[[], Awaitable[None]]
    ) -> AsyncIterator[None]:
        """Nothing to hold: one process serves a SQLite database, and it orders its own answers."""
        yield

    @operation
    async def set_placeholder(self, run_id: str, placeholder: dict[str, str]) -> None:
        await self._execute("UPDATE runs SET placeholder = ? WHERE id = ?", (json.dumps(placeholder), run_id))
        await self.db.commit()

    @operation
    async def move_run(self, run_id: str, key: ConversationKey) -> None:
        """Attach the run to `key`'s conversation; the one it leaves is deleted if nothing else is in it."""
        async with self.db.execute("SELECT conversation_id FROM runs WHERE id = ?", (run_id,)) as cursor:
            row = await cursor.fetchone()
        conversation = await self._conversation_id(key, create=True)
        await self._execute("UPDATE runs SET conversation_id = ? WHERE id = ?", (conversation, run_id))
        if row is not None and row[0] != conversation:
            await self._execute(
                "DELETE FROM conversations WHERE id = ? AND NOT EXISTS (SELECT 1 FROM runs WHERE conversation_id = ?)"
                " AND NOT EXISTS (SELECT 1 FROM messages WHERE conversation_id = ?)",
                (row[0], row[0], row[0]),
            )
        await self.db.commit()

    @operation
    async def mark_running(self, run_id: str) -> None:
        await self._execute("UPDATE runs SET status = 'running' WHERE id = ?", (run_id,))
        await self.db.commit()

    @operation
    async def add_proposals(self, run_id: str, proposals: Sequence[ProposalRecord]) -> None:
        await self._execute_many(
            f"INSERT INTO proposals (run_id, {PROPOSAL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            proposal_rows(run_id, proposals),
        )
        await self.db.commit()

    @operation
    async def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        answer: str = "",
        error: str = "",
        elapsed_s: float = 0.0,
        usage: Usage = Usage(),
    ) -> None:
        await self._execute(
            "UPDATE runs SET status = ?, answer = ?, error = ?, elapsed_s = ?, finished_at = ?,"
            " prompt_tokens = ?, completion_tokens = ? WHERE id = ?",
            (status, answer, error, elapsed_s, time.time(), usage.prompt_tokens, usage.completion_tokens, run_id),
        )
        await self.db.commit()

    @operation
    async def unfinished_runs(self) -> list[RunRecord]:
        async with self.db.execute(
            f"SELECT {RUN_COLUMNS} FROM runs r JOIN conversations c ON c.id = r.conversation_id"
            f" WHERE r.status IN {UNFINISHED} ORDER BY r.created_at"
        ) as cursor:
            rows = await cursor.fetchall()
        return [run_record(row) for row in rows]

    @operation
    async def get_run(self, run_id: str) -> dict[str, object] | None:
        """The whole run record with its proposals, as plain data (for `ask --json` and operators)."""
        self.db.row_factory = aiosqlite.Row
        try:
            async with self.db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)) as cursor:
                run = await cursor.fetchone()
            if run is None:
                return None
            async with self.db.execute(
                f"SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE run_id = ? ORDER BY id", (run_id,)
            ) as cursor:
                proposals = [dict(row) for row in await cursor.fetchall()]
            async with self.db.execute(
                "SELECT user_id AS user, value, at FROM feedback WHERE run_id = ? ORDER BY at", (run_id,)
            ) as cursor:
                feedback = [dict(row) for row in await cursor.fetchall()]
        finally:
            self.db.row_factory = None
        record = run_dict(dict(run), proposals, feedback)
        record["sources"] = await self._run_sources(run_id)
        return record

    @operation
    async def drafts(self, run_id: str) -> tuple[str, list[ProposalRecord]] | None:
        """A run's question and its proposals in the order they came in; None for an unknown (or purged) run."""
        async with self.db.execute("SELECT question FROM runs WHERE id = ?", (run_id,)) as cursor:
            run = await cursor.fetchone()
        if run is None:
            return None
        async with self.db.execute(
            f"SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE run_id = ? ORDER BY id", (run_id,)
        ) as cursor:
            rows = await cursor.fetchall()
        return str(run[0]), [proposal_record(row) for row in rows]

    @operation
    async def record_feedback(self, run_id: str, user: str, value: str) -> bool:
        """Store a person's 👍/👎 on a run (replacing their earlier one); False for an unknown run."""
        async with self.db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)) as cursor:
            if await cursor.fetchone() is None:
                return False
        await self._execute(
            "INSERT INTO feedback (run_id, user_id, value, at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (run_id, user_id) DO UPDATE SET value = excluded.value, at = excluded.at",
            (run_id, user, value, time.time()),
        )
        await self.db.commit()
        return True

    # dedup and housekeeping ------------------------------------------------------------------------------

    @operation
    async def first_time(self, platform: str, *delivery_ids: str) -> bool:
        """Record every id one delivery goes by (event id, message id, a slash command's trigger id) in one
        statement; False when any was recorded before."""
        ids = list(dict.fromkeys(delivery_ids))
        if not ids:
            return True
        now = time.time()
        rowcount = await self._execute(
            "INSERT OR IGNORE INTO processed_events (platform, event_id, seen_at) VALUES "
            + ", ".join("(?, ?, ?)" for _ in ids),
            [value for event_id in ids for value in (platform, event_id, now)],
        )
        await self.db.commit()
        return rowcount == len(ids)

    @operation
    async def purge(self, *, older_than_days: float, events_older_than_days: float = EVENTS_KEPT_DAYS) -> int:
        """Delete conversations untouched for `older_than_days` (with their runs); returns how many.

        The heartbeats of replicas gone for as long as event ids are kept go too, and questions counted for
        rates as old as the conversations.
        """
        now = time.time()
        rowcount = await self._execute(
            "DELETE FROM conversations WHERE updated_at < ?", (now - older_than_days * 86400,)
        )
        events_before = now - events_older_than_days * 86400
        await self._execute("DELETE FROM processed_events WHERE seen_at < ?", (events_before,))
        await self._execute("DELETE FROM replicas WHERE seen_at < ?", (events_before,))
        await self._execute("DELETE FROM rates WHERE at < ?", (now - older_than_days * 86400,))
        await self.db.commit()
        return rowcount

    # rates and replicas ------------------------------------------------------------------------------------

    @operation
    async def admit(self, bucket: str, limit: int, per_s: float) -> float | None:
        """Count a question against `bucket` if it fits the rate; else the seconds until one does."""
        now = time.time()
        # the DELETE opens the write transaction first: another process cannot count in between
        await self._execute("DELETE FROM rates WHERE bucket = ? AND at <= ?", (bucket, now - per_s))
        async with self.db.execute("SELECT count(*), min(at) FROM rates WHERE bucket = ?", (bucket,)) as cursor:
            row = await cursor.fetchone()
        counted, oldest = (0, None) if row is None else (int(row[0]), row[1])
        wait = rate_wait(counted, oldest, limit, per_s, now)
        if wait is None:
            await self._execute("INSERT INTO rates (bucket, at) VALUES (?, ?)", (bucket, now))
        await self.db.commit()
        return wait

    @operation
    async def heartbeat(self, replica: str) -> None:
        await self._beat(replica)
        await self.db.commit()

    async def _beat(self, replica: str) -> None:
        now = time.time()
        await self._execute(
            "INSERT INTO replicas (id, started_at, seen_at) VALUES (?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
            (replica, now, now),
        )

    @operation
    async def retire(self, replica: str) -> None:
        await self._execute("DELETE FROM replicas WHERE id = ?", (replica,))
        await self.db.commit()

    @operation
    async def claim_orphans(
        self, replica: str, stale_after_s: float, platforms: Collection[str]
    ) -> list[RunRecord]:
        """The unfinished runs of `platforms` handed over or left by a replica gone quiet, now `replica`'s; the
        claim is a heartbeat too."""
        await self._beat(replica)
        places = ", ".join("?" * len(platforms))
        # one transaction, and the look and the write one statement: nobody claims in between
        async with self.db.execute(
            f"UPDATE runs SET owner = ? WHERE id IN (SELECT r.id FROM runs r"
            f" JOIN conversations c ON c.id = r.conversation_id"
            f" WHERE r.status IN {UNFINISHED} AND r.owner <> ? AND c.platform IN ({places})"
            f" AND NOT EXISTS (SELECT 1 FROM replicas p WHERE p.id = r.owner AND p.seen_at > ?)) RETURNING id",
            (replica, replica, *platforms, time.time() - stale_after_s),
        ) as cursor:
            claimed = [str(row[0]) for row in await cursor.fetchall()]
        await self.db.commit()
        if not claimed:
            return []
        async with self.db.execute(
            f"SELECT {RUN_COLUMNS} FROM runs r JOIN conversations c ON c.id = r.conversation_id"
            f" WHERE r.id IN ({', '.join('?' * len(claimed))}) ORDER BY r.created_at",
            claimed,
        ) as cursor:
            rows = await cursor.fetchall()
        return [run_record(row) for row in rows]

    @operation
    async def maintain(self) -> None:
        """Keep the WAL file small and the query planner's statistics fresh."""
        await self._execute("PRAGMA wal_checkpoint(TRUNCATE)")
        await self._execute("PRAGMA optimize")
        await self.db.commit()

    # health ------------------------------------------------------------------------------------------------

    async def health(self) -> str:
        """"ok", or why the database cannot be used, in words (for /healthz and `doctor`)."""
        try:
            self._check_file()
        except StorageError as exc:
            return str(exc)
        try:
            await self._probe()
        except StorageError as exc:
            return f"not writable: {exc}"
        return "ok"

    async def writable(self) -> bool:
        return await self.health() == "ok"

    @operation
    async def schema_status(self) -> SchemaStatus:
        async with self.db.execute("SELECT name FROM migrations") as cursor:
            applied = frozenset([row[0] async for row in cursor])
        return SchemaStatus(
            f"SQLite {sqlite3.sqlite_version}", str(self.path), applied, tuple(m.__name__ for m in MIGRATIONS)
        )

    async def _stamp(self) -> None:
        """Commit one small write: a full disk or a read-only file fails here, where BEGIN alone would not."""
        await self._execute(
            "INSERT INTO health (id, checked_at) VALUES (1, ?)"
            " ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
            (time.time(),),
        )
        await self.db.commit()

    _probe = operation(_stamp)
