"""PostgreSQL storage (asyncpg, a connection pool): the same contract as the SQLite `storage.Store`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

import asyncpg

from moa.conversation import ConversationKey
from moa.errors import StorageError
from moa.events import Message, Usage
from moa.persistence import HistoryBudget, ProposalRecord, RunRecord
from storage.errors import describe_postgres
from storage.interface import EVENTS_KEPT_DAYS, UNFINISHED, SchemaStatus
from storage.lock import DatabaseInUse
from storage.postgres import migrations
from storage.postgres.connection import LOCK_SPACE, SERVING, Connection, PostgresUrl
from storage.postgres.knowledge import KnowledgeTables
from storage.shared import (
    PROPOSAL_COLUMNS,
    RUN_COLUMNS,
    newest_within,
    proposal_record,
    proposal_rows,
    run_dict,
    run_record,
)

P = ParamSpec("P")
T = TypeVar("T")

# what the driver raises for the database's or the network's faults (TimeoutError is an OSError)
DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


def _operation(
    method: Callable[Concatenate[PostgresStore, Connection, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[PostgresStore, P], Coroutine[Any, Any, T]]:
    """One database operation on a connection of the pool, failures as `StorageError`.

    A statement is all or nothing by itself; an operation of several writes runs them in a transaction it opens
    (every transaction costs two more round trips, so single statements do without).
    """

    @functools.wraps(method)
    async def operation(self: PostgresStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            async with self.pool.acquire(timeout=self.timeout_s) as conn:
                return await method(self, conn, *args, **kwargs)
        except DRIVER_ERRORS as exc:
            raise StorageError(describe_postgres(exc, self.timeout_s)) from exc

    return operation


# The conversation `key` ($1-$4), created or touched at $5, as `conversation (id)`: statements that write to a
# conversation start with it, so they touch it and write in one statement.
TOUCH = (
    "WITH conversation AS (INSERT INTO conversations (platform, workspace, channel, thread, created_at, updated_at)"
    " VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (platform, workspace, channel, thread)"
    " DO UPDATE SET updated_at = excluded.updated_at RETURNING id) "
)
# the conversation `key` ($1-$4) as `c`
MATCH = "c.platform = $1 AND c.workspace = $2 AND c.channel = $3 AND c.thread = $4"


def _key(key: ConversationKey) -> tuple[str, str, str, str]:
    return key.platform, key.workspace, key.channel, key.thread


def _count(status: str) -> int:
    """The rows a command changed, from its status ("DELETE 3", "INSERT 0 1")."""
    return int(status.rsplit(" ", 1)[-1])


class PostgresStore(KnowledgeTables):
    """Opened with `start()` (or `async with`), closed with `aclose()`; nothing happens in `__init__`.

    Every statement is bounded by `timeout_s` (migrations by `migration_timeout_s`), and so is the wait for a
    connection of the pool.
    """

    def __init__(
        self,
        url: str,
        *,
        setting: str = "MOA_DB",
        timeout_s: float = 10.0,
        migration_timeout_s: float = 300.0,
        max_connections: int = 10,
    ) -> None:
        self.url = PostgresUrl(url)
        self.setting = setting  # what named the database, for the message when it cannot be opened
        self.location = f"PostgreSQL at {self.url.location}"
        self.timeout_s = timeout_s
        self.migration_timeout_s = migration_timeout_s
        self.max_connections = max_connections
        self._pool: asyncpg.Pool | None = None
        self._serving: asyncpg.Connection | None = None  # holds the one-service lock while open

    async def start(self, *, exclusive: bool = False) -> PostgresStore:
        """Connect, migrate (under an advisory lock) and check that the database takes a write.

        `exclusive` (for `moa-bot run`): this process serves the database, as on SQLite; `DatabaseInUse` when
        another does. Until replicas coordinate through the database, two services would each answer the
        other's runs again as a crash's leftovers.
        """
        try:
            try:
                await self._open(exclusive=exclusive)
            except DRIVER_ERRORS as exc:
                reason = describe_postgres(exc, self.timeout_s)
                raise StorageError(f"{self.setting}: cannot open {self.location}: {reason}") from exc
        except BaseException:
            await self.aclose()
            raise
        return self

    async def _open(self, *, exclusive: bool) -> None:
        self._pool = await asyncpg.create_pool(
            self.url.url,
            min_size=1,
            max_size=self.max_connections,
            timeout=self.timeout_s,  # to connect
            command_timeout=self.timeout_s,
        )
        if exclusive:
            await self._serve()
        async with self.pool.acquire(timeout=self.timeout_s) as conn:
            await migrations.migrate(conn, timeout_s=self.migration_timeout_s)
            await self._stamp(conn)  # a database that cannot take a write is of no use to any command

    async def _serve(self) -> None:
        # on a connection of its own: the lock is the session's, and goes when the process does
        self._serving = await asyncpg.connect(self.url.url, timeout=self.timeout_s, command_timeout=self.timeout_s)
        if not await self._serving.fetchval("SELECT pg_try_advisory_lock($1, $2)", LOCK_SPACE, SERVING):
            raise DatabaseInUse(
                f"{self.setting}: {self.location} is in use by another `moa-bot run`; until replicas coordinate "
                "through the database (a later release), one database serves one process"
            )

    async def aclose(self) -> None:
        try:
            if self._pool is not None:
                pool, self._pool = self._pool, None
                try:
                    await asyncio.wait_for(pool.close(), self.timeout_s)
                except (TimeoutError, *DRIVER_ERRORS):
                    pool.terminate()
        finally:
            # after the pool: the next service must not start while this one still writes
            if self._serving is not None:
                serving, self._serving = self._serving, None
                with contextlib.suppress(*DRIVER_ERRORS):
                    await serving.close(timeout=self.timeout_s)

    async def __aenter__(self) -> PostgresStore:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StorageError("the store is not open; call start() first")
        return self._pool

    # conversations -------------------------------------------------------------------------------------

    @_operation
    async def load_history(self, conn: Connection, key: ConversationKey, budget: HistoryBudget) -> list[Message]:
        """The newest messages that fit the budget, oldest first; older ones are dropped first."""
        async with conn.transaction():  # a cursor lives in one
            rows = conn.cursor(
                f"SELECT m.role, m.content FROM messages m JOIN conversations c ON c.id = m.conversation_id"
                f" WHERE {MATCH} ORDER BY m.id DESC",
                *_key(key),
            )
            return await newest_within(rows, budget)

    @_operation
    async def has_history(self, conn: Connection, key: ConversationKey) -> bool:
        return bool(
            await conn.fetchval(
                f"SELECT EXISTS (SELECT 1 FROM messages m JOIN conversations c ON c.id = m.conversation_id"
                f" WHERE {MATCH})",
                *_key(key),
            )
        )

    @_operation
    async def append_turn(
        self, conn: Connection, key: ConversationKey, question: str, answer: str, run_id: str
    ) -> None:
        await conn.execute(
            f"{TOUCH}INSERT INTO messages (conversation_id, role, content, run_id, created_at)"
            " SELECT conversation.id, m.role, m.content, $8, $5"
            " FROM conversation, (VALUES (1, 'user', $6), (2, 'assistant', $7)) AS m (n, role, content) ORDER BY m.n",
            *_key(key),
            time.time(),
            question,
            answer,
            run_id,
        )

    @_operation
    async def seed_history(self, conn: Connection, key: ConversationKey, messages: Sequence[Message]) -> None:
        """Store context read from the platform once, so it never has to be read again."""
        kept = [m for m in messages if m["role"] in ("user", "assistant")]
        await conn.execute(
            f"{TOUCH}INSERT INTO messages (conversation_id, role, content, created_at)"
            " SELECT conversation.id, m.role, m.content, $5"
            " FROM conversation, unnest($6::text[], $7::text[]) WITH ORDINALITY AS m (role, content, n) ORDER BY m.n",
            *_key(key),
            time.time(),
            [m["role"] for m in kept],
            [m["content"] for m in kept],
        )

    @_operation
    async def forget(self, conn: Connection, key: ConversationKey) -> int:
        """Delete a conversation's messages and finished runs; returns how many messages there were.

        Runs still in flight stay until they finish, so crash recovery never loses a question.
        """
        async with conn.transaction():
            deleted = await conn.execute(
                f"DELETE FROM messages m USING conversations c WHERE c.id = m.conversation_id AND {MATCH}",
                *_key(key),
            )
            await conn.execute(
                f"DELETE FROM runs r USING conversations c WHERE c.id = r.conversation_id AND {MATCH}"
                " AND r.status <> ALL($5::text[])",
                *_key(key),
                UNFINISHED,
            )
        return _count(deleted)

    # runs ----------------------------------------------------------------------------------------------

    @_operation
    async def create_run(
        self, conn: Connection, key: ConversationKey, user: str, question: str, preset: str, event_id: str
    ) -> str:
        run_id = uuid.uuid4().hex
        await conn.execute(
            f"{TOUCH}INSERT INTO runs (id, conversation_id, user_id, event_id, question, preset, status, created_at)"
            " SELECT $6, id, $7, $8, $9, $10, 'pending', $5 FROM conversation",
            *_key(key),
            time.time(),
            run_id,
            user,
            event_id,
            question,
            preset,
        )
        return run_id

    @_operation
    async def set_placeholder(self, conn: Connection, run_id: str, placeholder: dict[str, str]) -> None:
        await conn.execute("UPDATE runs SET placeholder = $1 WHERE id = $2", json.dumps(placeholder), run_id)

    @_operation
    async def move_run(self, conn: Connection, run_id: str, key: ConversationKey) -> None:
        """Attach the run to `key`'s conversation; the one it leaves is deleted if nothing else is in it."""
        async with conn.transaction():
            left = await conn.fetchval("SELECT conversation_id FROM runs WHERE id = $1", run_id)
            conversation = await conn.fetchval(f"{TOUCH}SELECT id FROM conversation", *_key(key), time.time())
            await conn.execute("UPDATE runs SET conversation_id = $1 WHERE id = $2", conversation, run_id)
            if left is not None and left != conversation:
                await conn.execute(
                    "DELETE FROM conversations WHERE id = $1"
                    " AND NOT EXISTS (SELECT 1 FROM runs WHERE conversation_id = $1)"
                    " AND NOT EXISTS (SELECT 1 FROM messages WHERE conversation_id = $1)",
                    left,
                )

    @_operation
    async def mark_running(self, conn: Connection, run_id: str) -> None:
        await conn.execute("UPDATE runs SET status = 'running' WHERE id = $1", run_id)

    @_operation
    async def add_proposals(self, conn: Connection, run_id: str, proposals: Sequence[ProposalRecord]) -> None:
        await conn.executemany(
            f"INSERT INTO proposals (run_id, {PROPOSAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            proposal_rows(run_id, proposals),
        )

    @_operation
    async def finish_run(
        self,
        conn: Connection,
        run_id: str,
        *,
        status: str,
        answer: str = "",
        error: str = "",
        elapsed_s: float = 0.0,
        usage: Usage = Usage(),
    ) -> None:
        await conn.execute(
            "UPDATE runs SET status = $1, answer = $2, error = $3, elapsed_s = $4, finished_at = $5,"
            " prompt_tokens = $6, completion_tokens = $7 WHERE id = $8",
            status,
            answer,
            error,
            elapsed_s,
            time.time(),
            usage.prompt_tokens,
            usage.completion_tokens,
            run_id,
        )

    @_operation
    async def unfinished_runs(self, conn: Connection) -> list[RunRecord]:
        rows = await conn.fetch(
            f"SELECT {RUN_COLUMNS} FROM runs r JOIN conversations c ON c.id = r.conversation_id"
            " WHERE r.status = ANY($1::text[]) ORDER BY r.created_at",
            UNFINISHED,
        )
        return [run_record(row) for row in rows]

    @_operation
    async def get_run(self, conn: Connection, run_id: str) -> dict[str, object] | None:
        """The whole run record with its proposals, as plain data (for `ask --json` and operators)."""
        run = await conn.fetchrow("SELECT * FROM runs WHERE id = $1", run_id)
        if run is None:
            return None
        proposals = await conn.fetch(
            f"SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE run_id = $1 ORDER BY id", run_id
        )
        feedback = await conn.fetch(
            'SELECT user_id AS "user", value, at FROM feedback WHERE run_id = $1 ORDER BY at', run_id
        )
        sources = await conn.fetch(
            "SELECT number, source, title, author, created_at, link, score, cited FROM run_sources"
            " WHERE run_id = $1 ORDER BY number",
            run_id,
        )
        record = run_dict(dict(run), [dict(p) for p in proposals], [dict(f) for f in feedback])
        record["sources"] = [dict(source) for source in sources]
        return record

    @_operation
    async def drafts(self, conn: Connection, run_id: str) -> tuple[str, list[ProposalRecord]] | None:
        """A run's question and its proposals in the order they came in; None for an unknown (or purged) run."""
        question = await conn.fetchval("SELECT question FROM runs WHERE id = $1", run_id)
        if question is None:
            return None
        rows = await conn.fetch(f"SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE run_id = $1 ORDER BY id", run_id)
        return str(question), [proposal_record(row) for row in rows]

    @_operation
    async def record_feedback(self, conn: Connection, run_id: str, user: str, value: str) -> bool:
        """Store a person's 👍/👎 on a run (replacing their earlier one); False for an unknown run."""
        status = await conn.execute(
            "INSERT INTO feedback (run_id, user_id, value, at) SELECT id, $2, $3, $4 FROM runs WHERE id = $1"
            " ON CONFLICT (run_id, user_id) DO UPDATE SET value = excluded.value, at = excluded.at",
            run_id,
            user,
            value,
            time.time(),
        )
        return _count(status) == 1

    # dedup and housekeeping ------------------------------------------------------------------------------

    @_operation
    async def first_time(self, conn: Connection, platform: str, event_id: str) -> bool:
        """Record an event id; False when it was recorded before (a retry or a duplicate delivery).

        One unique insert: of several processes offered the same event, exactly one is told it is new.
        """
        status = await conn.execute(
            "INSERT INTO processed_events (platform, event_id, seen_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (platform, event_id) DO NOTHING",
            platform,
            event_id,
            time.time(),
        )
        return _count(status) == 1

    @_operation
    async def purge(
        self, conn: Connection, *, older_than_days: float, events_older_than_days: float = EVENTS_KEPT_DAYS
    ) -> int:
        """Delete conversations untouched for `older_than_days` (with their runs); returns how many."""
        now = time.time()
        async with conn.transaction():
            removed = await conn.execute(
                "DELETE FROM conversations WHERE updated_at < $1", now - older_than_days * 86400
            )
            await conn.execute(
                "DELETE FROM processed_events WHERE seen_at < $1", now - events_older_than_days * 86400
            )
        return _count(removed)

    async def maintain(self) -> None:
        """Nothing to do: PostgreSQL's autovacuum reclaims space and refreshes the planner's statistics."""

    # health ------------------------------------------------------------------------------------------------

    async def health(self) -> str:
        """"ok", or why the database cannot be used, in words (for /healthz and `doctor`)."""
        try:
            await self._probe()
        except StorageError as exc:
            return f"not writable: {exc}"
        return "ok"

    async def writable(self) -> bool:
        return await self.health() == "ok"

    async def _stamp(self, conn: Connection) -> None:
        """Commit one small write: a full disk or a read-only server fails here."""
        await conn.execute(
            "INSERT INTO health (id, checked_at) VALUES (1, $1)"
            " ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
            time.time(),
        )

    _probe = _operation(_stamp)

    @_operation
    async def schema_status(self, conn: Connection) -> SchemaStatus:
        version = conn.get_server_version()
        return SchemaStatus(
            f"PostgreSQL {version.major}.{version.minor}",
            self.url.location,
            await migrations.applied(conn),
            migrations.MIGRATIONS,
        )
