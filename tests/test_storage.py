"""SQLite storage: migrations, history with a budget, runs, dedup, retention."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import sqlite3
import stat
import time
from pathlib import Path

import aiosqlite
import pytest

from moa.conversation import ConversationKey
from moa.errors import StorageError
from moa.events import Usage
from moa.store import HistoryBudget, ProposalRecord
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
        "processed_events", "proposals", "run_sources", "runs", "sqlite_sequence",
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


async def test_history_keeps_the_newest_turns_within_the_budget(store: Store) -> None:
    for i in range(10):
        await store.append_turn(KEY, f"question {i}", f"answer {i}" + "x" * 90, f"r{i}")
    history = await store.load_history(KEY, HistoryBudget(limit=350, unit="chars"))
    # each turn costs 10 + 98 = 108 chars: three fit, and the oldest are dropped first
    assert [m["content"][:10] for m in history] == [
        "question 7",
        "answer 7xx",
        "question 8",
        "answer 8xx",
        "question 9",
        "answer 9xx",
    ]
    assert history[0]["role"] == "user"
    tokens = await store.load_history(KEY, HistoryBudget(limit=40, unit="tokens"))  # 4 + 25 tokens a turn
    assert len(tokens) == 2


async def test_history_never_starts_with_the_assistant(store: Store) -> None:
    await store.append_turn(KEY, "q" * 100, "a" * 10, "r1")
    history = await store.load_history(KEY, HistoryBudget(limit=50))
    assert history == []


async def test_conversations_are_separate(store: Store) -> None:
    await store.append_turn(KEY, "secret question", "secret answer", "r1")
    for other in (
        ConversationKey("slack", "T2", "C1", KEY.thread),
        ConversationKey("slack", "T1", "C1", "other"),
        ConversationKey("discord", "T1", "C1", KEY.thread),
    ):
        assert await store.load_history(other, HistoryBudget()) == []


async def test_forget_removes_history_but_not_runs_in_flight(store: Store) -> None:
    await store.append_turn(KEY, "q", "a", "r1")
    live = await store.create_run(KEY, "U1", "still answering", "default", "E1")
    assert await store.forget(KEY) == 2
    assert await store.load_history(KEY, HistoryBudget()) == []
    assert [r.id for r in await store.unfinished_runs()] == [live]


async def test_run_lifecycle_and_record(store: Store) -> None:
    run = await store.create_run(KEY, "U1", "What is WAL?", "default", "Ev1")
    [pending] = await store.unfinished_runs()
    assert (pending.id, pending.question, pending.status, pending.key) == (
        run,
        "What is WAL?",
        "pending",
        KEY,
    )
    await store.set_placeholder(run, {"channel": "C1", "ts": "1.2"})
    await store.mark_running(run)
    await store.add_proposals(run, [ProposalRecord(1, "p/a", "draft", 0.5, Usage(10, 20))])
    await store.add_proposals(run, [ProposalRecord(1, "p/b", "", 3.0, Usage(), "cut off", True)])
    await store.finish_run(run, status="done", answer="final", elapsed_s=1.5, usage=Usage(30, 40))
    assert await store.unfinished_runs() == []
    record = await store.get_run(run)
    assert record is not None
    assert (
        record["status"] == "done"
        and record["answer"] == "final"
        and record["placeholder"] == {"channel": "C1", "ts": "1.2"}
    )
    assert record["prompt_tokens"] == 30 and record["completion_tokens"] == 40
    assert [p["model"] for p in record["proposals"]] == ["p/a", "p/b"]  # type: ignore[index]
    assert record["proposals"][1]["straggler"] == 1  # type: ignore[index]


async def test_event_dedup_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "moa.sqlite3"
    async with Store(path) as s:
        assert await s.first_time("slack", "Ev1")
        assert not await s.first_time("slack", "Ev1")
        assert await s.first_time("discord", "Ev1")
    async with Store(path) as s:
        assert not await s.first_time("slack", "Ev1")


async def test_many_answers_at_once_share_the_connection_safely(store: Store) -> None:
    # Unclosed cursors finalized on the event loop's thread used to break the worker thread's statements
    # ("bad parameter or other API misuse") as soon as a few answers ran together.
    async def answer(i: int) -> None:
        key = ConversationKey("slack", "T1", "C1", str(i))
        for j in range(15):
            assert await store.first_time("slack", f"Ev{i}-{j}")
            run_id = await store.create_run(key, "U1", "q", "default", f"Ev{i}-{j}")
            await store.set_placeholder(run_id, {"ts": str(j)})
            await store.mark_running(run_id)
            await store.load_history(key, HistoryBudget())
            await store.add_proposals(run_id, [ProposalRecord(1, "m", "draft", 0.1, Usage(1, 2))])
            await store.append_turn(key, "q", "a", run_id)
            await store.finish_run(run_id, status="done", answer="a")

    await asyncio.gather(*(answer(i) for i in range(20)))
    assert await store.unfinished_runs() == []
    assert len(await store.load_history(ConversationKey("slack", "T1", "C1", "7"), HistoryBudget())) == 30


async def test_purge_drops_old_conversations_only(store: Store) -> None:
    old = ConversationKey("slack", "T1", "C9", "old")
    await store.append_turn(old, "q", "a", "r1")
    await store.append_turn(KEY, "q", "a", "r2")
    await store.db.execute(
        "UPDATE conversations SET updated_at = ? WHERE thread = 'old'", (time.time() - 91 * 86400,)
    )
    await store.db.commit()
    assert await store.purge(older_than_days=90) == 1
    assert await store.load_history(old, HistoryBudget()) == []
    assert len(await store.load_history(KEY, HistoryBudget())) == 2
    await store.maintain()
    assert await store.writable()


async def test_a_full_disk_is_named(store: Store) -> None:
    async with store.db.execute("PRAGMA page_count") as cur:
        pages = (await cur.fetchone())[0]
    await store.db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite answers SQLITE_FULL for real
    with pytest.raises(StorageError) as raised:
        await store.append_turn(KEY, "q", "a" * 100_000, "r1")
    assert str(raised.value) == "the disk is full"
    assert isinstance(raised.value.__cause__, sqlite3.OperationalError)


async def test_a_failed_operation_leaves_nothing_half_stored(store: Store) -> None:
    # the conversation row is written, then the second statement fails (a NULL content breaks NOT NULL)
    with pytest.raises(StorageError, match=r"^the database refused: NOT NULL constraint failed"):
        await store.seed_history(KEY, [{"role": "user", "content": None}])  # type: ignore[typeddict-item]
    await store.append_turn(ConversationKey("slack", "T1", "C1", "other"), "q", "a", "r1")  # commits all open
    async with store.db.execute("SELECT thread FROM conversations") as cur:
        assert [row[0] async for row in cur] == ["other"]


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


async def test_health_commits_a_real_write(store: Store) -> None:
    assert await store.health() == "ok"
    with sqlite3.connect(store.path) as other:  # another connection sees it: it was committed
        [(first,)] = other.execute("SELECT checked_at FROM health").fetchall()
    await asyncio.sleep(0.01)
    assert await store.health() == "ok"
    with sqlite3.connect(store.path) as other:
        [(second,)] = other.execute("SELECT checked_at FROM health").fetchall()
    assert second > first


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


async def test_a_second_service_on_one_file_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    path = tmp_path / "moa.sqlite3"
    first = await Store(path).start(exclusive=True)
    try:
        with pytest.raises(DatabaseInUse, match=r"^MOA_DB: .*moa\.sqlite3 is in use .*PostgreSQL"):
            await Store(path).start(exclusive=True)
    finally:
        await first.aclose()
    second = await Store(path).start(exclusive=True)
    await second.aclose()


async def test_terminal_commands_open_the_database_beside_the_service(tmp_path: Path) -> None:
    path = tmp_path / "moa.sqlite3"
    service = await Store(path).start(exclusive=True)
    try:
        async with Store(path) as beside:
            assert await beside.first_time("console", "Ev1")
    finally:
        await service.aclose()


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
