"""Numbered schema migrations, applied in order at start and recorded by name in `migrations`.

Each migration is a function `mNNN_name(db)`; add new ones at the end and never edit one that has shipped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiosqlite

Migration = Callable[[aiosqlite.Connection], Awaitable[None]]


async def m001_initial(db: aiosqlite.Connection) -> None:
    await db.executescript(
        """
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            workspace TEXT NOT NULL,
            channel TEXT NOT NULL,
            thread TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE (platform, workspace, channel, thread)
        );
        CREATE INDEX conversations_updated ON conversations (updated_at);

        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            content TEXT NOT NULL,
            run_id TEXT,
            created_at REAL NOT NULL
        );
        CREATE INDEX messages_conversation ON messages (conversation_id, id);

        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            user_id TEXT NOT NULL,
            event_id TEXT NOT NULL DEFAULT '',
            question TEXT NOT NULL,
            preset TEXT NOT NULL,
            status TEXT NOT NULL,
            placeholder TEXT NOT NULL DEFAULT '{}',
            answer TEXT NOT NULL DEFAULT '',
            error TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            finished_at REAL,
            elapsed_s REAL,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX runs_status ON runs (status);
        CREATE INDEX runs_conversation ON runs (conversation_id);

        CREATE TABLE proposals (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            layer INTEGER NOT NULL,
            model TEXT NOT NULL,
            text TEXT NOT NULL DEFAULT '',
            latency_s REAL NOT NULL,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            error TEXT NOT NULL DEFAULT '',
            straggler INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX proposals_run ON proposals (run_id);

        CREATE TABLE processed_events (
            platform TEXT NOT NULL,
            event_id TEXT NOT NULL,
            seen_at REAL NOT NULL,
            PRIMARY KEY (platform, event_id)
        );
        CREATE INDEX processed_events_seen ON processed_events (seen_at);
        """
    )


async def m002_health(db: aiosqlite.Connection) -> None:
    # one row the health probe rewrites: a committed write is the only proof that the disk takes data
    await db.execute("CREATE TABLE health (id INTEGER PRIMARY KEY CHECK (id = 1), checked_at REAL NOT NULL)")


async def m003_knowledge(db: aiosqlite.Connection) -> None:
    # Team knowledge. Plain tables, one full-text index: PostgreSQL would keep a tsvector column on `chunks`
    # where SQLite keeps the FTS5 table `chunks_fts` in step through triggers. Ids never come back
    # (AUTOINCREMENT): entries of deleted chunks left in the vector index while sqlite-vec was not loaded can
    # never match another chunk. The embeddings themselves are a plain table; their index (`storage.vectors`)
    # is made at run time, once the model's dimension is known.
    await db.executescript(
        """
        CREATE TABLE documents (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            source TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('message', 'file', 'local', 'verified')),
            platform TEXT NOT NULL,
            workspace TEXT NOT NULL,
            channel TEXT NOT NULL,
            visibility TEXT NOT NULL CHECK (visibility IN ('public', 'private')),
            title TEXT NOT NULL,
            author TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            link TEXT NOT NULL DEFAULT '',
            thread TEXT NOT NULL DEFAULT '',
            digest TEXT NOT NULL,
            chars INTEGER NOT NULL,
            indexed_at REAL NOT NULL
        );
        CREATE INDEX documents_channel ON documents (platform, workspace, channel);

        CREATE TABLE chunks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            document_id INTEGER NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            text TEXT NOT NULL
        );
        CREATE INDEX chunks_document ON chunks (document_id);

        -- float32 vectors (MOA_EMBEDDING_MODEL only); a chunk without a row here is waiting to be embedded
        CREATE TABLE chunk_embeddings (
            chunk_id INTEGER PRIMARY KEY REFERENCES chunks (id) ON DELETE CASCADE,
            vector BLOB NOT NULL
        );

        CREATE VIRTUAL TABLE chunks_fts USING fts5 (
            text, content = 'chunks', content_rowid = 'id', tokenize = 'porter unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
            INSERT INTO chunks_fts (rowid, text) VALUES (new.id, new.text);
        END;
        CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
            INSERT INTO chunks_fts (chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
        END;

        CREATE TABLE backfill_cursors (
            platform TEXT NOT NULL,
            workspace TEXT NOT NULL,
            channel TEXT NOT NULL,
            cursor TEXT NOT NULL DEFAULT '',
            done INTEGER NOT NULL DEFAULT 0,
            messages INTEGER NOT NULL DEFAULT 0,
            oldest REAL NOT NULL DEFAULT 0,
            updated_at REAL NOT NULL,
            PRIMARY KEY (platform, workspace, channel)
        );

        CREATE TABLE knowledge_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

        -- what each answer was given, numbered as the models saw it, and which it cited
        CREATE TABLE run_sources (
            run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            number INTEGER NOT NULL,
            chunk_id INTEGER NOT NULL,
            source TEXT NOT NULL,
            title TEXT NOT NULL,
            author TEXT NOT NULL,
            created_at REAL NOT NULL,
            link TEXT NOT NULL,
            score REAL NOT NULL,
            cited INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (run_id, number)
        );

        -- a reaction on an answer names its message: find the run by its placeholder
        CREATE INDEX runs_placeholder_message ON runs (json_extract(placeholder, '$.message'));
        """
    )


async def m004_feedback(db: aiosqlite.Connection) -> None:
    """👍/👎 on an answer: one per person and run (a second click replaces the first)."""
    await db.executescript(
        """
        CREATE TABLE feedback (
            run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            user_id TEXT NOT NULL,
            value TEXT NOT NULL CHECK (value IN ('up', 'down')),
            at REAL NOT NULL,
            PRIMARY KEY (run_id, user_id)
        );
        """
    )


async def m005_replicas(db: aiosqlite.Connection) -> None:
    """Several processes on one database (PostgreSQL's reason to have this; SQLite keeps the same schema): who
    answers each run, who is alive, and the questions each person asked lately."""
    await db.executescript(
        """
        ALTER TABLE runs ADD COLUMN owner TEXT NOT NULL DEFAULT '';

        CREATE TABLE replicas (
            id TEXT PRIMARY KEY,
            started_at REAL NOT NULL,
            seen_at REAL NOT NULL
        );

        CREATE TABLE rates (
            bucket TEXT NOT NULL,
            at REAL NOT NULL
        );
        CREATE INDEX rates_bucket ON rates (bucket, at);
        """
    )


MIGRATIONS: list[Migration] = [m001_initial, m002_health, m003_knowledge, m004_feedback, m005_replicas]


async def migrate(db: aiosqlite.Connection) -> list[str]:
    """Apply the migrations not yet recorded; returns the names applied now."""
    await db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    async with db.execute("SELECT name FROM migrations") as cursor:
        done = {row[0] async for row in cursor}
    applied: list[str] = []
    for migration in MIGRATIONS:
        name = migration.__name__
        if name in done:
            continue
        await migration(db)
        await db.execute("INSERT INTO migrations (name, applied_at) VALUES (?, strftime('%s', 'now'))", (name,))
        await db.commit()
        applied.append(name)
    return applied
