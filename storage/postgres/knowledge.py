"""The team-knowledge index in PostgreSQL: documents, chunks, full-text search with a tsvector and a GIN index.

Implements `moa.knowledge.model.KnowledgeIndex` as part of `storage.PostgresStore`, with the SQLite index's
semantics (`storage.knowledge`) and its row shapes and privacy filter (`storage.shared`). The differences:

- Full text: `chunks.search` is a generated `to_tsvector('english', text)` column with a GIN index, standing in
  for FTS5 (its English stemmer standing in for porter's); matches are ranked by `ts_rank`, where SQLite ranks by
  bm25. Both are higher for better matches and comparable within one search only, which is all the retrieval
  policy asks: its floor measures the question's key terms in the passage, not the score.
- No semantic search: no vector extension is assumed, so `search_vector` finds nothing and no chunk waits for a
  vector (`bot.wiring` says so once when MOA_EMBEDDING_MODEL is set).
- Several processes write at once: a page of documents is written with one upsert, in one order, so writers of
  the same sources wait for each other instead of colliding; an unchanged digest leaves the row as it is.
- PostgreSQL text cannot hold NUL characters, so they are dropped from what is stored (a file's text may have
  some; SQLite keeps them).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from moa.knowledge.model import (
    Cursor,
    Document,
    DocumentInfo,
    GivenSource,
    IndexStats,
    Passage,
    PendingChunk,
    RunOrigin,
    Shelf,
    Upsert,
)
from storage.postgres.connection import Connection
from storage.postgres.operation import count, operation
from storage.shared import (
    CHAT_KINDS,
    CURSOR_COLUMNS,
    DOCUMENT_COLUMNS,
    DOCUMENT_INFO_COLUMNS,
    PASSAGE_COLUMNS,
    PREFIX_END,
    RUN_ORIGIN_COLUMNS,
    RUN_SOURCE_COLUMNS,
    cursor_record,
    cursor_row,
    document_info,
    document_row,
    given_rows,
    passage,
    shelf_filter,
)

if TYPE_CHECKING:
    import asyncpg



def excluded(columns: str) -> str:
    """The values an INSERT ... ON CONFLICT offered for `columns`."""
    return ", ".join(f"excluded.{column.strip()}" for column in columns.split(","))


# `DOCUMENT_COLUMNS`' types, for a page of documents sent as one array per column
_DOCUMENT_TYPES = (
    "text", "text", "text", "text", "text", "text", "text", "text", "float8", "text", "text", "text", "int", "float8"
)
# A page of documents ($1..$14, one array per column) written where its digest differs from the stored one, in
# one order (so two writers of the same sources wait for each other, never deadlock); each row written with
# whether it replaced a stored one.
_UPSERT = (
    f"WITH page AS (SELECT * FROM unnest({', '.join(f'${n}::{t}[]' for n, t in enumerate(_DOCUMENT_TYPES, 1))})"
    f" AS p ({DOCUMENT_COLUMNS})),"
    " stored AS (SELECT source FROM documents WHERE source IN (SELECT source FROM page))"
    f" INSERT INTO documents AS d ({DOCUMENT_COLUMNS}) SELECT * FROM page ORDER BY source COLLATE \"C\""
    f" ON CONFLICT (source) DO UPDATE SET ({DOCUMENT_COLUMNS}) = ROW ({excluded(DOCUMENT_COLUMNS)})"
    " WHERE d.digest <> excluded.digest"
    " RETURNING d.source, d.id, d.source IN (SELECT source FROM stored) AS replaced"
)
# Normalization 1 divides the rank by 1 + the log of the chunk's length: the concise match first, as bm25 does.
_RANK = "ts_rank(c.search, query.q, 1)"


def _stored(text: str) -> str:
    """A text as it is stored: without NUL characters, which PostgreSQL's text cannot hold."""
    return text.replace("\x00", "")


def without_nul(value: object) -> object:
    """A text as it is stored; any other value as it is."""
    return _stored(value) if isinstance(value, str) else value


class _Params:
    """Parameters of one statement, numbered as they are bound."""

    def __init__(self, *first: object) -> None:
        self.values: list[object] = list(first)

    def bind(self, value: object) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


