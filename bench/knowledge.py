"""Benchmark 7: team knowledge. Ingest rate and database size, search latency, and retrieval quality.

Everything goes through `moa.knowledge.Librarian` on a real `storage.Store` (SQLite, FTS5, sqlite-vec), as the
adapters and the answerer use it. The corpus is generated here, seeded: chat messages of 8 to 60 words drawn
from a Zipf-distributed vocabulary of 20,000 made-up words (so common and rare terms behave as in real chat),
and a set of "facts" with known answers hidden among them: each fact names a made-up service and states one
attribute of it; each question reuses the fact's key terms ("what port does the zorvex billing gateway use").

- Ingest: messages per second through `index_messages` in pages of 200 (a backfill), and through
  `index_message` one at a time (live messages, measured on 2,000 more once 100,000 are in); the database size
  after a checkpoint at 10,000 and 100,000 messages.
- Search: `Librarian.find` (query building, the FTS5 bm25 search with the privacy filter, the floor and caps)
  at 100,000 chunks, p50/p95 over generated questions; hybrid adds the query's vector search (sqlite-vec, 768
  dimensions, cosine) and reciprocal rank fusion. The vectors are hashed bags of words computed in-process, so
  no embeddings server's time is counted: only what moa-bot adds.
- Quality: recall@5, the share of questions whose fact is among the first five passages `find` returns.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import re
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import summary
from moa.knowledge import Audience, Document, Kind, Librarian
from moa.knowledge.embedding import normalized
from moa.knowledge.retrieval import STOPWORDS
from bot.wiring import CACHE_MIB
from storage import Store

VOCABULARY = 20_000
DIM = 768
BACKFILL_PAGE = 200  # Slack's conversations.history and Discord's message history come in pages of 100-200
LIVE_SAMPLE = 2000  # messages indexed one at a time, as they arrive
FACTS = 200
AUDIENCE = Audience("slack", "T1", frozenset({"C1"}))
ATTRIBUTES = [
    ("port", "listens on port {n}"),
    ("owner", "is owned by the team {w}"),
    ("deploy", "deploys every {w} from the {w} pipeline"),
    ("database", "keeps its data in the {w} database cluster"),
    ("oncall", "pages the {w} rotation when it fails"),
]
_SYLLABLES = ["ka", "zo", "rin", "vex", "tal", "mor", "qui", "den", "sa", "lu", "bro", "fen", "gri", "pol", "nax"]


class Embedding:
    """A stand-in embedding model: hashed bag of words, normalized (what the fake LLM serves in the tests)."""

    def __init__(self, dim: int = DIM) -> None:
        self.dim = dim
        self.name = f"bench/hashed-{dim}"

    def vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dim
        for word in re.findall(r"\w+", text.lower()):
            vector[int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "big") % self.dim] += 1
        return normalized(vector)

    async def embed(self, texts: Sequence[str], *, timeout_s: float = 0) -> list[list[float]]:
        return [self.vector(t) for t in texts]

    async def embed_query(self, text: str) -> list[float]:
        return self.vector(text)


def vocabulary(rng: random.Random) -> list[str]:
    """Made-up words, except the most frequent ones: in real text those are English stopwords, which a query
    leaves out (`moa.knowledge.retrieval.STOPWORDS`), so the corpus has them in their place."""
    seen: dict[str, None] = dict.fromkeys(sorted(STOPWORDS))
    while len(seen) < VOCABULARY:
        seen.setdefault("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))), None)
    return list(seen)


class Corpus:
    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.words = vocabulary(self.rng)
        # Zipf weights: word i is drawn in proportion to 1 / (i + 1)
        self.cumulative = list(_accumulate([1.0 / (i + 1) for i in range(VOCABULARY)]))

    def word(self) -> str:
        return self.rng.choices(self.words, cum_weights=self.cumulative)[0]

    def message(self) -> str:
        return " ".join(self.word() for _ in range(self.rng.randint(8, 60)))

    def facts(self, n: int) -> list[tuple[str, str]]:
        """(fact, question) pairs: the question reuses the fact's key terms, in other words around them."""
        rare = self.words[5000:]
        pairs = []
        for i in range(n):
            service = f"{self.rng.choice(rare)} {self.rng.choice(rare)}"
            key, template = ATTRIBUTES[i % len(ATTRIBUTES)]
            detail = template.format(n=self.rng.randint(1000, 65000), w=self.rng.choice(rare))
            fact = f"FYI the {service} service {detail}. {self.message()}"
            question = f"which {key} for the {service} service?"
            pairs.append((fact, question))
        return pairs


def _accumulate(values: list[float]) -> list[float]:
    total, out = 0.0, []
    for v in values:
        total += v
        out.append(total)
    return out


def document(i: int, text: str) -> Document:
    return Document(f"slack:T1:C1:{i}", Kind.MESSAGE, "slack", "T1", "C1", text, author=f"U{i % 50}",
                    created_at=1_700_000_000 + i)


