"""Builds the core (catalog, storage, providers, orchestrator, answerer) from settings, and closes it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bot.config import Settings
from moa.answering import Answerer, RunSummary
from moa.events import Event
from moa.orchestrator import Orchestrator
from moa.policy import AccessPolicy, ConcurrencyGate
from moa.errors import ConfigError
from moa.presets import TOGETHER, Catalog, load_catalog, split_model
from moa.providers.registry import ProviderRegistry
from moa.redaction import Redactor
from moa.retry import Backoff
from storage import Store


@dataclass
class Core:
    settings: Settings
    catalog: Catalog
    store: Store
    registry: ProviderRegistry
    answerer: Answerer


@asynccontextmanager
async def open_core(
    settings: Settings,
    *,
    on_event: Callable[[str, Event], None] | None = None,
    on_finished: Callable[[RunSummary], None] | None = None,
    exclusive: bool = False,
    backoff: Backoff = Backoff(),
) -> AsyncIterator[Core]:
    """`exclusive`: the one process serving this database (`moa-bot run`); see `storage.lock`.
    `backoff`: how long provider retries wait (tests shorten it; the service keeps the default)."""
    catalog = load_catalog(settings.config_path)
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
    store = Store(settings.db_path)
    await store.start(exclusive=exclusive)
    try:
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
            redact=Redactor(settings.secrets),
        )
        yield Core(settings, catalog, store, registry, answerer)
    finally:
        await registry.aclose()
        await store.aclose()
