"""Builds the core (catalog, storage, providers, orchestrator, answerer) from settings, and closes it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

from bot.config import Settings
from moa.answering import Answerer, RunSummary
from moa.events import Event
from moa.orchestrator import Orchestrator
from moa.policy import AccessPolicy, ConcurrencyGate
from moa.errors import ConfigError
from moa.presets import TOGETHER, Catalog, load_catalog, split_model
from moa.providers.registry import ProviderRegistry
from moa.redaction import Redactor
from storage import Storage, open_store


@dataclass
class Core:
    settings: Settings
    catalog: Catalog
    store: Storage
    registry: ProviderRegistry
    answerer: Answerer


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
) -> AsyncIterator[Core]:
    """`exclusive`: the one process serving this database (`moa-bot run`); see `storage.lock`."""
    catalog = catalog_for(settings)
    default = catalog.get(settings.preset)
    uses_together = any(split_model(m, catalog.providers)[0] == TOGETHER for m in default.models)
    if uses_together and not settings.together_api_key and not settings.together_base_url:
        raise ConfigError(
            f"TOGETHER_API_KEY: not set, and preset {default.name!r} uses Together models; set it to your "
            "Together API key (https://api.together.ai/settings/api-keys), or point MOA_PRESET at a preset whose "
            "models use your own providers; to try moa-bot without a key: moa-bot ask --demo QUESTION"
        )
    registry = ProviderRegistry(
        catalog.providers,
        together_api_key=settings.together_api_key,
        together_base_url=settings.together_base_url,
    )
    store = open_store(settings.database)
    await store.start(exclusive=exclusive)
    try:
        answerer = Answerer(
            Orchestrator(registry),
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
        )
        yield Core(settings, catalog, store, registry, answerer)
    finally:
        await registry.aclose()
        await store.aclose()