def db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


async def ingest(librarian: Librarian, corpus: Corpus, start: int, end: int, facts: dict[int, str], *,
                 page: int) -> float:
    """Index messages start..end, `page` at a time (1: the live path, one message per transaction)."""
    started = time.perf_counter()
    for first in range(start, end, page):
        batch = [document(i, facts.get(i) or corpus.message()) for i in range(first, min(end, first + page))]
        if page == 1:
            await librarian.index_message(batch[0])
        else:
            await librarian.index_messages(batch)
    return time.perf_counter() - started


async def latency(librarian: Librarian, questions: Sequence[str]) -> dict[str, Any]:
    for question in questions[:5]:
        await librarian.find(question, [], AUDIENCE)  # warm the page cache
    times = []
    for question in questions:
        t0 = time.perf_counter()
        await librarian.find(question, [], AUDIENCE)
        times.append(time.perf_counter() - t0)
    return summary(times, scale=1000)


async def recall_at_5(librarian: Librarian, pairs: Sequence[tuple[int, str]]) -> float:
    hits = 0
    for index, question in pairs:
        found = await librarian.find(question, [], AUDIENCE)
        hits += f"slack:T1:C1:{index}" in [p.source for p in found[:5]]
    return round(hits / len(pairs), 3)


async def embed_all(store: Store, embedding: Embedding) -> float:
    started = time.perf_counter()
    while pending := await store.pending_embeddings(1000):
        await store.store_embeddings([(c.chunk_id, embedding.vector(c.text)) for c in pending])
    return time.perf_counter() - started


async def run(*, quick: bool) -> dict[str, Any]:
    sizes = (2_000, 10_000) if quick else (10_000, 100_000)
    searches = 100 if quick else 300
    corpus = Corpus()
    rng = random.Random(11)
    facts_at = sorted(rng.sample(range(sizes[0]), FACTS))
    pairs = corpus.facts(FACTS)
    facts = {i: fact for i, (fact, _) in zip(facts_at, pairs, strict=True)}
    questions = [(i, q) for i, (_, q) in zip(facts_at, pairs, strict=True)]
    noise_questions = [" ".join(corpus.word() for _ in range(rng.randint(3, 8))) for _ in range(searches)]
    rows: list[dict[str, Any]] = []
    result: dict[str, Any] = {"benchmark": "knowledge", "dim": DIM, "facts": FACTS}
    embedding = Embedding()
    with tempfile.TemporaryDirectory(prefix="moa-bench-") as folder:
        path = Path(folder) / "moa.sqlite3"
        async with Store(path, vectors=True, cache_mib=CACHE_MIB) as store:
            await store.prepare_vectors(embedding.name)
            librarian = Librarian(store)
            done = 0
            for size in sizes:
                seconds = await ingest(librarian, corpus, done, size, facts, page=BACKFILL_PAGE)
                rate = (size - done) / seconds
                done = size
                await store.maintain()
                rows.append({"messages": size, "backfill_per_s": round(rate),
                             "db_mb": round(db_bytes(path) / 1e6, 1), "chunks": (await store.stats()).chunks})
            live = LIVE_SAMPLE // 4 if quick else LIVE_SAMPLE
            seconds = await ingest(librarian, corpus, done, done + live, facts, page=1)
            result["live_per_s"] = round(live / seconds)
            for i in range(done, done + live):
                await librarian.delete(f"slack:T1:C1:{i}")
            result["recall_at_5_bm25"] = await recall_at_5(librarian, questions)
            result["search_ms_bm25"] = await latency(librarian, [q for _, q in questions] + noise_questions)
            embed_s = await embed_all(store, embedding)
            result["vectors_stored_per_s"] = round(done / embed_s)
            hybrid = Librarian(store, embedder=embedding)  # type: ignore[arg-type]
            result["recall_at_5_hybrid"] = await recall_at_5(hybrid, questions)
            result["search_ms_hybrid"] = await latency(hybrid, [q for _, q in questions] + noise_questions)
            await store.maintain()
            result["db_mb_with_vectors"] = round(db_bytes(path) / 1e6, 1)
    result["rows"] = rows
    result["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)  # the machine is shared
    result["chunks_searched"] = done
    result["met"] = {
        "bm25_p95_under_30_ms": result["search_ms_bm25"]["p95"] < 30,
        "hybrid_p95_under_60_ms": result["search_ms_hybrid"]["p95"] < 60,
        "recall_at_5_bm25_at_least_0.9": result["recall_at_5_bm25"] >= 0.9,
    }
    return result


if __name__ == "__main__":  # python3 -m bench.knowledge [--quick]
    import json
    import sys

    print(json.dumps(asyncio.run(run(quick="--quick" in sys.argv)), indent=1))

