"""PostgreSQL's numbered migrations: `mNNN_name.sql` beside this file, applied in order at start.

They carry the SQLite migrations' names (`storage.migrations`), one for one, so a schema version means the same
on both backends. The pending ones are applied in one transaction and recorded by name in `migrations`, under an
advisory lock: replicas that start together apply each migration once, the others wait and then find it done.
Add new ones at the end and never edit one that has shipped.
"""

from __future__ import annotations

import time
from importlib import resources

from storage.postgres.connection import LOCK_SPACE, MIGRATING, Connection

MIGRATIONS: tuple[str, ...] = ("m001_initial", "m002_health", "m003_knowledge", "m004_feedback", "m005_replicas")


def sql(name: str) -> str:
    return resources.files("storage.postgres").joinpath(f"{name}.sql").read_text(encoding="utf-8")


async def migrate(conn: Connection, *, timeout_s: float) -> list[str]:
    """Apply the migrations not yet recorded, all or none; returns the names applied now.

    `timeout_s` bounds each statement, the wait for the lock included (building an index on a big table takes
    longer than an answer's statements may).
    """
    async with conn.transaction():
        # held to the end of the transaction, however it ends
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", LOCK_SPACE, MIGRATING, timeout=timeout_s)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)",
            timeout=timeout_s,
        )
        done = await applied(conn)
        pending = [name for name in MIGRATIONS if name not in done]
        for name in pending:
            await conn.execute(sql(name), timeout=timeout_s)
            await conn.execute(
                "INSERT INTO migrations (name, applied_at) VALUES ($1, $2)", name, time.time(), timeout=timeout_s
            )
        return pending


async def applied(conn: Connection) -> frozenset[str]:
    return frozenset(row["name"] for row in await conn.fetch("SELECT name FROM migrations"))
