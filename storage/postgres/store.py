"""PostgreSQL storage (asyncpg, a connection pool): the same contract as the SQLite `storage.Store`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from types import TracebackType

import asyncpg

from moa.conversation import ConversationKey
from moa.errors import StorageError
from moa.events import Message, Usage
from moa.persistence import HistoryBudget, ProposalRecord, RunRecord
from storage.errors import describe_postgres
from storage.interface import EVENTS_KEPT_DAYS, UNFINISHED, SchemaStatus
from storage.postgres import migrations
from storage.postgres.connection import RATES, TURNS, Connection, PostgresUrl, lock_key
from storage.postgres.knowledge import KnowledgeTables
from storage.postgres.operation import DRIVER_ERRORS, count, operation
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

# The conversation `key` ($1-$4), created or touched at $5, as `conversation (id)`: statements that write to a
# conversation start with it, so they touch it and write in one statement.
TOUCH = (
    "WITH conversation AS (INSERT INTO conversations (platform, workspace, channel, thread, created_at, updated_at)"
    " VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (platform, workspace, channel, thread)"
    " DO UPDATE SET updated_at = excluded.updated_at RETURNING id) "
)
# the conversation `key` ($1-$4) as `c`
MATCH = "c.platform = $1 AND c.workspace = $2 AND c.channel = $3 AND c.thread = $4"
# the database's clock in unix seconds: heartbeats are written and judged by it, never by a replica's own
NOW = "extract(epoch FROM clock_timestamp())::double precision"
# how long an answer may wait for the one before it in its conversation, written by another replica
TURN_WAIT_S = 3600.0
CLAIM_ATTEMPTS = 5  # a claim that meets another replica's is tried again on a fresh snapshot


def _key(key: ConversationKey) -> tuple[str, str, str, str]:
    return key.platform, key.workspace, key.channel, key.thread


class PostgresStore(KnowledgeTables):
    """Opened with `start()` (or `async with`), closed with `aclose()`; nothing happens in `__init__`.

    Every statement is bounded by `timeout_s` (migrations by `migration_timeout_s`), and so is the wait for a
    connection of the pool. Any number of replicas may serve one database: they coordinate through it (advisory
    locks for conversations' turns and rates, heartbeats and runs' owners for takeovers).
    """

    shared = True

    def __init__(
        self,
        url: str,
        *,
        setting: str = "MOA_DB",
        timeout_s: float = 10.0,
        migration_timeout_s: float = 300.0,
        max_connections: int = 10,
        concurrent_answers: int = 0,
    ) -> None:
        """`concurrent_answers`: how many answers may hold their conversation's turn at once (MOA_MAX_CONCURRENT);
        each holds a connection of the pool for as long, on top of `max_connections` for everything else."""
        self.url = PostgresUrl(url)
        self.setting = setting  # what named the database, for the message when it cannot be opened
        self.location = f"PostgreSQL at {self.url.location}"
        self.timeout_s = timeout_s
        self.migration_timeout_s = migration_timeout_s
        self.max_connections = max_connections + concurrent_answers
        self._pool: asyncpg.Pool | None = None

    async def start(self, *, exclusive: bool = False) -> PostgresStore:
        """Connect, migrate (under an advisory lock) and check that the database takes a write.

        `exclusive` (for `moa-bot run`) changes nothing here: any number of replicas may serve the database.
        """
        try:
            try:
                await self._open()
            except DRIVER_ERRORS as exc:
                reason = describe_postgres(exc, self.timeout_s)
                raise StorageError(f"{self.setting}: cannot open {self.location}: {reason}") from exc
        except BaseException:
            await self.aclose()
            raise
        return self

    async def _open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.url.url,
            min_size=1,
            max_size=self.max_connections,
            timeout=self.timeout_s,  # to connect
            command_timeout=self.timeout_s,
        )
        async with self.pool.acquire(timeout=self.timeout_s) as conn:
            await migrations.migrate(conn, timeout_s=self.migration_timeout_s)
            await self._stamp(conn)  # a database that cannot take a write is of no use to any command

    async def aclose(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), self.timeout_s)
            except (TimeoutError, *DRIVER_ERRORS):
                pool.terminate()

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

    @operation
    async def load_history(self, conn: Connection, key: ConversationKey, budget: HistoryBudget) -> list[Message]:
        """The newest messages that fit the budget, oldest first; older ones are dropped first."""
        async with conn.transaction():  # a cursor lives in one
            rows = conn.cursor(
                f"SELECT m.role, m.content FROM messages m JOIN conversations c ON c.id = m.conversation_id"
                f" WHERE {MATCH} ORDER BY m.id DESC",
                *_key(key),
            )
            return await newest_within(rows, budget)

    @operation
    async def has_history(self, conn: Connection, key: ConversationKey) -> bool:
        return bool(
            await conn.fetchval(
                f"SELECT EXISTS (SELECT 1 FROM messages m JOIN conversations c ON c.id = m.conversation_id"
                f" WHERE {MATCH})",
                *_key(key),
            )
        )

    @operation
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

    @operation
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

    @operation
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
        return count(deleted)

    # runs ----------------------------------------------------------------------------------------------

    @operation
    async def create_run(
        self,
        conn: Connection,
        key: ConversationKey,
        user: str,
        question: str,
        preset: str,
        event_id: str,
        *,
        owner: str = "",
    ) -> str:
        run_id = uuid.uuid4().hex
        await conn.execute(
            f"{TOUCH}INSERT INTO runs"
            " (id, conversation_id, user_id, event_id, question, preset, status, created_at, owner)"
            " SELECT $6, id, $7, $8, $9, $10, 'pending', $5, $11 FROM conversation",
            *_key(key),
            time.time(),
            run_id,
            user,
            event_id,
            question,
            preset,
            owner,
        )
        return run_id

    @operation
    async def release_run(self, conn: Connection, run_id: str) -> None:
        await conn.execute("UPDATE runs SET owner = '' WHERE id = $1", run_id)

    @contextlib.asynccontextmanager
    async def claim_turn(
        self, key: ConversationKey, on_wait: Callable[[], Awaitable[None]]
    ) -> AsyncIterator[None]:
        """The conversation's advisory lock, held by a connection of the pool until the answer is written.

        A session lock, not a transaction's: an answer takes minutes, and a transaction open that long would
        hold back vacuum. The pool's reset on release unlocks it, and PostgreSQL drops it when the connection
        does, so a replica that dies mid-answer never leaves its conversation locked.
        """
        lock = (TURNS, lock_key(str(key)))
        try:
            conn = await self.pool.acquire(timeout=self.timeout_s)
        except DRIVER_ERRORS as exc:
            raise StorageError(describe_postgres(exc, self.timeout_s)) from exc
        try:
            try:
                if not await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", *lock):
                    await on_wait()
                    await conn.execute("SELECT pg_advisory_lock($1, $2)", *lock, timeout=TURN_WAIT_S)
            except DRIVER_ERRORS as exc:
                raise StorageError(describe_postgres(exc, self.timeout_s)) from exc
            yield
        finally:
            with contextlib.suppress(*DRIVER_ERRORS):  # a connection that cannot be reset is closed, lock and all
                await self.pool.release(conn, timeout=self.timeout_s)

    @operation
    async def set_placeholder(self, conn: Connection, run_id: str, placeholder: dict[str, str]) -> None:
        await conn.execute("UPDATE runs SET placeholder = $1 WHERE id = $2", json.dumps(placeholder), run_id)

    @operation
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

    @operation
    async def mark_running(self, conn: Connection, run_id: str) -> None:
        await conn.execute("UPDATE runs SET status = 'running' WHERE id = $1", run_id)

    @operation
    async def add_proposals(self, conn: Connection, run_id: str, proposals: Sequence[ProposalRecord]) -> None:
        await conn.executemany(
            f"INSERT INTO proposals (run_id, {PROPOSAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            proposal_rows(run_id, proposals),
        )

    @operation
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

    @operation
    async def unfinished_runs(self, conn: Connection) -> list[RunRecord]:
        rows = await conn.fetch(
            f"SELECT {RUN_COLUMNS} FROM runs r JOIN conversations c ON c.id = r.conversation_id"
            " WHERE r.status = ANY($1::text[]) ORDER BY r.created_at",
            UNFINISHED,
        )
        return [run_record(row) for row in rows]

    @operation
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

    @operation
    async def drafts(self, conn: Connection, run_id: str) -> tuple[str, list[ProposalRecord]] | None:
        """A run's question and its proposals in the order they came in; None for an unknown (or purged) run."""
        question = await conn.fetchval("SELECT question FROM runs WHERE id = $1", run_id)
        if question is None:
            return None
        rows = await conn.fetch(f"SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE run_id = $1 ORDER BY id", run_id)
        return str(question), [proposal_record(row) for row in rows]

    @operation
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
        return count(status) == 1

    # dedup and housekeeping ------------------------------------------------------------------------------

    @operation
    async def first_time(self, conn: Connection, platform: str, *delivery_ids: str) -> bool:
        """Record every id one delivery goes by (event id, message id, a slash command's trigger id); False when
        any was recorded before.

        One unique insert of them all: of several processes offered the same event, or the same message under
        two event ids, at most one inserts every id, and only that one is told it is new.
        """
        ids = list(dict.fromkeys(delivery_ids))
        if not ids:
            return True
        status = await conn.execute(
            "INSERT INTO processed_events (platform, event_id, seen_at) SELECT $1, id, $3 FROM unnest($2::text[]) id"
            " ON CONFLICT (platform, event_id) DO NOTHING",
            platform,
            ids,
            time.time(),
        )
        return count(status) == len(ids)

    @operation
    async def purge(
        self, conn: Connection, *, older_than_days: float, events_older_than_days: float = EVENTS_KEPT_DAYS
    ) -> int:
        """Delete conversations untouched for `older_than_days` (with their runs); returns how many.

        The heartbeats of replicas gone for as long as event ids are kept go too, and questions counted for
        rates as old as the conversations.
        """
        now = time.time()
        async with conn.transaction():
            removed = await conn.execute(
                "DELETE FROM conversations WHERE updated_at < $1", now - older_than_days * 86400
            )
            events_before = now - events_older_than_days * 86400
            await conn.execute("DELETE FROM processed_events WHERE seen_at < $1", events_before)
            await conn.execute("DELETE FROM replicas WHERE seen_at < $1", events_before)
            await conn.execute("DELETE FROM rates WHERE at < $1", now - older_than_days * 86400)
        return count(removed)

    # rates and replicas ------------------------------------------------------------------------------------

    @operation
    async def admit(self, conn: Connection, bucket: str, limit: int, per_s: float) -> float | None:
        """Count a question against `bucket` if it fits the rate; else the seconds until one does.

        The bucket's advisory lock makes look-and-count one step: two replicas asked at once by the same person
        never both take the last question of the window.
        """
        now = time.time()
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", RATES, lock_key(bucket))
            window = await conn.fetchrow(
                "WITH expired AS (DELETE FROM rates WHERE bucket = $1 AND at <= $2)"
                " SELECT count(*), min(at) FROM rates WHERE bucket = $1 AND at > $2",
                bucket,
                now - per_s,
            )
            counted, oldest = (0, None) if window is None else (int(window[0]), window[1])
            wait = rate_wait(counted, oldest, limit, per_s, now)
            if wait is None:
                await conn.execute("INSERT INTO rates (bucket, at) VALUES ($1, $2)", bucket, now)
        return wait

    @operation
    async def heartbeat(self, conn: Connection, replica: str) -> None:
        await self._beat(conn, replica)

    @staticmethod
    async def _beat(conn: Connection, replica: str) -> None:
        await conn.execute(
            f"INSERT INTO replicas (id, started_at, seen_at) VALUES ($1, {NOW}, {NOW})"
            " ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
            replica,
        )

    @operation
    async def retire(self, conn: Connection, replica: str) -> None:
        await conn.execute("DELETE FROM replicas WHERE id = $1", replica)

    @operation
    async def claim_orphans(
        self, conn: Connection, replica: str, stale_after_s: float, platforms: Collection[str]
    ) -> list[RunRecord]:
        """The unfinished runs of `platforms` handed over or left by a replica gone quiet, now `replica`'s.

        The claim is a heartbeat too, in the same transaction: a run is never claimed by a replica that looks
        gone. SKIP LOCKED: of replicas claiming at once, each passes over the runs another is claiming. REPEATABLE
        READ: a run another replica claimed and committed since this claim's snapshot fails this claim (READ
        COMMITTED would check the run again, but that replica's heartbeat as of the stale snapshot, and claim it a
        second time); the claim is then tried again on a fresh snapshot, where that run is alive and its own.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                async with conn.transaction(isolation="repeatable_read"):
                    await self._beat(conn, replica)
                    rows = await conn.fetch(
                        "WITH orphans AS (SELECT r.id FROM runs r JOIN conversations c ON c.id = r.conversation_id"
                        " WHERE r.status = ANY($2::text[]) AND r.owner <> $1 AND c.platform = ANY($3::text[])"
                        f" AND NOT EXISTS (SELECT 1 FROM replicas p WHERE p.id = r.owner AND p.seen_at > {NOW} - $4)"
                        " FOR UPDATE OF r SKIP LOCKED)"
                        " UPDATE runs r SET owner = $1 FROM orphans, conversations c"
                        f" WHERE r.id = orphans.id AND c.id = r.conversation_id RETURNING {RUN_COLUMNS}",
                        replica,
                        UNFINISHED,
                        list(platforms),
                        stale_after_s,
                    )
                return sorted((run_record(row) for row in rows), key=lambda run: run.created_at)
            except asyncpg.SerializationError:
                if attempt == CLAIM_ATTEMPTS:
                    raise

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

    _probe = operation(_stamp)

    @operation
    async def schema_status(self, conn: Connection) -> SchemaStatus:
        version = conn.get_server_version()
        return SchemaStatus(
            f"PostgreSQL {version.major}.{version.minor}",
            self.url.location,
            await migrations.applied(conn),
            migrations.MIGRATIONS,
        )
