"""Benchmark 6: storage growth. History load time against thread length, and database size per 1,000 answers.

Everything goes through `storage.Store`'s public methods, in the order `moa.answering.Answerer` calls them, with
texts of realistic size (a 300-character question, four 2,000-character drafts, a 2,500-character answer).
"""

from __future__ import annotations

import random
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import summary, text_of_chars
from moa.conversation import ConversationKey
from moa.events import Usage
from moa.persistence import HistoryBudget, ProposalRecord
from storage import Store

QUESTION_CHARS = 300
DRAFT_CHARS = 2000
ANSWER_CHARS = 2500
DRAFTS = 4


async def one_answer(store: Store, key: ConversationKey, i: int, texts: dict[str, str]) -> None:
    """The writes of one answer, as the answerer makes them."""
    run_id = await store.create_run(key, "U1", texts["question"], "default", f"Ev{i}")
    await store.set_placeholder(run_id, {"channel": key.channel, "ts": f"{1700000000 + i}.000100"})
    await store.mark_running(run_id)
    for d in range(DRAFTS):
        await store.add_proposals(
            run_id, [ProposalRecord(1, f"org/model-{d}", texts[f"draft{d}"], 2.5, Usage(900, 480))]
        )
    await store.append_turn(key, texts["question"], texts["answer"], run_id)
    await store.finish_run(
        run_id, status="done", answer=texts["answer"], elapsed_s=9.5, usage=Usage(4000, 2500)
    )


def make_texts(i: int) -> dict[str, str]:
    """Texts whose sizes vary from half to one and a half times the mean (uniformly, seeded by `i`)."""
    rng = random.Random(i)

    def sized(mean: int, seed: int) -> str:
        return text_of_chars(int(mean * rng.uniform(0.5, 1.5)), seed)

    texts = {"question": sized(QUESTION_CHARS, i), "answer": sized(ANSWER_CHARS, i + 1)}
    for d in range(DRAFTS):
        texts[f"draft{d}"] = sized(DRAFT_CHARS, i + 10 + d)
    return texts


def bytes_by_table(path: Path) -> dict[str, int]:
    """Bytes of pages per table and index (SQLite's dbstat), read-only, for the report only."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        try:
            rows = db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
        except sqlite3.Error:
            return {}
    return {str(name): int(size) for name, size in rows if size >= 100_000}


def db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


async def run(*, quick: bool) -> dict[str, Any]:
    turns_list = (10, 100, 1000)
    loads = 100 if quick else 300
    budget = HistoryBudget()  # the default: 24,000 characters
    unlimited = HistoryBudget(limit=10**12)
    rows = []
    texts = [make_texts(i) for i in range(100)]
    with tempfile.TemporaryDirectory(prefix="moa-bench-") as folder:
        path = Path(folder) / "moa.sqlite3"
        async with Store(path) as store:
            # threads of 10, 100 and 1,000 turns, each in a database holding the others too
            inserted = 0
            started = time.perf_counter()
            for turns in turns_list:
                key = ConversationKey("slack", "T1", "C1", f"thread-{turns}")
                for t in range(turns):
                    await one_answer(store, key, inserted, texts[t % len(texts)])
                    inserted += 1
            insert_s = time.perf_counter() - started
            for turns in turns_list:
                key = ConversationKey("slack", "T1", "C1", f"thread-{turns}")
                row: dict[str, Any] = {"turns": turns}
                for name, b in (("budget", budget), ("no_budget", unlimited)):
                    await store.load_history(key, b)  # warm the page cache
                    times = []
                    messages = 0
                    for _ in range(loads if name == "budget" else max(10, loads // 10)):
                        t0 = time.perf_counter()
                        history = await store.load_history(key, b)
                        times.append(time.perf_counter() - t0)
                        messages = len(history)
                    row[f"load_ms_{name}"] = summary(times, scale=1000, digits=3)
                    row[f"messages_{name}"] = messages
                row["met"] = bool(turns < 1000 or row["load_ms_budget"]["p95"] < 5)
                rows.append(row)
            await store.maintain()

        # database size per 1,000 answers: a fresh database, 1,000 answers in 100 threads of 10
        size_db = Path(folder) / "size.sqlite3"
        async with Store(size_db) as store:
            empty = db_bytes(size_db)
            for i in range(1000):
                key = ConversationKey("slack", "T1", f"C{i % 5}", f"t{i // 10}")
                await one_answer(store, key, i, texts[i % len(texts)])
            await store.maintain()
            after = db_bytes(size_db)
        by_table = bytes_by_table(size_db)
    # the question and the answer are each stored twice (the run record and the conversation), drafts once
    content = sum(
        2 * len(t["question"]) + 2 * len(t["answer"]) + sum(len(t[f"draft{d}"]) for d in range(DRAFTS))
        for t in texts
    ) / len(texts)
    return {
        "benchmark": "storage",
        "loads_per_thread": loads,
        "budget": f"{budget.limit} {budget.unit}",
        "mean_chars": {
            "question": QUESTION_CHARS,
            "draft": DRAFT_CHARS,
            "drafts": DRAFTS,
            "answer": ANSWER_CHARS,
        },
        "rows": rows,
        "insert_ms_per_answer": round(insert_s / inserted * 1000, 3),
        "db_mb_per_1000_answers": round((after - empty) / 1e6, 2),
        "text_mb_per_1000_answers": round(content * 1000 / 1e6, 2),
        "mb_by_table": {name: round(b / 1e6, 2) for name, b in by_table.items()},
        "target": "history load < 5 ms at 1,000 turns with the budget applied",
        "met": all(r["met"] for r in rows),
    }
