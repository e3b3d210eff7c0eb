"""Team knowledge in `moa-bot run`: the background embedder and the purge of channels no longer configured."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.config import load_settings
from bot.metrics import Metrics
from bot.wiring import open_core
from moa.knowledge import Document, Kind
from tests.fakes.llm import FakeLLM
from tests.helpers import eventually
from tests.test_service import MemoryAdapter, start_service


async def test_the_service_embeds_new_chunks_and_purges_unconfigured_channels(fake_llm: FakeLLM,
                                                                            tmp_path: Path) -> None:
    config = tmp_path / "moa.toml"
    config.write_text('[presets.default]\nproposers = ["p/a"]\naggregator = "agg/x"\n')
    for model in ("p/a", "agg/x", "emb/e5"):
        fake_llm.script(model)
    settings = load_settings({
        "TOGETHER_API_KEY": "k", "TOGETHER_BASE_URL": fake_llm.base_url, "MOA_CONFIG": str(config),
        "MOA_DB": str(tmp_path / "moa.sqlite3"), "MOA_HTTP_PORT": "0", "MOA_SHUTDOWN_GRACE_S": "1",
        "MOA_KNOWLEDGE_CHANNELS": "C2", "MOA_EMBEDDING_MODEL": "emb/e5",
    })
    adapter = MemoryAdapter()
    async with open_core(settings) as core:
        running = await start_service(core, adapter, Metrics())
        for channel in ("C1", "C2"):
            await core.librarian.index_message(
                Document(f"slack:T1:{channel}:1", Kind.MESSAGE, "slack", "T1", channel, f"deploy notes {channel}"))
        # woken by the indexing: no waiting for the idle poll
        await eventually(lambda: len(fake_llm.requests_for("emb/e5")) >= 1, within=5, what="an embeddings call")
        for _ in range(500):
            stats = await core.store.stats()
            if not stats.pending_embeddings:
                break
            await asyncio.sleep(0.01)
        assert stats.embedded == 2
        assert await running.service.purge_knowledge() == "1 documents of channels no longer in MOA_KNOWLEDGE_CHANNELS removed"
        assert [d.source for d in await core.librarian.documents()] == ["slack:T1:C2:1"]
        running.service.stop()
        assert await running.task == 0
        assert len(running.service._tasks) == 0  # every task the service started has ended
