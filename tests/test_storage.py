"""SQLite storage: migrations, history with a budget, runs, dedup, retention."""

from __future__ import annotations

import asyncio
import os
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
    assert tables == ["conversations", "messages", "migrations", "processed_events", "proposals", "runs"]
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


def test_history_budget_parse() -> None:
    assert HistoryBudget.parse("6000 tokens") == HistoryBudget(6000, "tokens")
    assert HistoryBudget.parse("1200") == HistoryBudget(1200, "chars")
    with pytest.raises(ValueError):
        HistoryBudget.parse("lots")
