"""Optional semantic search: chunks embedded in batches in the background, and queries at answer time.

Only with MOA_EMBEDDING_MODEL set. The model is any provider's OpenAI-compatible `/v1/embeddings`, reached
through the provider registry like the chat models. A failing embeddings server never stops an answer: the
query falls back to full-text search, and the background worker waits and tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Sequence

from moa.errors import MoaError, ProviderError, ProviderUnavailable
from moa.knowledge.model import KnowledgeIndex
from moa.providers.base import Provider

log = logging.getLogger("moa.knowledge")

BATCH = 64
QUERY_TIMEOUT_S = 5.0  # an answer waits this long at most for its query's vector
BATCH_TIMEOUT_S = 60.0
IDLE_S = 30.0  # with nothing to embed, look again this often (new chunks also wake the worker)
MAX_BACKOFF_S = 300.0


class Embedder:
    """Vectors for texts from one embedding model."""

    def __init__(self, provider: Provider, model: str, name: str) -> None:
        self._provider = provider
        self._model = model  # as the provider knows it
        self.name = name  # as configured (MOA_EMBEDDING_MODEL), recorded with the vectors

    async def embed(self, texts: Sequence[str], *, timeout_s: float = BATCH_TIMEOUT_S) -> list[list[float]]:
        try:
            async with asyncio.timeout(timeout_s):
                vectors = await self._provider.embed(self._model, texts, timeout_s=timeout_s)
        except TimeoutError:
            raise ProviderUnavailable(f"{self.name}: no embeddings within {timeout_s:g} s", model=self.name) from None
        if len(vectors) != len(texts) or len({len(v) for v in vectors}) > 1 or any(not v for v in vectors):
            raise ProviderUnavailable(f"{self.name}: vectors of differing sizes", model=self.name)
        return [normalized(v) for v in vectors]

    async def embed_query(self, text: str) -> list[float]:
        return (await self.embed([text], timeout_s=QUERY_TIMEOUT_S))[0]


def normalized(vector: Sequence[float]) -> list[float]:
    """Unit length, so cosine similarity is a dot product wherever it is computed."""
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else list(vector)


class EmbeddingWorker:
    """Embeds the chunks that have no vector yet, a batch at a time, until cancelled (the service owns it)."""

    def __init__(self, index: KnowledgeIndex, embedder: Embedder, *, batch: int = BATCH, idle_s: float = IDLE_S) -> None:
        self._index = index
        self._embedder = embedder
        self._batch = batch
        self._idle_s = idle_s
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New chunks are waiting (called by the librarian after indexing)."""
        self._wake.set()

    async def run_once(self) -> int:
        """Embed one batch; returns how many chunks got a vector."""
        pending = await self._index.pending_embeddings(self._batch)
        if not pending:
            return 0
        vectors = await self._embedder.embed([chunk.text for chunk in pending])
        await self._index.store_embeddings([(c.chunk_id, v) for c, v in zip(pending, vectors, strict=True)])
        return len(pending)

    async def run(self) -> None:
        backoff = 1.0
        embedded = 0
        while True:
            try:
                done = await self.run_once()
            except (ProviderError, MoaError) as exc:
                log.warning("embedding chunks failed (%s); trying again in %.0f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            backoff = 1.0
            embedded += done
            if done:
                continue
            if embedded:
                log.info("embedded %d chunks with %s; none left", embedded, self._embedder.name)
                embedded = 0
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._idle_s)
