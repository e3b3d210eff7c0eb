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


async def m003_feedback(db: aiosqlite.Connection) -> None:
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


MIGRATIONS: list[Migration] = [m001_initial, m002_health, m003_feedback]


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
