"""The storage contract: every test here runs against SQLite and PostgreSQL alike.

`target` is what MOA_DB would name: a SQLite file under tmp_path, or a PostgreSQL database on the test server
(tests/postgres_server.py), emptied for each test. The team-knowledge index's part of the contract is in
tests/test_knowledge_index.py, on the same databases (`BACKENDS`, `database_for`). `query` reads and writes behind
the store's back on a connection of its own, so what it sees was committed.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
import pytest

from moa.conversation import ConversationKey
from moa.errors import StorageError
from moa.events import Usage
from moa.persistence import HistoryBudget, ProposalRecord
from storage import Storage, open_store
from storage.migrations import MIGRATIONS

KEY = ConversationKey("slack", "T1", "C1", "1700000000.000100")
DAY = 86400


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


async def database_for(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """What MOA_DB would name for `backend`: a new SQLite file, or the test server's database, emptied."""
    if backend == "sqlite":
        return tmp_path / "sub" / "moa.sqlite3"
    server = request.getfixturevalue("postgres_server")
    return str(await server.emptied_database())


@pytest.fixture(params=BACKENDS)
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    return await database_for(request.param, request, tmp_path)


@pytest.fixture
async def store(target: str | Path) -> AsyncIterator[Storage]:
    async with open_store(target) as s:
        yield s


