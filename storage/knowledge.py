"""The team-knowledge index in SQLite: documents, chunks, FTS5 with bm25, optional sqlite-vec vectors.

Vectors: each chunk's float32 embedding is kept in `chunk_embeddings`; the sqlite-vec index `chunk_vectors`
holds its binary quantization (one bit per dimension, 32 times smaller), scanned by Hamming distance for the
nearest `COARSE` times as many as asked (an answer asks `RetrievalPolicy.vector_candidates`), which are then
ranked by exact cosine distance on the float vectors. A scan of 100,000 binary vectors costs a few milliseconds
where float ones would cost over a hundred.

Implements `moa.knowledge.model.KnowledgeIndex` as part of `storage.Store` (one connection, one operation at a
time; searches read on connections of their own, one for full text and one for vectors, which run at once). PostgreSQL's implementation (`storage.postgres.knowledge`) shares the row shapes and the privacy filter
(`storage.shared`), with a tsvector column and `ts_rank` standing in for FTS5 and bm25.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

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
from storage.database import Database, operation, reading
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
from storage.vectors import MAX_K, VEC_TABLE, pack, pad

TEXT_SEARCH, VECTOR_SEARCH = "text search", "vector search"  # the read-only connections (`Database._read`)

TEXT_SHORTLIST = 4  # full-text matches ranked per passage asked, before the privacy filter
COARSE = 4  # binary-quantized candidates per passage asked, ranked again by exact cosine distance


def _shelf_filter(shelves: Sequence[Shelf]) -> tuple[str, list[object]]:
    """The privacy shelves as a WHERE clause on `documents d`, with its parameters."""
    params: list[object] = []

    def bind(value: object) -> str:
        params.append(value)
        return "?"

    return shelf_filter(shelves, bind), params


def _parts(values: Sequence[str], size: int = 500) -> list[Sequence[str]]:
    """`values` in slices small enough for one statement's parameters."""
    return [values[i : i + size] for i in range(0, len(values), size)]


