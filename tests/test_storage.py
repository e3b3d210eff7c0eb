"""What only the SQLite store does: its file, WAL, the one-service flock, and SQLite's own failures.

Everything both backends do is in tests/test_store_contract.py, which runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import stat
from pathlib import Path

import aiosqlite
import pytest

from moa.conversation import ConversationKey
from moa.errors import StorageError
from moa.persistence import HistoryBudget
from storage import Store
from storage.errors import describe
from storage.lock import DatabaseInUse
from storage.migrations import MIGRATIONS, migrate

KEY = ConversationKey("slack", "T1", "C1", "1700000000.000100")


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    async with Store(tmp_path / "sub" / "moa.sqlite3") as s:
        yield s


async def test_migrations_create_the_schema_from_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "moa.sqlite3"
    async with Store(path) as s:
        async with s.db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") as cur:
            tables = [row[0] async for row in cur]
        async with s.db.execute("PRAGMA journal_mode") as cur:
            assert (await cur.fetchone())[0] == "wal"
    assert tables == [
        "backfill_cursors", "chunk_embeddings", "chunks", "chunks_fts", "chunks_fts_config", "chunks_fts_data", "chunks_fts_docsize",
        "chunks_fts_idx", "conversations", "documents", "feedback", "health", "knowledge_meta", "messages", "migrations",
        "processed_events", "proposals", "rates", "replicas", "run_sources", "runs", "sqlite_sequence",
    ]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


async def test_migrations_rerun_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "moa.sqlite3"
    async with Store(path) as s:
        await s.append_turn(KEY, "q", "a", "run1")
    async with aiosqlite.connect(path) as db:
        assert await migrate(db) == []
        async with db.execute("SELECT name FROM migrations") as cur:
            assert [r[0] async for r in cur] == [m.__name__ for m in MIGRATIONS]
    async with Store(path) as s:  # data survives a restart
        assert await s.load_history(KEY, HistoryBudget()) == [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a"},
        ]


async def test_unopenable_database_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match="MOA_DB: cannot open"):
        await Store(blocker / "moa.sqlite3").start()










async def test_a_full_disk_is_named(store: Store) -> None:
    async with store.db.execute("PRAGMA page_count") as cur:
        pages = (await cur.fetchone())[0]
    await store.db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite answers SQLITE_FULL for real
    with pytest.raises(StorageError) as raised:
        await store.append_turn(KEY, "q", "a" * 100_000, "r1")
    assert str(raised.value) == "the disk is full"
    assert isinstance(raised.value.__cause__, sqlite3.OperationalError)



async def test_a_read_only_database_is_named(store: Store) -> None:
    await store.db.execute("PRAGMA query_only = 1")
    with pytest.raises(StorageError, match=r"^the database is read-only$"):
        await store.create_run(KEY, "U1", "q", "default", "E1")
    assert await store.health() == "not writable: the database is read-only"


async def test_a_database_locked_by_another_process_is_named(store: Store) -> None:
    await store.db.execute("PRAGMA busy_timeout = 50")
    other = sqlite3.connect(store.path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StorageError, match=r"^the database is locked by another process$"):
            await store.first_time("slack", "Ev1")
        other.execute("ROLLBACK")
        assert await store.first_time("slack", "Ev1")
    finally:
        other.close()


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.ENOSPC, "the disk is full"),
        (errno.EROFS, "the database is read-only (read-only file system)"),
        (errno.EACCES, "permission denied"),
        (errno.EIO, "input/output error"),
    ],
)
def test_os_errors_are_described_in_words(code: int, words: str) -> None:
    assert describe(OSError(code, os.strerror(code))).startswith(words)



@pytest.mark.parametrize("how", ["deleted", "replaced"])
async def test_a_deleted_or_replaced_file_refuses_new_runs(store: Store, tmp_path: Path, how: str) -> None:
    if how == "deleted":
        for suffix in ("", "-wal", "-shm"):
            os.unlink(f"{store.path}{suffix}")
    else:
        async with Store(tmp_path / "other.sqlite3"):
            pass
        os.replace(tmp_path / "other.sqlite3", store.path)
    reason = "the database file was deleted or replaced; restart to recreate it"
    assert await store.health() == reason
    with pytest.raises(StorageError) as raised:
        await store.create_run(KEY, "U1", "q", "default", "E1")
    assert str(raised.value) == reason


async def test_a_second_service_on_one_file_is_told_to_use_postgresql(tmp_path: Path) -> None:
    path = tmp_path / "moa.sqlite3"
    first = await Store(path).start(exclusive=True)
    try:
        with pytest.raises(DatabaseInUse, match=r"^MOA_DB: .*moa\.sqlite3 is in use .*PostgreSQL"):
            await Store(path).start(exclusive=True)
    finally:
        await first.aclose()



async def test_in_memory_databases_need_no_lock() -> None:
    async with contextlib.AsyncExitStack() as stores:
        for _ in range(2):
            store = Store(":memory:")
            stores.push_async_callback(store.aclose)
            await store.start(exclusive=True)
            assert await store.health() == "ok"


def test_history_budget_parse() -> None:
    assert HistoryBudget.parse("6000 tokens") == HistoryBudget(6000, "tokens")
    assert HistoryBudget.parse("1200") == HistoryBudget(1200, "chars")
    with pytest.raises(ValueError):
        HistoryBudget.parse("lots")