async def query(target: str | Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Run `sql` ($1-style parameters) on a new connection and commit; its rows."""
    if isinstance(target, Path):
        async with aiosqlite.connect(target) as db:
            async with db.execute(re.sub(r"\$(\d+)", r"?\1", sql), args) as cursor:
                rows = [tuple(row) for row in await cursor.fetchall()]
            await db.commit()
            return rows
    conn = await asyncpg.connect(target, timeout=10)
    try:
        return [tuple(row) for row in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


async def finished_run(store: Storage, key: ConversationKey = KEY, question: str = "q") -> str:
    run = await store.create_run(key, "U1", question, "default", f"Ev-{question}")
    await store.finish_run(run, status="done", answer="a")
    return run


# schema ---------------------------------------------------------------------------------------------------


async def test_a_new_database_gets_every_migration(store: Storage) -> None:
    schema = await store.schema_status()
    assert schema.applied == {m.__name__ for m in MIGRATIONS}
    assert schema.pending == () and schema.unknown == ()
    latest = MIGRATIONS[-1].__name__.split("_")[0]  # "m003"
    assert re.fullmatch(rf"(SQLite|PostgreSQL) [\d.]+ at .+, schema {latest} \(up to date\)", schema.describe())


async def test_data_survives_a_restart_and_migrations_run_once(target: str | Path) -> None:
    async with open_store(target) as s:
        await s.append_turn(KEY, "q", "a", "run1")
    async with open_store(target) as s:
        assert await s.load_history(KEY, HistoryBudget()) == [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a"},
        ]
    names = await query(target, "SELECT name FROM migrations ORDER BY name")
    assert [n for (n,) in names] == [m.__name__ for m in MIGRATIONS]


async def test_a_closed_store_says_so(target: str | Path) -> None:
    store = await open_store(target).start()
    await store.aclose()
    with pytest.raises(StorageError, match=r"^the store is not open"):
        await store.first_time("slack", "Ev1")


# history ------------------------------------------------------------------------------------------------


async def test_history_keeps_the_newest_turns_within_the_budget(store: Storage) -> None:
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


async def test_history_never_starts_with_the_assistant(store: Storage) -> None:
    await store.append_turn(KEY, "q" * 100, "a" * 10, "r1")
    assert await store.load_history(KEY, HistoryBudget(limit=50)) == []


async def test_seeded_context_is_history_without_system_messages(store: Storage) -> None:
    assert not await store.has_history(KEY)
    await store.seed_history(
        KEY,
        [
            {"role": "system", "content": "not kept"},
            {"role": "user", "content": "earlier question"},
            {"role": "assistant", "content": "earlier answer"},
        ],
    )
    assert await store.has_history(KEY)
    await store.append_turn(KEY, "q", "a", "r1")
    assert [m["content"] for m in await store.load_history(KEY, HistoryBudget())] == [
        "earlier question", "earlier answer", "q", "a"
    ]


async def test_conversations_are_separate(store: Storage) -> None:
    await store.append_turn(KEY, "secret question", "secret answer", "r1")
    for other in (
        ConversationKey("slack", "T2", "C1", KEY.thread),
        ConversationKey("slack", "T1", "C1", "other"),
        ConversationKey("discord", "T1", "C1", KEY.thread),
    ):
        assert await store.load_history(other, HistoryBudget()) == []
        assert not await store.has_history(other)


async def test_forget_removes_history_and_finished_runs_but_not_runs_in_flight(store: Storage) -> None:
    await store.append_turn(KEY, "q", "a", "r1")
    done = await finished_run(store)
    live = await store.create_run(KEY, "U1", "still answering", "default", "E1")
    assert await store.forget(KEY) == 2
    assert await store.load_history(KEY, HistoryBudget()) == []
    assert await store.get_run(done) is None
    assert [r.id for r in await store.unfinished_runs()] == [live]


async def test_forget_of_an_unknown_conversation_removes_nothing(store: Storage) -> None:
    await store.append_turn(KEY, "q", "a", "r1")
    assert await store.forget(ConversationKey("slack", "T1", "C1", "never")) == 0
    assert len(await store.load_history(KEY, HistoryBudget())) == 2


# runs -----------------------------------------------------------------------------------------------------


async def test_run_lifecycle_and_record(store: Storage) -> None:
    run = await store.create_run(KEY, "U1", "What is WAL?", "default", "Ev1")
    [pending] = await store.unfinished_runs()
    assert (pending.id, pending.question, pending.status, pending.key, pending.user, pending.event_id) == (
        run, "What is WAL?", "pending", KEY, "U1", "Ev1"
    )
    assert pending.placeholder == {} and abs(pending.created_at - time.time()) < 60
    await store.set_placeholder(run, {"channel": "C1", "ts": "1.2"})
    await store.mark_running(run)
    [running] = await store.unfinished_runs()
    assert running.status == "running" and running.placeholder == {"channel": "C1", "ts": "1.2"}
    await store.add_proposals(run, [ProposalRecord(1, "p/a", "draft", 0.5, Usage(10, 20))])
    await store.add_proposals(run, [ProposalRecord(1, "p/b", "", 3.0, Usage(), "cut off", True)])
    await store.finish_run(run, status="done", answer="final", elapsed_s=1.5, usage=Usage(30, 40))
    assert await store.unfinished_runs() == []
    record = await store.get_run(run)
    assert record is not None
    assert (record["status"], record["answer"], record["placeholder"], record["question"]) == (
        "done", "final", {"channel": "C1", "ts": "1.2"}, "What is WAL?"
    )
    assert (record["prompt_tokens"], record["completion_tokens"], record["elapsed_s"]) == (30, 40, 1.5)
    assert isinstance(record["finished_at"], float) and record["finished_at"] >= record["created_at"]  # type: ignore[operator]
    assert record["proposals"] == [
        {"layer": 1, "model": "p/a", "text": "draft", "latency_s": 0.5, "prompt_tokens": 10,
         "completion_tokens": 20, "error": "", "straggler": False},
        {"layer": 1, "model": "p/b", "text": "", "latency_s": 3.0, "prompt_tokens": 0,
         "completion_tokens": 0, "error": "cut off", "straggler": True},
    ]
    assert record["feedback"] == []


async def test_unfinished_runs_come_oldest_first(store: Storage) -> None:
    first = await store.create_run(KEY, "U1", "first", "default", "E1")
    second = await store.create_run(ConversationKey("discord", "G1", "C2", ""), "U2", "second", "default", "E2")
    await finished_run(store, question="done")
    assert [r.id for r in await store.unfinished_runs()] == [first, second]


async def test_an_unknown_run_has_no_record_drafts_or_feedback(store: Storage) -> None:
    assert await store.get_run("nope") is None
    assert await store.drafts("nope") is None
    assert not await store.record_feedback("nope", "U1", "up")


async def test_drafts_are_the_question_and_proposals_in_arrival_order(store: Storage) -> None:
    run = await store.create_run(KEY, "U1", "What is WAL?", "default", "Ev1")
    late = ProposalRecord(1, "p/b", "", 3.0, Usage(), "cut off", True)
    early = ProposalRecord(1, "p/a", "draft a", 0.5, Usage(10, 20))
    await store.add_proposals(run, [early])
    await store.add_proposals(run, [late, ProposalRecord(2, "p/a", "draft 2", 0.7, Usage(1, 2))])
    assert await store.drafts(run) == (
        "What is WAL?", [early, late, ProposalRecord(2, "p/a", "draft 2", 0.7, Usage(1, 2))]
    )


async def test_feedback_is_one_per_person_and_the_last_click_wins(store: Storage) -> None:
    run = await finished_run(store)
    assert await store.record_feedback(run, "U1", "up")
    assert await store.record_feedback(run, "U2", "down")
    assert await store.record_feedback(run, "U1", "down")
    record = await store.get_run(run)
    assert record is not None
    assert sorted((f["user"], f["value"]) for f in record["feedback"]) == [  # type: ignore[attr-defined]
        ("U1", "down"), ("U2", "down")
    ]


async def test_moving_a_run_drops_the_conversation_it_leaves_when_empty(store: Storage, target: str | Path) -> None:
    opened = ConversationKey("slack", "T1", "C1", "")  # the sink created the thread only as it opened
    run = await store.create_run(opened, "U1", "q", "default", "E1")
    await store.move_run(run, KEY)
    [moved] = await store.unfinished_runs()
    assert moved.key == KEY
    threads = await query(target, "SELECT thread FROM conversations ORDER BY thread")
    assert threads == [(KEY.thread,)]


async def test_moving_a_run_keeps_a_conversation_that_has_messages(store: Storage, target: str | Path) -> None:
    channel = ConversationKey("slack", "T1", "C1", "")
    await store.append_turn(channel, "q", "a", "r0")
    run = await store.create_run(channel, "U1", "q", "default", "E1")
    await store.move_run(run, KEY)
    assert len(await store.load_history(channel, HistoryBudget())) == 2
    assert len(await query(target, "SELECT id FROM conversations")) == 2


# dedup --------------------------------------------------------------------------------------------------


async def test_event_dedup_survives_restart(target: str | Path) -> None:
    async with open_store(target) as s:
        assert await s.first_time("slack", "Ev1")
        assert not await s.first_time("slack", "Ev1")
        assert await s.first_time("discord", "Ev1")
    async with open_store(target) as s:
        assert not await s.first_time("slack", "Ev1")


async def test_an_event_offered_many_times_at_once_is_new_once(store: Storage) -> None:
    answers = await asyncio.gather(*(store.first_time("slack", "Ev1") for _ in range(10)))
    assert sorted(answers) == [False] * 9 + [True]


async def test_a_message_delivered_again_and_again_to_two_processes_is_new_once(target: str | Path) -> None:
    # Slack sends a mention as `app_mention` and as `message` (two event ids, one message), and retries each
    async with open_store(target) as one, open_store(target) as two:
        answers = await asyncio.gather(
            *(store.first_time("slack", event, "message:C1:1.2") for store in (one, two) for event in ("Ev1", "Ev2")
              for _ in range(3))
        )
    assert sorted(answers) == [False] * 11 + [True]


async def test_many_answers_at_once_share_the_store_safely(store: Storage) -> None:
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


# retention ----------------------------------------------------------------------------------------------


async def test_purge_drops_old_conversations_with_their_runs_only(store: Storage, target: str | Path) -> None:
    old = ConversationKey("slack", "T1", "C9", "old")
    await store.append_turn(old, "q", "a", "r1")
    old_run = await finished_run(store, old)
    await store.append_turn(KEY, "q", "a", "r2")
    young_run = await finished_run(store)
    await query(target, "UPDATE conversations SET updated_at = $1 WHERE thread = 'old'", time.time() - 91 * DAY)
    assert await store.purge(older_than_days=90) == 1
    assert await store.load_history(old, HistoryBudget()) == []
    assert await store.get_run(old_run) is None
    assert len(await store.load_history(KEY, HistoryBudget())) == 2
    assert await store.get_run(young_run) is not None
    await store.maintain()
    assert await store.writable()


async def test_purge_forgets_event_ids_after_three_days(store: Storage, target: str | Path) -> None:
    for event in ("old", "young"):
        assert await store.first_time("slack", event)
    await query(target, "UPDATE processed_events SET seen_at = $1 WHERE event_id = 'old'", time.time() - 3.1 * DAY)
    await store.purge(older_than_days=90)
    assert await store.first_time("slack", "old")
    assert not await store.first_time("slack", "young")


# failures and health ------------------------------------------------------------------------------------


async def test_a_failed_operation_leaves_nothing_half_stored(store: Storage, target: str | Path) -> None:
    # the conversation row is written, then the second statement fails (a NULL content breaks NOT NULL)
    with pytest.raises(StorageError, match=r"^the database refused: .*(NOT NULL|not-null)"):
        await store.seed_history(KEY, [{"role": "user", "content": None}])  # type: ignore[typeddict-item]
    await store.append_turn(ConversationKey("slack", "T1", "C1", "other"), "q", "a", "r1")
    assert await query(target, "SELECT thread FROM conversations") == [("other",)]


async def test_health_commits_a_real_write(store: Storage, target: str | Path) -> None:
    assert await store.health() == "ok"
    [(first,)] = await query(target, "SELECT checked_at FROM health")
    await asyncio.sleep(0.01)
    assert await store.health() == "ok"
    [(second,)] = await query(target, "SELECT checked_at FROM health")
    assert second > first


async def test_terminal_commands_open_the_database_beside_the_service(target: str | Path) -> None:
    service = await open_store(target).start(exclusive=True)
    try:
        async with open_store(target) as beside:
            assert await beside.first_time("console", "Ev1")
    finally:
        await service.aclose()


# replicas: owners, takeovers, shared rates --------------------------------------------------------------


async def age_heartbeat(target: str | Path, replica: str, seconds: float) -> None:
    await query(target, "UPDATE replicas SET seen_at = seen_at - $1 WHERE id = $2", seconds, replica)


async def test_a_run_carries_its_owner_until_handed_over(store: Storage) -> None:
    run = await store.create_run(KEY, "U1", "q", "default", "E1", owner="replica-a")
    [owned] = await store.unfinished_runs()
    assert owned.owner == "replica-a"
    await store.release_run(run)
    [released] = await store.unfinished_runs()
    assert released.owner == ""


async def test_orphans_are_runs_handed_over_or_left_by_a_silent_replica(store: Storage, target: str | Path) -> None:
    await store.heartbeat("alive")
    await store.heartbeat("silent")
    await age_heartbeat(target, "silent", 31)
    alive = await store.create_run(KEY, "U1", "alive's", "default", "E1", owner="alive")
    silent = await store.create_run(KEY, "U1", "silent's", "default", "E2", owner="silent")
    never_beat = await store.create_run(KEY, "U1", "a crash before its first beat", "default", "E3", owner="gone")
    handed = await store.create_run(KEY, "U1", "handed over", "default", "E4", owner="alive")
    await store.release_run(handed)
    await store.create_run(ConversationKey("console", "local", "cli"), "U1", "not a service's", "default", "E5")
    finished = await store.create_run(KEY, "U1", "done", "default", "E6", owner="silent")
    await store.finish_run(finished, status="done", answer="a")
    claimed = await store.claim_orphans("taker", 30.0, ["slack", "discord"])
    assert [r.id for r in claimed] == [silent, never_beat, handed]  # oldest first
    assert {r.owner for r in claimed} == {"taker"}
    assert await store.claim_orphans("another", 30.0, ["slack", "discord"]) == []  # the taker beats: not orphans
    owners = {r.id: r.owner for r in await store.unfinished_runs()}
    assert owners[alive] == "alive"


async def test_a_replica_never_claims_its_own_runs(store: Storage) -> None:
    await store.create_run(KEY, "U1", "q", "default", "E1", owner="me")
    assert await store.claim_orphans("me", 30.0, ["slack"]) == []


async def test_a_retired_replica_leaves_its_runs_to_the_next_at_once(store: Storage) -> None:
    await store.heartbeat("leaving")
    run = await store.create_run(KEY, "U1", "q", "default", "E1", owner="leaving")
    assert await store.claim_orphans("taker", 30.0, ["slack"]) == []
    await store.retire("leaving")
    assert [r.id for r in await store.claim_orphans("taker", 30.0, ["slack"])] == [run]


async def test_replicas_claiming_at_once_never_claim_a_run_twice(target: str | Path) -> None:
    async with open_store(target) as one, open_store(target) as two:
        runs = {await one.create_run(KEY, "U1", f"q{i}", "default", f"E{i}", owner="crashed") for i in range(30)}
        claims = await asyncio.gather(
            *(store.claim_orphans(name, 30.0, ["slack"]) for store, name in [(one, "a"), (two, "b")] * 3)
        )
    claimed = [run.id for claim in claims for run in claim]
    assert sorted(claimed) == sorted(runs), "every orphan is claimed, and none twice"


async def test_a_rate_is_counted_across_processes(target: str | Path) -> None:
    async with open_store(target) as one, open_store(target) as two:
        assert await one.admit("slack/T1/U1", 3, 60.0) is None
        assert await two.admit("slack/T1/U1", 3, 60.0) is None
        assert await one.admit("slack/T1/U1", 3, 60.0) is None
        wait = await two.admit("slack/T1/U1", 3, 60.0)
        assert wait is not None and 59 < wait <= 60
        assert await two.admit("slack/T1/U2", 3, 60.0) is None  # another person's bucket


async def test_questions_asked_at_once_take_a_rate_s_last_places_once(target: str | Path) -> None:
    async with open_store(target) as one, open_store(target) as two:
        answers = await asyncio.gather(*(store.admit("api/key/u", 5, 60.0) for store in [one, two] * 6))
    assert sum(answer is None for answer in answers) == 5


async def test_a_rate_s_window_slides(store: Storage, target: str | Path) -> None:
    for _ in range(2):
        assert await store.admit("slack/T1/U1", 2, 60.0) is None
    assert await store.admit("slack/T1/U1", 2, 60.0) is not None
    await query(target, "UPDATE rates SET at = at - 61")
    assert await store.admit("slack/T1/U1", 2, 60.0) is None, "questions older than the window no longer count"
    assert len(await query(target, "SELECT at FROM rates")) == 1, "the bucket's expired questions are deleted"


async def test_purge_forgets_silent_replicas_after_three_days(store: Storage, target: str | Path) -> None:
    for replica in ("old", "young"):
        await store.heartbeat(replica)
    await age_heartbeat(target, "old", 3.1 * DAY)
    await store.purge(older_than_days=90)
    assert await query(target, "SELECT id FROM replicas") == [("young",)]