def fts_query(terms: Sequence[str]) -> str:
    """Any of the terms, each quoted so that nothing in a question is read as FTS5 syntax."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


class KnowledgeTables(Database):
    vectors: bool  # sqlite-vec loaded (set by `Store`)
    _vector_dim: int | None = None  # the vector table's dimension, once it exists

    async def _start_vectors(self) -> None:
        """Called at open with sqlite-vec loaded: find the vector index and drop entries of deleted chunks."""
        rows = await self._rows("SELECT value FROM knowledge_meta WHERE key = 'embedding_dim'")
        tables = await self._rows("SELECT 1 FROM sqlite_master WHERE name = ?", (VEC_TABLE,))
        if rows and tables:
            self._vector_dim = int(rows[0][0])
            await self._execute(f"DELETE FROM {VEC_TABLE} WHERE rowid NOT IN (SELECT chunk_id FROM chunk_embeddings)")
            await self.db.commit()

    async def _delete_documents(self, where: str, params: Sequence[object]) -> int:
        """Delete the documents matching `where` (on `documents`), with their chunks, text index and vectors."""
        if self._vector_dim is not None:
            await self._execute(
                f"DELETE FROM {VEC_TABLE} WHERE rowid IN"
                f" (SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id WHERE {where})",
                params,
            )
        return await self._execute(f"DELETE FROM documents AS d WHERE {where}", params)

    # --- writing --------------------------------------------------------------------------------------------

    @operation
    async def upsert_documents(self, items: Sequence[tuple[Document, Sequence[str], str]]) -> list[Upsert]:
        # A few statements for the whole page, not a few per document: a backfill writes pages of hundreds.
        latest = {document.source: (document, chunks, digest) for document, chunks, digest in items}
        sources = list(latest)
        stored: dict[str, str] = {}
        for part in _parts(sources):
            stored.update(await self._rows(
                f"SELECT source, digest FROM documents WHERE source IN ({', '.join('?' * len(part))})", part))
        changed = [s for s in sources if stored.get(s) != latest[s][2]]
        replaced = [s for s in changed if s in stored]
        for part in _parts(replaced):
            await self._delete_documents(f"d.source IN ({', '.join('?' * len(part))})", part)
        now = time.time()
        await self._execute_many(
            f"INSERT INTO documents ({DOCUMENT_COLUMNS}) VALUES ({', '.join('?' * 14)})",
            [document_row(d, digest, now) for d, _, digest in (latest[s] for s in changed)],
        )
        ids: dict[str, int] = {}
        for part in _parts(changed):
            ids.update(await self._rows(
                f"SELECT source, id FROM documents WHERE source IN ({', '.join('?' * len(part))})", part))
        await self._execute_many(
            "INSERT INTO chunks (document_id, seq, text) VALUES (?, ?, ?)",
            [(ids[s], seq, text) for s in changed for seq, text in enumerate(latest[s][1])],
        )
        await self.db.commit()
        outcome = {s: Upsert.REPLACED if s in stored else Upsert.ADDED for s in changed}
        return [outcome.get(document.source, Upsert.UNCHANGED) for document, _, _ in items]

    @operation
    async def remove_source(self, source: str) -> int:
        removed = await self._delete_documents("d.source = ?", (source,))
        await self.db.commit()
        return removed

    @operation
    async def remove_sources(self, prefix: str) -> int:
        removed = await self._delete_documents("d.source >= ? AND d.source < ?", (prefix, prefix + PREFIX_END))
        await self.db.commit()
        return removed

    @operation
    async def remove_channel(self, platform: str, workspace: str, channel: str) -> int:
        removed = await self._delete_documents(
            f"d.platform = ? AND d.workspace = ? AND d.channel = ? AND d.kind IN {CHAT_KINDS}",
            (platform, workspace, channel),
        )
        await self._execute(
            "DELETE FROM backfill_cursors WHERE platform = ? AND workspace = ? AND channel = ?",
            (platform, workspace, channel),
        )
        await self.db.commit()
        return removed

    @operation
    async def indexed_channels(self) -> list[tuple[str, str, str]]:
        rows = await self._rows(
            f"SELECT DISTINCT platform, workspace, channel FROM documents WHERE kind IN {CHAT_KINDS}"
            " UNION SELECT platform, workspace, channel FROM backfill_cursors ORDER BY 1, 2, 3"
        )
        return [(str(p), str(w), str(c)) for p, w, c in rows]

    # --- searching ------------------------------------------------------------------------------------------

    @reading
    async def search_text(self, terms: Sequence[str], shelves: Sequence[Shelf], limit: int) -> list[Passage]:
        if not terms:
            return []
        query = fts_query(terms)
        visible, params = _shelf_filter(shelves)
        # The best matches first, from the full-text index alone (bm25 is FTS5's `rank`), then only those the
        # audience may read: joining every match to its document before ranking costs twice as much. When the
        # best matches were mostly unreadable, every match is ranked again with the filter applied. CROSS JOIN
        # fixes the join order: left to itself, SQLite's planner starts from the documents the privacy filter
        # selects (every public one) and takes seconds.
        ranked = await self._read(
            TEXT_SEARCH,
            "SELECT rowid, rank FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?",
            (query, limit * TEXT_SHORTLIST),
        )
        ranks = {int(chunk): float(rank) for chunk, rank in ranked}
        rows = await self._read(
            TEXT_SEARCH,
            f"SELECT {PASSAGE_COLUMNS} FROM chunks c CROSS JOIN documents d"
            f" WHERE c.id IN ({', '.join('?' * len(ranks))}) AND d.id = c.document_id AND ({visible})",
            (*ranks, *params),
        ) if ranks else []
        if len(rows) < limit and len(ranked) == limit * TEXT_SHORTLIST:
            rows = await self._read(
                TEXT_SEARCH,
                f"SELECT {PASSAGE_COLUMNS}, bm25(chunks_fts) AS rank FROM chunks_fts"
                " CROSS JOIN chunks c CROSS JOIN documents d"
                f" WHERE chunks_fts MATCH ? AND c.id = chunks_fts.rowid AND d.id = c.document_id AND ({visible})"
                " ORDER BY rank LIMIT ?",
                (query, *params, limit),
            )
            ranks = {int(row[0]): float(row[12]) for row in rows}
        # bm25 is lower for better matches; a passage's score is higher for better ones
        passages = [passage(row, -ranks[int(row[0])]) for row in rows]
        return sorted(passages, key=lambda p: -p.score)[:limit]

    @reading
    async def search_vector(self, vector: Sequence[float], shelves: Sequence[Shelf], limit: int) -> list[Passage]:
        if self._vector_dim is None or len(vector) != self._vector_dim:
            return []
        visible, params = _shelf_filter(shelves)
        # the nearest first, then only what the audience may read: ask for more than needed
        rows = await self._read(
            VECTOR_SEARCH,
            f"WITH coarse AS (SELECT rowid FROM {VEC_TABLE} WHERE embedding MATCH vec_quantize_binary(?) AND k = ?)"
            f" SELECT {PASSAGE_COLUMNS}, vec_distance_cosine(e.vector, ?) AS distance FROM coarse"
            " CROSS JOIN chunk_embeddings e CROSS JOIN chunks c CROSS JOIN documents d"
            " WHERE e.chunk_id = coarse.rowid AND c.id = coarse.rowid AND d.id = c.document_id"
            f" AND ({visible}) ORDER BY distance LIMIT ?",
            (pack(pad(vector)), min(MAX_K, limit * COARSE), pack(vector), *params, limit),
        )
        return [passage(row, 1.0 - float(row[12]), 1.0 - float(row[12])) for row in rows]

    # --- embeddings -----------------------------------------------------------------------------------------

    @operation
    async def prepare_vectors(self, model: str) -> None:
        """Vectors of another model than `model` are dropped, and every chunk is embedded again."""
        rows = await self._rows("SELECT value FROM knowledge_meta WHERE key = 'embedding_model'")
        if rows and rows[0][0] == model:
            return
        if self._vector_dim is not None:
            await self._execute(f"DROP TABLE {VEC_TABLE}")
            self._vector_dim = None
        await self._execute("DELETE FROM knowledge_meta WHERE key = 'embedding_dim'")
        await self._execute("DELETE FROM chunk_embeddings")
        await self._execute(
            "INSERT INTO knowledge_meta (key, value) VALUES ('embedding_model', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (model,),
        )
        await self.db.commit()

    @operation
    async def pending_embeddings(self, limit: int) -> list[PendingChunk]:
        if not self.vectors:
            return []
        rows = await self._rows(
            "SELECT c.id, c.text FROM chunks c LEFT JOIN chunk_embeddings e ON e.chunk_id = c.id"
            " WHERE e.chunk_id IS NULL ORDER BY c.id LIMIT ?",
            (limit,),
        )
        return [PendingChunk(int(i), str(t)) for i, t in rows]

    @operation
    async def store_embeddings(self, vectors: Sequence[tuple[int, Sequence[float]]]) -> None:
        if not vectors or not self.vectors:
            return
        dim = len(vectors[0][1])
        if self._vector_dim is None:
            await self._execute(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS {VEC_TABLE} USING vec0 (embedding bit[{len(pad([0.0] * dim))}])"
            )
            await self._execute(
                "INSERT INTO knowledge_meta (key, value) VALUES ('embedding_dim', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(dim),),
            )
        # a chunk deleted while its vector was being computed gets none
        ids = [chunk for chunk, _ in vectors]
        alive = {r[0] for r in await self._rows(
            f"SELECT id FROM chunks WHERE id IN ({', '.join('?' * len(ids))})", ids)}
        await self._execute(f"DELETE FROM {VEC_TABLE} WHERE rowid IN ({', '.join('?' * len(ids))})", ids)
        kept = [(chunk, vector) for chunk, vector in vectors if chunk in alive]
        await self._execute_many(
            "INSERT OR REPLACE INTO chunk_embeddings (chunk_id, vector) VALUES (?, ?)",
            [(chunk, pack(vector)) for chunk, vector in kept],
        )
        await self._execute_many(
            f"INSERT INTO {VEC_TABLE} (rowid, embedding) VALUES (?, vec_quantize_binary(?))",
            [(chunk, pack(pad(vector))) for chunk, vector in kept],
        )
        await self.db.commit()
        self._vector_dim = dim

    # --- listing --------------------------------------------------------------------------------------------

    @operation
    async def document_hash(self, source: str) -> str | None:
        rows = await self._rows("SELECT digest FROM documents WHERE source = ?", (source,))
        return str(rows[0][0]) if rows else None

    @operation
    async def documents(self, prefix: str = "") -> list[DocumentInfo]:
        rows = await self._rows(
            f"SELECT {DOCUMENT_INFO_COLUMNS} FROM documents d WHERE d.source >= ? AND d.source < ? ORDER BY d.source",
            (prefix, prefix + PREFIX_END),
        )
        return [document_info(row) for row in rows]

    @operation
    async def stats(self) -> IndexStats:
        kinds = await self._rows("SELECT kind, COUNT(*) FROM documents GROUP BY kind ORDER BY kind")
        (chunks, embedded, chars), = await self._rows(
            "SELECT COUNT(*), (SELECT COUNT(*) FROM chunk_embeddings), COALESCE(SUM(LENGTH(text)), 0) FROM chunks"
        )
        (pages, page_size), = await self._rows(
            "SELECT (SELECT page_count FROM pragma_page_count), (SELECT page_size FROM pragma_page_size)"
        )
        return IndexStats(
            documents={str(k): int(n) for k, n in kinds},
            chunks=int(chunks),
            chars=int(chars),
            database_bytes=int(pages) * int(page_size),
            embedded=int(embedded),
            pending_embeddings=int(chunks) - int(embedded) if self.vectors else 0,
            cursors=tuple(await self._cursors("1", ())),
        )

    # --- backfill cursors ---------------------------------------------------------------------------------

    async def _cursors(self, where: str, params: Sequence[object]) -> list[Cursor]:
        rows = await self._rows(
            f"SELECT {CURSOR_COLUMNS} FROM backfill_cursors WHERE {where} ORDER BY platform, workspace, channel",
            params,
        )
        return [cursor_record(row) for row in rows]

    @operation
    async def get_cursor(self, platform: str, workspace: str, channel: str) -> Cursor | None:
        found = await self._cursors("platform = ? AND workspace = ? AND channel = ?", (platform, workspace, channel))
        return found[0] if found else None

    @operation
    async def set_cursor(self, cursor: Cursor) -> None:
        await self._execute(
            f"INSERT INTO backfill_cursors ({CURSOR_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (platform, workspace, channel) DO UPDATE SET"
            " cursor = excluded.cursor, done = excluded.done, messages = excluded.messages,"
            " oldest = excluded.oldest, updated_at = excluded.updated_at",
            cursor_row(cursor, time.time()),
        )
        await self.db.commit()

    # --- runs ---------------------------------------------------------------------------------------------

    @operation
    async def record_sources(self, run_id: str, given: Sequence[GivenSource]) -> None:
        await self._execute_many(
            f"INSERT OR REPLACE INTO run_sources ({RUN_SOURCE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            given_rows(run_id, given),
        )
        await self.db.commit()

    @operation
    async def mark_cited(self, run_id: str, numbers: Sequence[int]) -> None:
        # the citation order is kept as the cited value: 1 for the first cited, 2 for the next...
        await self._execute_many(
            "UPDATE run_sources SET cited = ? WHERE run_id = ? AND number = ?",
            [(order, run_id, number) for order, number in enumerate(numbers, start=1)],
        )
        await self.db.commit()

    async def _run_sources(self, run_id: str) -> list[dict[str, object]]:
        rows = await self._rows(
            "SELECT number, source, title, author, created_at, link, score, cited FROM run_sources"
            " WHERE run_id = ? ORDER BY number",
            (run_id,),
        )
        keys = ("number", "source", "title", "author", "created_at", "link", "score", "cited")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    @operation
    async def run_for_message(self, platform: str, channel: str, message: str) -> RunOrigin | None:
        rows = await self._rows(
            f"SELECT {RUN_ORIGIN_COLUMNS} FROM runs r JOIN conversations c ON c.id = r.conversation_id"
            " WHERE json_extract(r.placeholder, '$.message') = ? AND json_extract(r.placeholder, '$.channel') = ?"
            " AND c.platform = ? ORDER BY r.created_at DESC LIMIT 1",
            (message, channel, platform),
        )
        return RunOrigin(*rows[0]) if rows else None
