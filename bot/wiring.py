"""Builds the core (catalog, storage, providers, orchestrator, answerer, team knowledge) from settings, and
closes it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

from bot.config import Settings
from moa.answering import Answerer, RunSummary
from moa.errors import ConfigError
from moa.events import Event
from moa.knowledge import Librarian
from moa.knowledge.embedding import Embedder, EmbeddingWorker
from moa.knowledge.extract import MB
from moa.orchestrator import Orchestrator
from moa.policy import AccessPolicy, ConcurrencyGate
from moa.presets import TOGETHER, Catalog, load_catalog, split_model
from moa.providers.registry import ProviderRegistry
from moa.redaction import Redactor
from moa.retry import Backoff
from storage import Storage, Store, open_store

log = logging.getLogger("bot.wiring")

# SQLite's page cache: team-knowledge searches read the same index pages every time (benchmark 8: at 100,000
# chunks a 64 MiB cache makes full-text search 40% faster and the vector scan six times faster)
CACHE_MIB = 64


@dataclass
class Core:
    settings: Settings
    catalog: Catalog
    store: Storage  # also the team-knowledge index (`moa.knowledge.KnowledgeIndex`)
    registry: ProviderRegistry
    answerer: Answerer
    librarian: Librarian  # what adapters and the CLI call to add to team knowledge
    embedding: EmbeddingWorker | None = None  # with MOA_EMBEDDING_MODEL: the service runs it in the background


@dataclass
class Knowledge:
    """Team knowledge alone, for `moa-bot knowledge ...` (no chat model, no API key needed)."""

    store: Storage
    librarian: Librarian


def _registry(settings: Settings, catalog: Catalog) -> ProviderRegistry:
    return ProviderRegistry(
        catalog.providers,
        together_api_key=settings.together_api_key,
        together_base_url=settings.together_base_url,
    )


async def _librarian(settings: Settings, store: Storage, registry: ProviderRegistry) -> Librarian:
    """The librarian over `store`; with MOA_EMBEDDING_MODEL, vectors from that model too (SQLite only)."""
    embedder = worker = None
    if settings.embedding_model and not isinstance(store, Store):
        log.warning(
            "MOA_EMBEDDING_MODEL is set, but semantic search needs SQLite (sqlite-vec): on PostgreSQL team "
            "knowledge is searched by full text only, and no chunk is embedded"
        )
    elif settings.embedding_model:
        provider, model = registry.resolve(settings.embedding_model)
        embedder = Embedder(provider, model, settings.embedding_model)
        await store.prepare_vectors(settings.embedding_model)
        worker = EmbeddingWorker(store, embedder)
    return Librarian(
        store,
        curators=settings.knowledge_curators,
        max_file_bytes=int(settings.knowledge_max_file_mb * MB),
        embedder=embedder,
        worker=worker,
    )


def catalog_for(settings: Settings) -> Catalog:
    """Presets, providers and channel settings from MOA_CONFIG, with MOA_SYSTEM_PROMPT over the file's."""
    catalog = load_catalog(settings.config_path)
    if settings.system_prompt.strip():
        catalog = replace(catalog, system_prompt=settings.system_prompt.strip())
    return catalog


def knowledge_channels(settings: Settings, catalog: Catalog, platform: str) -> frozenset[str]:
    """MOA_KNOWLEDGE_CHANNELS and the channels whose settings say `knowledge = true`."""
    return settings.knowledge_channels | catalog.knowledge_channels(platform)


@asynccontextmanager
async def open_core(
    settings: Settings,
    *,
    on_event: Callable[[str, Event], None] | None = None,
    on_finished: Callable[[RunSummary], None] | None = None,
    on_feedback: Callable[[str], None] | None = None,
    exclusive: bool = False,
    backoff: Backoff = Backoff(),
) -> AsyncIterator[Core]:
    """`exclusive`: the one process serving this database (`moa-bot run`); see `storage.lock`.
    `backoff`: how long provider retries wait (tests shorten it; the service keeps the default)."""
    catalog = catalog_for(settings)
    default = catalog.get(settings.preset)
    uses_together = any(split_model(m, catalog.providers)[0] == TOGETHER for m in default.models)
    if uses_together and not settings.together_api_key and not settings.together_base_url:
        raise ConfigError(
            f"TOGETHER_API_KEY: not set, and preset {default.name!r} uses Together models; set it to your "
            "Together API key (https://api.together.ai/settings/api-keys), or point MOA_PRESET at a preset whose "
            "models use your own providers; to try moa-bot without a key: moa-bot ask --demo QUESTION"
        )
    registry = _registry(settings, catalog)
    store = open_store(
        settings.database,
        vectors=bool(settings.embedding_model),
        cache_mib=CACHE_MIB,
        concurrent_answers=settings.max_concurrent,
    )
    await store.start(exclusive=exclusive)
    try:
        librarian = await _librarian(settings, store, registry)
        answerer = Answerer(
            Orchestrator(registry, backoff=backoff),
            store,
            catalog,
            default_preset=settings.preset,
            policy=AccessPolicy(
                max_question_chars=settings.max_question_chars,
                allowed_channels=settings.allowed_channels,
                allowed_users=settings.allowed_users,
                user_rate=settings.user_rate,
            ),
            gate=ConcurrencyGate(settings.max_concurrent),
            history=settings.history,
            on_event=on_event,
            on_finished=on_finished,
            on_feedback=on_feedback,
            redact=Redactor(settings.secrets),
            librarian=librarian,
            no_sources=settings.knowledge_no_sources,
            replica=settings.replica_id,
        )
        yield Core(settings, catalog, store, registry, answerer, librarian, librarian.worker)
    finally:
        await registry.aclose()
        await store.aclose()


@asynccontextmanager
async def open_knowledge(settings: Settings) -> AsyncIterator[Knowledge]:
    catalog = load_catalog(settings.config_path)
    registry = _registry(settings, catalog)
    store = open_store(settings.database, vectors=bool(settings.embedding_model), cache_mib=CACHE_MIB)
    await store.start()
    try:
        yield Knowledge(store, await _librarian(settings, store, registry))
    finally:
        await registry.aclose()
        await store.aclose()
