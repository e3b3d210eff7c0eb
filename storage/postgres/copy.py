"""`moa-bot db migrate-to`: copy a SQLite database into PostgreSQL, as often as needed.

The source's rows are staged in temporary tables (COPY, in batches), then inserted where the target lacks them,
all in one transaction under an advisory lock: a copy that fails leaves nothing behind, and a second copy finds
everything there and adds nothing. Conversations are matched by their key (platform, workspace, channel,
thread), runs by their id, feedback and event ids by theirs; messages and proposals, which have no key of their
own, by their whole content, counting repeats (a row the source has twice is copied until the target has it twice).
The target's own ids are kept, so a conversation the target already had keeps its id and gains what it lacks.

Team knowledge: documents are matched by their source, and copied with their chunks (whose tsvector PostgreSQL
computes); a document the target has with another digest is replaced when the source indexed it later (a message
edited while the bot still ran on SQLite). Backfill cursors are matched by their channel (the one read further
later wins), sources given to runs by (run, number), `knowledge_meta` by its key. The vectors in `chunk_embeddings`
are not copied: semantic search is SQLite's alone. A given source's chunk id is mapped to the target's chunk of
the same document and place (0 when that chunk is gone).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

import aiosqlite

from moa.errors import StorageError
from storage.errors import describe, describe_postgres
from storage.postgres.connection import COPYING, LOCK_SPACE, Connection
from storage.postgres.knowledge import excluded, without_nul
from storage.postgres.operation import DRIVER_ERRORS, count
from storage.postgres.store import PostgresStore
from storage.shared import CURSOR_COLUMNS, DOCUMENT_COLUMNS, RUN_SOURCE_COLUMNS
from storage.store import Store

BATCH = 2000  # rows read from SQLite and sent to PostgreSQL at a time

RUN_COLUMNS = (
    "id, user_id, event_id, question, preset, status, placeholder, answer, error, created_at, finished_at,"
    " elapsed_s, prompt_tokens, completion_tokens, owner"
)
MESSAGE_COLUMNS = ("conversation_id", "role", "content", "run_id", "created_at")
PROPOSAL_COLUMNS = (
    "run_id", "layer", "model", "text", "latency_s", "prompt_tokens", "completion_tokens", "error", "straggler"
)


@dataclass(frozen=True)
class TableCopy:
    table: str
    in_source: int
    copied: int

    @property
    def already_there(self) -> int:
        return self.in_source - self.copied


@dataclass(frozen=True)
class _Table:
    name: str
    columns: str  # read from SQLite in this order, staged as `src_<name>` (LIKE the target's table)
    insert: str  # from the staged rows into the target; its status counts the rows copied
    convert: Callable[[tuple[Any, ...]], tuple[Any, ...]] = tuple
    before: tuple[str, ...] = ()  # run once the rows are staged, before `insert`
    after: tuple[str, ...] = ()


def _missing(table: str, key: str, columns: tuple[str, ...], source: str) -> str:
    """Insert the rows of `source` (with a `source_id` to keep their order) that `table` lacks, repeats counted.

    The subquery sees the table as it was before this statement, so each copy of a repeated row is counted
    against the copies already there, not against the ones being added.
    """
    listed = ", ".join(columns)
    same = " AND ".join(
        [f"t.{key} = s.{key}"] + [f"t.{c} IS NOT DISTINCT FROM s.{c}" for c in columns if c != key]
    )
    return (
        f"INSERT INTO {table} ({listed}) SELECT {listed} FROM"
        f" (SELECT *, row_number() OVER (PARTITION BY {listed} ORDER BY source_id) AS nth FROM ({source}) AS rows) s"
        f" WHERE s.nth > (SELECT count(*) FROM {table} t WHERE {same}) ORDER BY s.source_id"
    )


def _straggler_as_bool(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return (*row[:-1], bool(row[-1]))  # SQLite keeps it as 0 or 1


def _without_nul(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(map(without_nul, row))  # as the PostgreSQL index stores them


# the source's conversation ids, and the target's for the same conversations (after they are copied)
CONVERSATION_IDS = (
    "CREATE TEMP TABLE conversation_ids ON COMMIT DROP AS SELECT s.id AS source_id, c.id AS target_id"
    " FROM src_conversations s JOIN conversations c USING (platform, workspace, channel, thread)"
)
# a conversation active in the source after an earlier copy stays as young as it is there (for retention)
NEWER_USE = (
    "UPDATE conversations c SET updated_at = s.updated_at FROM src_conversations s"
    " WHERE (c.platform, c.workspace, c.channel, c.thread) = (s.platform, s.workspace, s.channel, s.thread)"
    " AND s.updated_at > c.updated_at"
)
# the source's ids of the documents copied now, and the target's: their chunks are copied
DOCUMENT_IDS = "CREATE TEMP TABLE document_ids (source_id BIGINT, target_id BIGINT) ON COMMIT DROP"
# a document the source indexed again after an earlier copy is copied again
OLDER_DOCUMENTS = (
    "DELETE FROM documents d USING src_documents s"
    " WHERE d.source = s.source AND d.digest <> s.digest AND s.indexed_at > d.indexed_at"
)


TABLES = (
    _Table(
        "conversations",
        "id, platform, workspace, channel, thread, created_at, updated_at",
        "INSERT INTO conversations (platform, workspace, channel, thread, created_at, updated_at)"
        " SELECT platform, workspace, channel, thread, created_at, updated_at FROM src_conversations ORDER BY id"
        " ON CONFLICT (platform, workspace, channel, thread) DO NOTHING",
        after=(NEWER_USE, CONVERSATION_IDS),
    ),
    _Table(
        "messages",
        "id, conversation_id, role, content, run_id, created_at",
        _missing(
            "messages",
            "conversation_id",
            MESSAGE_COLUMNS,
            "SELECT s.id AS source_id, m.target_id AS conversation_id, s.role, s.content, s.run_id, s.created_at"
            " FROM src_messages s JOIN conversation_ids m ON m.source_id = s.conversation_id",
        ),
    ),
    _Table(
        "runs",
        f"conversation_id, {RUN_COLUMNS}",
        f"INSERT INTO runs (conversation_id, {RUN_COLUMNS}) SELECT m.target_id, {RUN_COLUMNS}"
        " FROM src_runs s JOIN conversation_ids m ON m.source_id = s.conversation_id ON CONFLICT (id) DO NOTHING",
    ),
    _Table(
        "proposals",
        f"id, {', '.join(PROPOSAL_COLUMNS)}",
        _missing(
            "proposals",
            "run_id",
            PROPOSAL_COLUMNS,
            f"SELECT id AS source_id, {', '.join(PROPOSAL_COLUMNS)} FROM src_proposals",
        ),
        _straggler_as_bool,
    ),
    _Table(
        "feedback",
        "run_id, user_id, value, at",
        "INSERT INTO feedback (run_id, user_id, value, at) SELECT run_id, user_id, value, at FROM src_feedback"
        " ON CONFLICT (run_id, user_id) DO NOTHING",
    ),
    _Table(
        "processed_events",
        "platform, event_id, seen_at",
        "INSERT INTO processed_events (platform, event_id, seen_at) SELECT platform, event_id, seen_at"
        " FROM src_processed_events ON CONFLICT (platform, event_id) DO NOTHING",
    ),
    _Table(
        "documents",
        f"id, {DOCUMENT_COLUMNS}",
        f"WITH copied AS (INSERT INTO documents ({DOCUMENT_COLUMNS}) SELECT {DOCUMENT_COLUMNS} FROM src_documents"
        " ORDER BY id ON CONFLICT (source) DO NOTHING RETURNING id, source)"
        " INSERT INTO document_ids (source_id, target_id) SELECT s.id, copied.id FROM copied"
        " JOIN src_documents s USING (source)",
        _without_nul,
        before=(DOCUMENT_IDS, OLDER_DOCUMENTS),
    ),
    _Table(
        "chunks",
        "id, document_id, seq, text",
        "INSERT INTO chunks (document_id, seq, text) SELECT m.target_id, s.seq, s.text FROM src_chunks s"
        " JOIN document_ids m ON m.source_id = s.document_id ORDER BY s.id",
        _without_nul,
    ),
    _Table(
        "backfill_cursors",
        CURSOR_COLUMNS,
        f"INSERT INTO backfill_cursors ({CURSOR_COLUMNS}) SELECT {CURSOR_COLUMNS} FROM src_backfill_cursors"
        f" ON CONFLICT (platform, workspace, channel) DO UPDATE SET ({CURSOR_COLUMNS}) = ROW ({excluded(CURSOR_COLUMNS)})"
        " WHERE excluded.updated_at > backfill_cursors.updated_at",
    ),
    _Table(
        "knowledge_meta",
        "key, value",
        "INSERT INTO knowledge_meta (key, value) SELECT key, value FROM src_knowledge_meta"
        " ON CONFLICT (key) DO NOTHING",
    ),
    _Table(
        "run_sources",
        f"{RUN_SOURCE_COLUMNS}, cited",
        f"INSERT INTO run_sources ({RUN_SOURCE_COLUMNS}, cited)"
        " SELECT s.run_id, s.number, COALESCE(t.id, 0), s.source, s.title, s.author, s.created_at, s.link, s.score,"
        " s.cited FROM src_run_sources s"
        " LEFT JOIN src_chunks sc ON sc.id = s.chunk_id LEFT JOIN src_documents sd ON sd.id = sc.document_id"
        " LEFT JOIN documents td ON td.source = sd.source LEFT JOIN chunks t ON t.document_id = td.id AND t.seq = sc.seq"
        " ORDER BY s.run_id, s.number ON CONFLICT (run_id, number) DO NOTHING",
        _without_nul,
    ),
)

async def copy_sqlite(source: Store, target: PostgresStore) -> list[TableCopy]:
    """Copy what `target` lacks of `source` (both started); how many rows of each table were copied."""
    try:
        async with target.pool.acquire(timeout=target.timeout_s) as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", LOCK_SPACE, COPYING)
            return [await _copy(source.db, conn, table, target.migration_timeout_s) for table in TABLES]
    except sqlite3.Error as exc:
        raise StorageError(f"reading {source.path}: {describe(exc, source.path)}") from exc
    except DRIVER_ERRORS as exc:
        raise StorageError(f"copying into {target.location}: {describe_postgres(exc, target.timeout_s)}") from exc


async def _copy(db: aiosqlite.Connection, conn: Connection, table: _Table, timeout_s: float) -> TableCopy:
    staged = f"src_{table.name}"
    await conn.execute(f"CREATE TEMP TABLE {staged} (LIKE {table.name}) ON COMMIT DROP")
    # closed here, whatever happens: an aiosqlite cursor must not be left to the garbage collector
    async with contextlib.aclosing(_read(db, f"SELECT {table.columns} FROM {table.name}", table.convert)) as rows:
        await conn.copy_records_to_table(
            staged, records=rows, columns=[c.strip() for c in table.columns.split(",")], timeout=timeout_s
        )
    in_source = int(await conn.fetchval(f"SELECT count(*) FROM {staged}"))
    for statement in table.before:
        await conn.execute(statement, timeout=timeout_s)
    copied = count(await conn.execute(table.insert, timeout=timeout_s))
    for statement in table.after:
        await conn.execute(statement, timeout=timeout_s)
    return TableCopy(table.name, in_source, copied)


async def _read(
    db: aiosqlite.Connection, query: str, convert: Callable[[tuple[Any, ...]], tuple[Any, ...]]
) -> AsyncGenerator[tuple[Any, ...], None]:
    async with db.execute(query) as cursor:
        while batch := await cursor.fetchmany(BATCH):
            for row in batch:
                yield convert(tuple(row))