class KnowledgeTables:
    """The index's part of `PostgresStore` (which supplies the pool and the statement time limit)."""

    timeout_s: float

    if TYPE_CHECKING:

        @property
        def pool(self) -> asyncpg.Pool: ...

    # --- writing --------------------------------------------------------------------------------------------

    @operation
    async def upsert_documents(
        self, conn: Connection, items: Sequence[tuple[Document, Sequence[str], str]]
    ) -> list[Upsert]:
        latest = {_stored(document.source): (document, chunks, digest) for document, chunks, digest in items}
        now = time.time()
        rows = [tuple(map(without_nul, document_row(d, digest, now))) for d, _, digest in latest.values()]
        async with conn.transaction():
            written = await conn.fetch(_UPSERT, *map(list, zip(*rows, strict=True))) if rows else []
            if written:
                # every row written, not only those that `replaced` names: a writer of the same source that
                # committed while this one waited for its row made chunks that `stored` did not see
                await conn.execute(
                    "DELETE FROM chunks WHERE document_id = ANY($1::bigint[])", [row["id"] for row in written]
                )
            chunks = [
                (row["id"], seq, without_nul(text))
                for row in written
                for seq, text in enumerate(latest[row["source"]][1])
            ]
            if chunks:
                await conn.execute(
                    "INSERT INTO chunks (document_id, seq, text)"
                    " SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[])",
                    *map(list, zip(*chunks, strict=True)),
                )
        outcome = {row["source"]: Upsert.REPLACED if row["replaced"] else Upsert.ADDED for row in written}
        return [outcome.get(_stored(document.source), Upsert.UNCHANGED) for document, _, _ in items]

    @operation
    async def remove_source(self, conn: Connection, source: str) -> int:
        return count(await conn.execute("DELETE FROM documents WHERE source = $1", source))

    @operation
    async def remove_sources(self, conn: Connection, prefix: str) -> int:
        return count(
            await conn.execute("DELETE FROM documents WHERE source >= $1 AND source < $2", prefix, prefix + PREFIX_END)
        )

    @operation
    async def remove_channel(self, conn: Connection, platform: str, workspace: str, channel: str) -> int:
        async with conn.transaction():
            removed = await conn.execute(
                "DELETE FROM documents WHERE platform = $1 AND workspace = $2 AND channel = $3"
                f" AND kind IN {CHAT_KINDS}",
                platform,
                workspace,
                channel,
            )
            await conn.execute(
                "DELETE FROM backfill_cursors WHERE platform = $1 AND workspace = $2 AND channel = $3",
                platform,
                workspace,
                channel,
            )
        return count(removed)

    @operation
    async def indexed_channels(self, conn: Connection) -> list[tuple[str, str, str]]:
        rows = await conn.fetch(
            # in byte order, as on SQLite
            'SELECT platform COLLATE "C", workspace COLLATE "C", channel COLLATE "C" FROM documents'
            f" WHERE kind IN {CHAT_KINDS} UNION SELECT platform, workspace, channel FROM backfill_cursors"
            " ORDER BY 1, 2, 3"
        )
        return [(str(p), str(w), str(c)) for p, w, c in rows]

    # --- searching ------------------------------------------------------------------------------------------

    @operation
    async def search_text(
        self, conn: Connection, terms: Sequence[str], shelves: Sequence[Shelf], limit: int
    ) -> list[Passage]:
        if not terms:
            return []
        params = _Params(limit)
        # any of the terms, each read as plain words (never as query syntax); one of stop words only matches nothing
        query = " || ".join(f"plainto_tsquery('english', {params.bind(without_nul(term))})" for term in terms)
        visible = shelf_filter(shelves, params.bind)
        rows = await conn.fetch(
            f"SELECT {PASSAGE_COLUMNS}, {_RANK} AS rank FROM (SELECT {query} AS q) query"
            " CROSS JOIN chunks c JOIN documents d ON d.id = c.document_id"
            f" WHERE c.search @@ query.q AND ({visible}) ORDER BY rank DESC, c.id LIMIT $1",
            *params.values,
        )
        return [passage(row, float(row["rank"])) for row in rows]

    async def search_vector(self, vector: Sequence[float], shelves: Sequence[Shelf], limit: int) -> list[Passage]:
        """Nothing: semantic search is SQLite's alone (no vector extension is assumed here)."""
        return []

    # --- embeddings (none: see `search_vector`) -----------------------------------------------------------

    async def pending_embeddings(self, limit: int) -> list[PendingChunk]:
        return []

    async def store_embeddings(self, vectors: Sequence[tuple[int, Sequence[float]]]) -> None:
        """Nothing to store: no chunk is ever pending."""

    # --- listing --------------------------------------------------------------------------------------------

    @operation
    async def document_hash(self, conn: Connection, source: str) -> str | None:
        found = await conn.fetchval("SELECT digest FROM documents WHERE source = $1", source)
        return None if found is None else str(found)

    @operation
    async def documents(self, conn: Connection, prefix: str = "") -> list[DocumentInfo]:
        rows = await conn.fetch(
            f"SELECT {DOCUMENT_INFO_COLUMNS} FROM documents d WHERE d.source >= $1 AND d.source < $2"
            " ORDER BY d.source",
            prefix,
            prefix + PREFIX_END,
        )
        return [document_info(row) for row in rows]

    @operation
    async def stats(self, conn: Connection) -> IndexStats:
        kinds = await conn.fetch("SELECT kind, COUNT(*) FROM documents GROUP BY kind ORDER BY kind COLLATE \"C\"")
        [(chunks, embedded, chars, size)] = await conn.fetch(
            "SELECT COUNT(*), (SELECT COUNT(*) FROM chunk_embeddings), COALESCE(SUM(LENGTH(text)), 0),"
            " pg_database_size(current_database()) FROM chunks"
        )
        return IndexStats(
            documents={str(k): int(n) for k, n in kinds},
            chunks=int(chunks),
            chars=int(chars),
            database_bytes=int(size),
            embedded=int(embedded),
            pending_embeddings=0,
            cursors=tuple(await self._cursors(conn, "TRUE")),
        )

    # --- backfill cursors ---------------------------------------------------------------------------------

    @staticmethod
    async def _cursors(conn: Connection, where: str, *params: object) -> list[Cursor]:
        rows = await conn.fetch(
            f"SELECT {CURSOR_COLUMNS} FROM backfill_cursors WHERE {where}"
            ' ORDER BY platform COLLATE "C", workspace COLLATE "C", channel COLLATE "C"',
            *params,
        )
        return [cursor_record(row) for row in rows]

    @operation
    async def get_cursor(self, conn: Connection, platform: str, workspace: str, channel: str) -> Cursor | None:
        found = await self._cursors(
            conn, "platform = $1 AND workspace = $2 AND channel = $3", platform, workspace, channel
        )
        return found[0] if found else None

    @operation
    async def set_cursor(self, conn: Connection, cursor: Cursor) -> None:
        await conn.execute(
            f"INSERT INTO backfill_cursors ({CURSOR_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT (platform, workspace, channel) DO UPDATE SET"
            " cursor = excluded.cursor, done = excluded.done, messages = excluded.messages,"
            " oldest = excluded.oldest, updated_at = excluded.updated_at",
            *map(without_nul, cursor_row(cursor, time.time())),
        )

    # --- runs ---------------------------------------------------------------------------------------------

    @operation
    async def record_sources(self, conn: Connection, run_id: str, given: Sequence[GivenSource]) -> None:
        # given again, a number starts over: not cited (as SQLite's INSERT OR REPLACE has it)
        await conn.executemany(
            f"INSERT INTO run_sources ({RUN_SOURCE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            f" ON CONFLICT (run_id, number) DO UPDATE SET ({RUN_SOURCE_COLUMNS}, cited)"
            f" = ROW ({excluded(RUN_SOURCE_COLUMNS)}, excluded.cited)",
            [tuple(map(without_nul, row)) for row in given_rows(run_id, given)],
        )

    @operation
    async def mark_cited(self, conn: Connection, run_id: str, numbers: Sequence[int]) -> None:
        # the citation order is kept as the cited value: 1 for the first cited, 2 for the next...
        await conn.execute(
            "UPDATE run_sources s SET cited = n.cited FROM unnest($2::int[]) WITH ORDINALITY AS n (number, cited)"
            " WHERE s.run_id = $1 AND s.number = n.number",
            run_id,
            list(numbers),
        )

    @operation
    async def run_for_message(self, conn: Connection, platform: str, channel: str, message: str) -> RunOrigin | None:
        # the placeholder's message as the index on it has it (m003)
        row = await conn.fetchrow(
            f"SELECT {RUN_ORIGIN_COLUMNS} FROM runs r JOIN conversations c ON c.id = r.conversation_id"
            " WHERE (r.placeholder::jsonb ->> 'message') = $1 AND r.placeholder::jsonb ->> 'channel' = $2"
            " AND c.platform = $3 ORDER BY r.created_at DESC LIMIT 1",
            message,
            channel,
            platform,
        )
        return None if row is None else RunOrigin(*row)

